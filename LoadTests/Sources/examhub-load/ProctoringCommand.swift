import ArgumentParser
import ExamHubAuth
import ExamHubDomain
import ExamHubWire
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

/// `examhub-load proctoring`: candidates send telemetry every `--interval` seconds while proctors watch their
/// rooms; prints telemetry events ingested per second, telemetry ack latency and the latency from a telemetry frame
/// to the `flag.raised` it causes at the watching proctor (issue 4's benchmark).
///
/// Each room is one exam watched by one proctor. A frame carries one event; a share `--flag-ratio` of them is a
/// `clipboard.paste`, which the exams' profile override (`bench_paste`, merge window 0) turns into a flag every time,
/// so each one is a latency sample. The rest are events that raise nothing (focus changes, one face).
struct ProctoringCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proctoring",
        abstract: "Candidates send telemetry while proctors watch; telemetry-to-flag latency at the proctor.")

    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 8080
    @Option(help: "Port of the node the proctors watch on (default: --port); another node on the same PostgreSQL measures the cross-node path.")
    var proctorPort: Int?
    @Option(help: "Simulated candidates (one socket each).") var candidates = 10_000
    @Option(help: "Proctors, one per exam room.") var proctors = 50
    @Option(help: "Seconds between a candidate's telemetry frames.") var interval = 1.0
    @Option(help: "Share of frames that raise a flag.") var flagRatio = 0.05
    @Option(help: "Seconds to measure.") var duration = 20.0
    @Option(help: "Seconds of warm-up.") var warmup = 3.0
    @Option(help: "Client event loop threads.") var threads = 1
    @Option(help: "The hub's HS256 secret (default EXAMHUB_JWT_SECRET), to mint tokens.") var secret: String?
    @Option(help: "Tenant for the run.") var tenant = "load"
    @Option(help: "Connections opened at once.") var connectBatch = 500
    @Flag(help: "Offer permessage-deflate and count the bytes it saves.") var compression = false

    func run() async throws {
        guard let secret = secret ?? ProcessInfo.processInfo.environment["EXAMHUB_JWT_SECRET"] else {
            throw ValidationError("give --secret or EXAMHUB_JWT_SECRET")
        }
        guard proctors >= 1, candidates >= 1, interval > 0 else { throw ValidationError("need proctors, candidates, interval > 0") }
        let minter = try await TokenMinter(secret: secret)
        let run = UInt32.random(in: 0...UInt32.max)
        let exams = (0..<proctors).map { "proc-\(run)-\($0)" }
        for exam in exams { try await createExam(minter: minter, examID: exam) }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let running = NIOLockedValueBox(true)
        let flagClock = FlagClock()
        var statsByLoop: [ObjectIdentifier: ProctoringStats] = [:]
        for loop in group.makeIterator() { statsByLoop[ObjectIdentifier(loop)] = ProctoringStats() }
        let stats = statsByLoop
        var transport = Transport()
        // Proctors count their bytes apart: what they receive is the exam channels' fan-out.
        var proctorTransport = Transport()
        if compression {
            transport.compression = true
            transport.wire = WireStats.perLoop(group)
            proctorTransport.compression = true
            proctorTransport.wire = WireStats.perLoop(group)
        }
        let t0 = NIODeadline.now()

        var watchers: [any Channel] = []
        for (i, exam) in exams.enumerated() {
            let token = try await minter.mint(sub: "p\(i)", tenant: tenant, role: .proctor, ttlSeconds: 7200)
            let (channel, _) = try await connect(
                group: group, token: token, stats: stats, port: proctorPort ?? port, transport: proctorTransport
            ) {
                loopStats, ready in
                ProctoringHandler(role: .proctor(examID: exam), stats: loopStats, running: running, clock: flagClock,
                                  interval: nil, flagRatio: 0, readyPromise: ready)
            }
            watchers.append(channel)
        }
        var sockets: [(any Channel, NIOLoopBound<ProctoringHandler>)] = []
        var opened = 0
        let every = TimeAmount.milliseconds(Int64(interval * 1000))
        while opened < candidates {
            let batch = min(connectBatch, candidates - opened)
            var futures: [EventLoopFuture<(any Channel, NIOLoopBound<ProctoringHandler>)>] = []
            for i in opened..<(opened + batch) {
                let token = try await minter.mint(sub: "c\(i)", tenant: tenant, role: .candidate, ttlSeconds: 7200)
                let exam = exams[i % exams.count]
                let ratio = flagRatio
                futures.append(connectFuture(group: group, token: token, stats: stats, port: port, transport: transport) {
                    loopStats, ready in
                    ProctoringHandler(role: .candidate(examID: exam), stats: loopStats, running: running,
                                      clock: flagClock, interval: every, flagRatio: ratio, readyPromise: ready)
                })
            }
            for f in futures { sockets.append(try await f.get()) }
            opened += batch
        }
        print("\(proctors) proctors watching, \(sockets.count) candidates joined in \(String(format: "%.2f", Double((NIODeadline.now() - t0).nanoseconds) / 1e9)) s")
        for (channel, handler) in sockets {
            channel.eventLoop.execute {
                guard let ctx = try? channel.pipeline.syncOperations.context(handlerType: ProctoringHandler.self) else { return }
                handler.value.start(context: ctx)
            }
        }
        try await Task.sleep(for: .seconds(warmup))
        _ = try await snapshot(group: group, stats: stats, reset: true)
        _ = try await WireStats.snapshot(group, transport.wire, reset: true)
        _ = try await WireStats.snapshot(group, proctorTransport.wire, reset: true)
        let m0 = NIODeadline.now()
        try await Task.sleep(for: .seconds(duration))
        let s = try await snapshot(group: group, stats: stats, reset: false)
        let wire = try await WireStats.snapshot(group, transport.wire, reset: false)
        let proctorWire = try await WireStats.snapshot(group, proctorTransport.wire, reset: false)
        let elapsed = Double((NIODeadline.now() - m0).nanoseconds) / 1e9
        running.withLockedValue { $0 = false }
        func ms(_ h: Histogram<UInt64>, _ p: Double) -> Double { Double(h.valueAtPercentile(p)) / 1e6 }
        print(String(
            format: "proctoring: %d candidates, %d proctors: %.0f events/s ingested; ack p50 %.2f ms p99 %.2f ms; flag.raised %.0f/s at proctors, telemetry->flag p50 %.2f ms p99 %.2f ms max %.2f ms; errors %d, flags unmatched %d",
            candidates, proctors, Double(s.acked) / elapsed, ms(s.ackLatency, 50), ms(s.ackLatency, 99),
            Double(s.flags) / elapsed, ms(s.flagLatency, 50), ms(s.flagLatency, 99), Double(s.flagLatency.max) / 1e6,
            s.errors, s.unmatchedFlags))
        var result: [String: Any] = [
            "workload": "proctoring", "candidates": candidates, "proctors": proctors, "interval": interval,
            "crossNode": proctorPort.map { $0 != port } ?? false,
            "flagRatio": flagRatio, "seconds": elapsed, "eventsPerSecond": Double(s.acked) / elapsed,
            "ackP50Ms": ms(s.ackLatency, 50), "ackP99Ms": ms(s.ackLatency, 99),
            "flagsPerSecond": Double(s.flags) / elapsed, "flagP50Ms": ms(s.flagLatency, 50),
            "flagP90Ms": ms(s.flagLatency, 90), "flagP99Ms": ms(s.flagLatency, 99),
            "flagMaxMs": Double(s.flagLatency.max) / 1e6, "flagSamples": s.flagLatency.totalCount,
            "errors": s.errors, "errorCodes": s.errorCodes, "unmatchedFlags": s.unmatchedFlags,
            "proctorEvents": s.proctorEvents,
        ]
        if compression {
            result["wire"] = wire.json
            result["proctorWire"] = proctorWire.json
        }
        print(String(data: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), encoding: .utf8) ?? "{}")
        try await Task.sleep(for: .milliseconds(300))
        for (c, _) in sockets { c.close(promise: nil) }
        for c in watchers { c.close(promise: nil) }
        try await Task.sleep(for: .milliseconds(200))
        try await group.shutdownGracefully()
    }

    private func createExam(minter: TokenMinter, examID: String) async throws {
        let admin = try await minter.mint(sub: "load-admin", tenant: tenant, role: .admin, ttlSeconds: 3600)
        let body = LoadExams.body(id: examID, title: "Proctoring load", questions: 1, durationSec: 86_400, pasteFlags: true)
        try await LoadExams.create(host: host, port: port, adminToken: admin, id: examID, body: body)
    }

    private func snapshot(group: MultiThreadedEventLoopGroup, stats: [ObjectIdentifier: ProctoringStats], reset: Bool)
        async throws -> ProctoringStats.Snapshot
    {
        var total = ProctoringStats.Snapshot()
        for loop in group.makeIterator() {
            guard let s = stats[ObjectIdentifier(loop)] else { continue }
            let part = try await loop.submit { () -> ProctoringStats.Snapshot in
                let snap = s.snapshot()
                if reset { s.reset() }
                return snap
            }.get()
            total.add(part)
        }
        return total
    }

    private func connect(
        group: MultiThreadedEventLoopGroup, token: String, stats: [ObjectIdentifier: ProctoringStats], port: Int,
        transport: Transport, make: @escaping @Sendable (ProctoringStats, EventLoopPromise<Void>) -> ProctoringHandler
    ) async throws -> (any Channel, NIOLoopBound<ProctoringHandler>) {
        try await connectFuture(group: group, token: token, stats: stats, port: port, transport: transport, make: make).get()
    }

    private func connectFuture(
        group: MultiThreadedEventLoopGroup, token: String, stats: [ObjectIdentifier: ProctoringStats], port: Int,
        transport: Transport, make: @escaping @Sendable (ProctoringStats, EventLoopPromise<Void>) -> ProctoringHandler
    ) -> EventLoopFuture<(any Channel, NIOLoopBound<ProctoringHandler>)> {
        let loop = group.next()
        let loopStats = stats[ObjectIdentifier(loop)] ?? ProctoringStats()
        return WebSocketConnector.connect(
            loop: loop, host: host, port: port, path: "/v1/socket", bearer: token, transport: transport
        ) { ready in make(loopStats, ready) }
    }
}

