import ArgumentParser
import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// `examhub-load`: drives a hub with many WebSockets and prints throughput and latency (text, then one JSON line).
@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "examhub-load",
        abstract: "Drive an ExamHub node (or a peer) with many WebSockets.",
        subcommands: [RunCommand.self, SocketsCommand.self, AutosaveCommand.self, ProctoringCommand.self, DeflateCostCommand.self],
        defaultSubcommand: SocketsCommand.self)
}

/// `examhub-load echo|ping|idle`: sockets doing echo on /v1/echo, ping ops, or nothing.
struct SocketsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sockets",
        abstract: "echo (/v1/echo), ping (ping ops on /v1/socket) or idle (authenticated idle sockets).")

    @Argument(help: "echo (/v1/echo), ping (ping ops on /v1/socket) or idle (authenticated idle sockets).")
    var workload: String
    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 8080
    @Option(help: "Path (default /v1/echo for echo, /v1/socket otherwise).") var path: String?
    @Option(help: "Connections.") var connections = 64
    @Option(help: "Requests in flight per connection.") var inFlight = 16
    @Option(help: "Seconds to measure (echo and ping); seconds to hold (idle).") var duration = 10.0
    @Option(help: "Seconds of warm-up before measuring.") var warmup = 2.0
    @Option(help: "Client event loop threads.") var threads = 1
    @Option(help: "Bearer token (ping and idle); default EXAMHUB_TOKEN.") var token: String?
    @Option(help: "Echo payload size in bytes.") var payloadBytes = 32
    @Option(help: "Connections opened at once while connecting.") var connectBatch = 500
    @Flag(help: "Connect with TLS (wss://; the certificate is not checked).") var tls = false
    @Flag(help: "Offer permessage-deflate and count the bytes it saves.") var compression = false

    func run() async throws {
        guard let workload = Workload(rawValue: workload) else {
            throw ValidationError("workload must be echo, ping or idle")
        }
        let token = self.token ?? ProcessInfo.processInfo.environment["EXAMHUB_TOKEN"]
        if workload != .echo && token == nil { throw ValidationError("ping and idle need --token or EXAMHUB_TOKEN") }
        let path = self.path ?? (workload == .echo ? "/v1/echo" : "/v1/socket")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let running = NIOLockedValueBox(false)
        var statsByLoop: [ObjectIdentifier: LoopStats] = [:]
        for loop in group.makeIterator() { statsByLoop[ObjectIdentifier(loop)] = LoopStats() }
        let statsMap = statsByLoop
        let payload = #"{"op":"echo","pad":""# + String(repeating: "x", count: max(0, payloadBytes - 22)) + #""}"#
        var transport = Transport()
        if tls { transport.tls = try Transport.makeTLS() }
        if compression {
            transport.compression = true
            transport.wire = WireStats.perLoop(group)
        }

        let connectStart = NIODeadline.now()
        var channels: [(any Channel, NIOLoopBound<LoadHandler>)] = []
        var opened = 0
        while opened < connections {
            let batch = min(connectBatch, connections - opened)
            var futures: [EventLoopFuture<(any Channel, NIOLoopBound<LoadHandler>)>] = []
            for _ in 0..<batch {
                futures.append(Self.connect(
                    group: group, host: host, port: port, path: path, workload: workload, inFlight: inFlight,
                    token: token, payload: payload, stats: statsMap, running: running, transport: transport))
            }
            for f in futures { channels.append(try await f.get()) }
            opened += batch
        }
        let connectSeconds = Double((NIODeadline.now() - connectStart).nanoseconds) / 1e9
        print("connected \(channels.count) sockets in \(String(format: "%.2f", connectSeconds)) s")

        if workload == .idle {
            let pid = ProcessInfo.processInfo.environment["EXAMHUB_PID"]
            print("holding \(channels.count) idle authenticated sockets for \(duration) s" + (pid.map { " (server pid \($0))" } ?? ""))
            try await Task.sleep(for: .seconds(duration))
            let result = ["workload": "idle", "connections": channels.count, "connectSeconds": connectSeconds] as [String: Any]
            print(String(data: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), encoding: .utf8)!)
            for (c, _) in channels { c.close(promise: nil) }
            try await group.shutdownGracefully()
            return
        }

        running.withLockedValue { $0 = true }
        for (channel, handler) in channels {
            channel.eventLoop.execute {
                guard let ctx = try? channel.pipeline.syncOperations.context(handlerType: LoadHandler.self) else { return }
                handler.value.start(context: ctx)
            }
        }
        try await Task.sleep(for: .seconds(warmup))
        let before = try await Self.snapshot(group: group, stats: statsMap, reset: true)
        _ = try await WireStats.snapshot(group, transport.wire, reset: true)
        let t0 = NIODeadline.now()
        try await Task.sleep(for: .seconds(duration))
        let after = try await Self.snapshot(group: group, stats: statsMap, reset: false)
        let wire = try await WireStats.snapshot(group, transport.wire, reset: false)
        let elapsed = Double((NIODeadline.now() - t0).nanoseconds) / 1e9
        running.withLockedValue { $0 = false }
        _ = before
        let rate = Double(after.messages) / elapsed
        let h = after.latency
        func ms(_ p: Double) -> Double { Double(h.valueAtPercentile(p)) / 1e6 }
        print(String(format: "%@: %d connections x %d in flight: %.0f msg/s, p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms, errors %d",
                     workload.rawValue, connections, inFlight, rate, ms(50), ms(99), ms(99.9), Double(h.max) / 1e6, after.errors))
        var result: [String: Any] = [
            "workload": workload.rawValue, "connections": connections, "inFlight": inFlight, "seconds": elapsed, "tls": tls,
            "messages": after.messages, "messagesPerSecond": rate, "p50Ms": ms(50), "p90Ms": ms(90), "p99Ms": ms(99),
            "p999Ms": ms(99.9), "maxMs": Double(h.max) / 1e6, "errors": after.errors, "closedEarly": after.closedEarly,
        ]
        if compression { result["wire"] = wire.json }
        print(String(data: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), encoding: .utf8)!)
        for (c, _) in channels { c.close(promise: nil) }
        try await Task.sleep(for: .milliseconds(200))
        try await group.shutdownGracefully()
    }

    struct Snapshot {
        var messages = 0
        var errors = 0
        var closedEarly = 0
        var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    }

    static func snapshot(group: MultiThreadedEventLoopGroup, stats: [ObjectIdentifier: LoopStats], reset: Bool) async throws -> Snapshot {
        var total = Snapshot()
        for loop in group.makeIterator() {
            guard let s = stats[ObjectIdentifier(loop)] else { continue }
            let part = try await loop.submit { () -> Snapshot in
                let snap = Snapshot(messages: s.messages, errors: s.errors, closedEarly: s.closedEarly, latency: s.latency)
                if reset {
                    s.messages = 0
                    s.latency.reset()
                }
                return snap
            }.get()
            total.messages += part.messages
            total.errors += part.errors
            total.closedEarly += part.closedEarly
            total.latency.add(part.latency)
        }
        return total
    }

    static func connect(
        group: MultiThreadedEventLoopGroup, host: String, port: Int, path: String, workload: Workload, inFlight: Int,
        token: String?, payload: String, stats: [ObjectIdentifier: LoopStats], running: NIOLockedValueBox<Bool>,
        transport: Transport
    ) -> EventLoopFuture<(any Channel, NIOLoopBound<LoadHandler>)> {
        let loop = group.next()
        let loopStats = stats[ObjectIdentifier(loop)] ?? LoopStats()
        return WebSocketConnector.connect(
            loop: loop, host: host, port: port, path: path, bearer: nil, transport: transport
        ) { ready in
            LoadHandler(workload: workload, inFlight: inFlight, token: token, payload: payload, stats: loopStats,
                        running: running, readyPromise: ready)
        }
    }
}
