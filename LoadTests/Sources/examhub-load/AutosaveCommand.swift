import ArgumentParser
import ExamHubAuth
import ExamHubDomain
import Foundation
import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `examhub-load autosave`: simulated candidates saving answers; prints ack throughput and latency.
struct AutosaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autosave",
        abstract: "Candidates join an exam and save answers (every --interval seconds, or --in-flight at once).")

    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 8080
    @Option(help: "Simulated candidates (one socket each).") var candidates = 1000
    @Option(help: "Seconds between a candidate's saves; 0 for saturation (--in-flight saves always outstanding).")
    var interval = 2.0
    @Option(help: "Saves outstanding per candidate in saturation mode.") var inFlight = 8
    @Option(help: "Seconds to measure.") var duration = 10.0
    @Option(help: "Seconds of warm-up.") var warmup = 2.0
    @Option(help: "Questions in the exam.") var questions = 10
    @Option(help: "Client event loop threads.") var threads = 1
    @Option(help: "The hub's HS256 secret (default EXAMHUB_JWT_SECRET), to mint candidate and admin tokens.")
    var secret: String?
    @Option(help: "Tenant for the run.") var tenant = "load"
    @Option(help: "Connections opened at once.") var connectBatch = 500
    @Flag(help: "Offer permessage-deflate and count the bytes it saves.") var compression = false
    @Option(help: "Exam id to use, created if missing (default: a new exam per run); runs with the same exam and tenant rejoin the same attempts.")
    var exam: String?

    func run() async throws {
        guard let secret = secret ?? ProcessInfo.processInfo.environment["EXAMHUB_JWT_SECRET"] else {
            throw ValidationError("give --secret or EXAMHUB_JWT_SECRET")
        }
        let minter = try await TokenMinter(secret: secret)
        let examID = exam ?? "load-\(UInt32.random(in: 0...UInt32.max))"
        try await createExam(minter: minter, examID: examID, mayExist: exam != nil)
        let runID = String(UInt64.random(in: 0...UInt64.max), radix: 36)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let running = NIOLockedValueBox(true)
        var statsByLoop: [ObjectIdentifier: AutosaveStats] = [:]
        for loop in group.makeIterator() { statsByLoop[ObjectIdentifier(loop)] = AutosaveStats() }
        let statsMap = statsByLoop
        var transport = Transport()
        if compression {
            transport.compression = true
            transport.wire = WireStats.perLoop(group)
        }
        let intervalAmount: TimeAmount? = interval > 0 ? .milliseconds(Int64(interval * 1000)) : nil

        let t0 = NIODeadline.now()
        var handlers: [(any Channel, NIOLoopBound<AutosaveHandler>)] = []
        var opened = 0
        while opened < candidates {
            let batch = min(connectBatch, candidates - opened)
            var futures: [EventLoopFuture<(any Channel, NIOLoopBound<AutosaveHandler>)>] = []
            for i in opened..<(opened + batch) {
                let token = try await minter.mint(sub: "c\(i)", tenant: tenant, role: .candidate, ttlSeconds: 3600)
                futures.append(connect(group: group, index: i, runID: runID, token: token, examID: examID,
                                       interval: intervalAmount, stats: statsMap, running: running,
                                       transport: transport))
            }
            for f in futures { handlers.append(try await f.get()) }
            opened += batch
        }
        print("joined \(handlers.count) candidates in \(String(format: "%.2f", Double((NIODeadline.now() - t0).nanoseconds) / 1e9)) s")
        for (channel, handler) in handlers {
            channel.eventLoop.execute {
                guard let ctx = try? channel.pipeline.syncOperations.context(handlerType: AutosaveHandler.self) else { return }
                handler.value.start(context: ctx)
            }
        }
        try await Task.sleep(for: .seconds(warmup))
        _ = try await snapshot(group: group, stats: statsMap, reset: true)
        _ = try await WireStats.snapshot(group, transport.wire, reset: true)
        let m0 = NIODeadline.now()
        try await Task.sleep(for: .seconds(duration))
        let s = try await snapshot(group: group, stats: statsMap, reset: false)
        let wire = try await WireStats.snapshot(group, transport.wire, reset: false)
        let elapsed = Double((NIODeadline.now() - m0).nanoseconds) / 1e9
        running.withLockedValue { $0 = false }
        let h = s.latency
        func ms(_ p: Double) -> Double { Double(h.valueAtPercentile(p)) / 1e6 }
        let mode = interval > 0 ? "every \(interval) s" : "saturation, \(inFlight) in flight each"
        print(String(format: "autosave: %d candidates (%@): %.0f acks/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, errors %d, version errors %d",
                     candidates, mode, Double(s.acks) / elapsed, ms(50), ms(99), Double(h.max) / 1e6, s.errors, s.versionErrors))
        var result: [String: Any] = [
            "workload": "autosave", "candidates": candidates, "interval": interval, "inFlight": inFlight,
            "seconds": elapsed, "acks": s.acks, "acksPerSecond": Double(s.acks) / elapsed, "p50Ms": ms(50),
            "p90Ms": ms(90), "p99Ms": ms(99), "p999Ms": ms(99.9), "maxMs": Double(h.max) / 1e6, "errors": s.errors,
            "errorCodes": s.errorCodes, "versionErrors": s.versionErrors, "events": s.events,
        ]
        if compression { result["wire"] = wire.json }
        print(String(data: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), encoding: .utf8) ?? "{}")
        try await Task.sleep(for: .milliseconds(300))
        for (c, _) in handlers { c.close(promise: nil) }
        try await Task.sleep(for: .milliseconds(200))
        try await group.shutdownGracefully()
    }

    private func createExam(minter: TokenMinter, examID: String, mayExist: Bool) async throws {
        let admin = try await minter.mint(sub: "load-admin", tenant: tenant, role: .admin, ttlSeconds: 3600)
        let body = LoadExams.body(id: examID, title: "Load test", questions: questions, durationSec: 86_400)
        try await LoadExams.create(host: host, port: port, adminToken: admin, id: examID, body: body, mayExist: mayExist)
    }

    struct Snapshot {
        var acks = 0
        var events = 0
        var errors = 0
        var versionErrors = 0
        var errorCodes: [String: Int] = [:]
        var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    }

    private func snapshot(group: MultiThreadedEventLoopGroup, stats: [ObjectIdentifier: AutosaveStats], reset: Bool) async throws -> Snapshot {
        var total = Snapshot()
        for loop in group.makeIterator() {
            guard let s = stats[ObjectIdentifier(loop)] else { continue }
            let part = try await loop.submit { () -> Snapshot in
                let snap = Snapshot(acks: s.acks, events: s.events, errors: s.errors, versionErrors: s.versionErrors,
                                    errorCodes: s.errorCodes, latency: s.latency)
                if reset {
                    s.acks = 0
                    s.events = 0
                    s.latency.reset()
                }
                return snap
            }.get()
            total.acks += part.acks
            total.events += part.events
            total.errors += part.errors
            total.versionErrors += part.versionErrors
            total.errorCodes.merge(part.errorCodes, uniquingKeysWith: +)
            total.latency.add(part.latency)
        }
        return total
    }

    private func connect(
        group: MultiThreadedEventLoopGroup, index: Int, runID: String, token: String, examID: String,
        interval: TimeAmount?, stats: [ObjectIdentifier: AutosaveStats], running: NIOLockedValueBox<Bool>,
        transport: Transport
    ) -> EventLoopFuture<(any Channel, NIOLoopBound<AutosaveHandler>)> {
        let loop = group.next()
        let loopStats = stats[ObjectIdentifier(loop)] ?? AutosaveStats()
        let (questions, inFlight) = (self.questions, self.inFlight)
        return WebSocketConnector.connect(
            loop: loop, host: host, port: port, path: "/v1/socket", bearer: token, transport: transport
        ) { ready in
            AutosaveHandler(
                index: index, runID: runID, examID: examID, questions: questions, interval: interval, inFlight: inFlight,
                stats: loopStats, running: running, readyPromise: ready)
        }
    }
}