/// When each flag-raising telemetry frame was sent, per attempt, so the proctor side can time the `flag.raised`.
final class FlagClock: Sendable {
    private let sent = NIOLockedValueBox<[String: [UInt64]]>([:])

    func record(_ attemptID: String, at t: UInt64) {
        sent.withLockedValue { $0[attemptID, default: []].append(t) }
    }

    func take(_ attemptID: String) -> UInt64? {
        sent.withLockedValue { map in
            guard var times = map[attemptID], !times.isEmpty else { return nil }
            let first = times.removeFirst()
            map[attemptID] = times
            return first
        }
    }
}

/// Counters for the proctoring workload, per event loop. Touched only on that loop.
final class ProctoringStats: @unchecked Sendable {
    struct Snapshot {
        var acked = 0
        var flags = 0
        var proctorEvents = 0
        var errors = 0
        var unmatchedFlags = 0
        var errorCodes: [String: Int] = [:]
        var ackLatency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        var flagLatency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

        mutating func add(_ o: Snapshot) {
            acked += o.acked
            flags += o.flags
            proctorEvents += o.proctorEvents
            errors += o.errors
            unmatchedFlags += o.unmatchedFlags
            errorCodes.merge(o.errorCodes, uniquingKeysWith: +)
            ackLatency.add(o.ackLatency)
            flagLatency.add(o.flagLatency)
        }
    }

    var current = Snapshot()

    func snapshot() -> Snapshot { current }

    func reset() {
        current.acked = 0
        current.flags = 0
        current.proctorEvents = 0
        current.ackLatency.reset()
        current.flagLatency.reset()
    }
}

/// A simulated candidate (joins, then sends one telemetry event every `interval` with a random phase) or proctor
/// (watches its exam and times every `flag.raised`).
final class ProctoringHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    enum Role {
        case candidate(examID: String)
        case proctor(examID: String)
    }

    let role: Role
    let stats: ProctoringStats
    let running: NIOLockedValueBox<Bool>
    let clock: FlagClock
    let interval: TimeAmount?
    let flagRatio: Double
    let readyPromise: EventLoopPromise<Void>
    private var attemptID: String?
    private var ready = false
    private var nextID: Int64 = 1
    private var sendTimes: [UInt64] = []
    private var head = 0
    private var timer: RepeatedTask?
    private var focused = true

    init(role: Role, stats: ProctoringStats, running: NIOLockedValueBox<Bool>, clock: FlagClock, interval: TimeAmount?,
         flagRatio: Double, readyPromise: EventLoopPromise<Void>) {
        self.role = role
        self.stats = stats
        self.running = running
        self.clock = clock
        self.interval = interval
        self.flagRatio = flagRatio
        self.readyPromise = readyPromise
    }

    func handlerAdded(context: ChannelHandlerContext) {
        switch role {
        case .candidate(let exam): write(context: context, #"{"op":"attempt.join","id":0,"examId":"\#(exam)"}"#)
        case .proctor(let exam): write(context: context, #"{"op":"proctor.watch","id":0,"examId":"\#(exam)"}"#)
        }
        context.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func start(context: ChannelHandlerContext) {
        guard let interval else { return }
        let phase = TimeAmount.nanoseconds(Int64.random(in: 0..<max(1, interval.nanoseconds)))
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleRepeatedTask(initialDelay: phase, delay: interval) { _ in
            let (handler, context) = bound.value
            guard handler.running.withLockedValue({ $0 }) else { return }
            handler.sendTelemetry(context: context)
            context.flush()
        }
    }

    private func sendTelemetry(context: ChannelHandlerContext) {
        guard let attemptID else { return }
        let id = nextID
        nextID += 1
        let now = NIODeadline.now().uptimeNanoseconds
        let at = Self.timestamp()
        let event: String
        if Double.random(in: 0..<1) < flagRatio {
            event = #"{"kind":"clipboard.paste","at":"\#(at)"}"#
            clock.record(attemptID, at: now)
        } else if id % 3 == 0 {
            event = #"{"kind":"face.count","at":"\#(at)","data":{"n":1}}"#
        } else {
            focused.toggle()
            event = #"{"kind":"\#(focused ? "focus.gained" : "focus.lost")","at":"\#(at)"}"#
        }
        sendTimes.append(now)
        write(context: context, #"{"op":"telemetry","id":\#(id),"attemptId":"\#(attemptID)","events":[\#(event)]}"#)
    }

    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let millis = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
        return Timestamp.format(millis: millis)
    }

    private func write(context: ChannelHandlerContext, _ s: String) {
        var buffer = context.channel.allocator.buffer(capacity: s.utf8.count)
        buffer.writeString(s)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let text = String(buffer: frame.data)
            if !ready {
                // The first reply: attempt.join (its attemptId) or proctor.watch.
                guard text.hasPrefix(#"{"op":"reply""#) else { return }
                guard text.contains(#""ok":true"#) else {
                    stats.current.errors += 1
                    readyPromise.fail(LoadError.helloRefused(text))
                    return
                }
                if case .candidate = role { attemptID = FrameText.string(text, "attemptId") }
                ready = true
                readyPromise.succeed(())
                return
            }
            if text.hasPrefix(#"{"op":"event""#) {
                guard case .proctor = role else { return }
                stats.current.proctorEvents += 1
                if text.contains(#""type":"flag.raised""#) {
                    stats.current.flags += 1
                    if let attempt = FrameText.string(text, "attemptId"), let sent = clock.take(attempt) {
                        stats.current.flagLatency.record(NIODeadline.now().uptimeNanoseconds - sent)
                    } else {
                        stats.current.unmatchedFlags += 1
                    }
                }
                return
            }
            if head < sendTimes.count {
                stats.current.ackLatency.record(NIODeadline.now().uptimeNanoseconds - sendTimes[head])
                head += 1
                if head > 1024 {
                    sendTimes.removeFirst(head)
                    head = 0
                }
            }
            if text.contains(#""ok":true"#) {
                stats.current.acked += 1
            } else {
                stats.current.errors += 1
                stats.current.errorCodes[FrameText.string(text, "code") ?? "?", default: 0] += 1
            }
        case .ping:
            var data = frame.data
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: data.readSlice(length: data.readableBytes) ?? data)
            context.write(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        stats.current.errors += 1
        readyPromise.fail(error)
        context.close(promise: nil)
    }
}
