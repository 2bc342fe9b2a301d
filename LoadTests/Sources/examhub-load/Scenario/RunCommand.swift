import ArgumentParser
import ExamHubAuth
import ExamHubDomain
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `examhub-load run SCENARIO.yaml`: runs a scenario file (`LoadTests/scenarios/`) against a hub or a peer, prints a
/// progress line every second, then a summary (per operation: count, rate, p50/p90/p99/p99.9/max from HdrHistogram;
/// errors by code; correctness checks; CPU of the load tester and, with `--server-pid`, of the server) and one JSON
/// line. Exits 1 when any error or failed check was seen.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a scenario file (echo, broadcast, exam-wave, proctor-room, reconnect-storm, idle).")

    @Argument(help: "The scenario file (YAML), e.g. LoadTests/scenarios/exam-wave.yaml.") var scenario: String
    @Option(name: .customLong("set"), help: "Override a parameter of the file: --set candidates=500 (repeatable).")
    var overrides: [String] = []
    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port = 8080
    @Flag(help: "The server is a peer (LoadTests/Peers): echo and broadcast on /v1/echo and /v1/broadcast, no auth.")
    var peer = false
    @Option(help: "Client event loop threads.") var threads = 1
    @Option(help: "The hub's HS256 secret (default EXAMHUB_JWT_SECRET), to mint tokens and create exams.")
    var secret: String?
    @Option(help: "Tenant for the run.") var tenant = "load"
    @Option(help: "The server's process id: its CPU time over the measurement is reported.") var serverPid: Int32?
    @Option(help: "Seconds between progress lines (0: none).") var progress = 1.0
    @Option(help: "Also write the JSON summary to this file.") var json: String?
    @Option(help: "Connections opened at once.") var connectBatch = 500

    func run() async throws {
        let file: ScenarioFile
        do { file = try ScenarioFile.load(path: scenario, overrides: overrides) } catch let e as ScenarioError {
            throw ValidationError(e.description)
        }
        if peer, ![.echo, .broadcast, .idle].contains(file.kind) {
            throw ValidationError("peers only do echo, broadcast and idle (\(file.kind.rawValue) needs the hub)")
        }
        if peer, file.kind == .echo, file.string("op") != "echo" { throw ValidationError("peers only do op=echo") }
        let runner = try await ScenarioRunner(
            file: file, host: host, port: port, peer: peer, threads: max(1, threads), tenant: tenant,
            secret: peer ? nil : try hubSecret(file), serverPID: serverPid, progressEvery: progress,
            connectBatch: max(1, connectBatch))
        let report = try await runner.run()
        print(report.text)
        let line = String(data: try JSONSerialization.data(withJSONObject: report.json, options: [.sortedKeys]), encoding: .utf8) ?? "{}"
        if let json { try Data((line + "\n").utf8).write(to: URL(fileURLWithPath: json)) }
        print(line)
        if !report.passed { throw ExitCode.failure }
    }

    private func hubSecret(_ file: ScenarioFile) throws -> String? {
        if file.kind == .echo, file.string("op") == "echo" { return nil }
        guard let s = secret ?? ProcessInfo.processInfo.environment["EXAMHUB_JWT_SECRET"] else {
            throw ValidationError("\(file.kind.rawValue) on the hub needs --secret or EXAMHUB_JWT_SECRET (the hub's HS256 secret)")
        }
        return s
    }
}

/// What a run printed and what it returns for machines.
struct ScenarioReport {
    var text: String
    var json: [String: Any]
    var passed: Bool
}

/// Runs one scenario: owns the client event loops, the per-loop statistics and the sockets.
final class ScenarioRunner: @unchecked Sendable {
    let file: ScenarioFile
    let host: String
    let port: Int
    let peer: Bool
    let tenant: String
    let minter: TokenMinter?
    let serverPID: Int32?
    let progressEvery: Double
    let connectBatch: Int
    let group: MultiThreadedEventLoopGroup
    let running = NIOLockedValueBox(true)
    let flags = FlagClock()
    private var statsByLoop: [ObjectIdentifier: ScenarioStats] = [:]
    private var notes: [String] = []
    private var extra: [String: Any] = [:]
    private var headline = ""
    /// The operations before the measured window (connecting, joining, subscribing), when the window was reset.
    private var setup: ScenarioSnapshot?

    init(file: ScenarioFile, host: String, port: Int, peer: Bool, threads: Int, tenant: String, secret: String?,
         serverPID: Int32?, progressEvery: Double, connectBatch: Int) async throws {
        self.file = file
        self.host = host
        self.port = port
        self.peer = peer
        self.tenant = tenant
        if let secret { self.minter = try await TokenMinter(secret: secret) } else { self.minter = nil }
        self.serverPID = serverPID
        self.progressEvery = progressEvery
        self.connectBatch = connectBatch
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        for loop in group.makeIterator() { statsByLoop[ObjectIdentifier(loop)] = ScenarioStats() }
    }

    func stats(_ loop: any EventLoop) -> ScenarioStats { statsByLoop[ObjectIdentifier(loop)] ?? ScenarioStats() }

    // MARK: Running

    func run() async throws -> ScenarioReport {
        let progressTask = startProgress()
        defer { progressTask?.cancel() }
        let window: Window
        switch file.kind {
        case .echo: window = try await runEcho()
        case .idle: window = try await runIdle()
        case .broadcast: window = try await runBroadcast()
        case .examWave: window = try await runExamWave()
        case .proctorRoom: window = try await runProctorRoom()
        case .reconnectStorm: window = try await runReconnectStorm()
        }
        progressTask?.cancel()
        running.withLockedValue { $0 = false }
        let total = try await snapshot(histograms: true)
        try await group.shutdownGracefully()
        return report(total, window: window)
    }

    /// The measured part of a run: its length and the CPU both sides used in it.
    struct Window {
        var seconds: Double
        var clientCPU: Double
        var serverCPU: Double?
    }

    /// Marks the start of the measured part (resetting latencies and counts after a warm-up).
    struct WindowStart {
        let at: NIODeadline
        let clientCPU: Double
        let serverCPU: Double?
    }

    func startWindow(reset: Bool) async throws -> WindowStart {
        if reset, setup == nil {
            // What connecting, joining and subscribing took is reported apart (it is not part of the steady state).
            let s = try await snapshot(histograms: true)
            if s.done.contains(where: { $0 > 0 }) { setup = s }
        }
        if reset {
            for loop in group.makeIterator() {
                let s = stats(loop)
                try await loop.submit { s.resetWindow() }.get()
            }
        }
        return WindowStart(at: .now(), clientCPU: Self.clientCPU(), serverCPU: serverPID.flatMap(Self.processCPU))
    }

    func endWindow(_ start: WindowStart) -> Window {
        let seconds = Double((NIODeadline.now() - start.at).nanoseconds) / 1e9
        let server = serverPID.flatMap(Self.processCPU).flatMap { end in start.serverCPU.map { end - $0 } }
        return Window(seconds: seconds, clientCPU: Self.clientCPU() - start.clientCPU, serverCPU: server)
    }

    func snapshot(histograms: Bool) async throws -> ScenarioSnapshot {
        var total = ScenarioSnapshot()
        for loop in group.makeIterator() {
            let s = stats(loop)
            total.add(try await loop.submit { s.snapshot(histograms: histograms) }.get(), histograms: histograms)
        }
        return total
    }

    private func startProgress() -> Task<Void, Never>? {
        guard progressEvery > 0 else { return nil }
        let every = progressEvery
        return Task { [self] in
            let t0 = NIODeadline.now()
            var last = ScenarioSnapshot()
            var lastAt = t0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(every))
                guard !Task.isCancelled, let now = try? await snapshot(histograms: false) else { return }
                let at = NIODeadline.now()
                let dt = max(0.001, Double((at - lastAt).nanoseconds) / 1e9)
                var parts: [String] = []
                for op in Op.allCases where now.done[op.rawValue] != last.done[op.rawValue] {
                    let d = now.done[op.rawValue] - last.done[op.rawValue]
                    if d > 0 { parts.append("\(op.name) \(Int((Double(d) / dt).rounded()))/s") }
                }
                let t = Int((Double((at - t0).nanoseconds) / 1e9).rounded())
                print("[\(String(format: "%4d", t))s] open \(now.open) | \(parts.isEmpty ? "-" : parts.joined(separator: ", ")) | errors \(now.errorCount) | check failures \(now.checkFailures)")
                last = now
                lastAt = at
            }
        }
    }

    // MARK: Connecting

    /// Opens one socket on `loop` with the handler `make` builds; the future fails if it never became ready.
    func open<H: ScenarioSocket>(
        loop: any EventLoop, path: String, token: String?, make: @escaping @Sendable (ScenarioStats, EventLoopPromise<Void>, UInt64) -> H
    ) -> EventLoopFuture<H> {
        let s = stats(loop)
        let openedAt = NIODeadline.now().uptimeNanoseconds
        return WebSocketConnector.connect(loop: loop, host: host, port: port, path: path, bearer: token) { ready in
            make(s, ready, openedAt)
        }.map { $0.1.value }
    }

    /// Opens `count` sockets, `connectBatch` at a time, and waits for each (a failure is counted, not thrown).
    func openMany<H: ScenarioSocket>(
        _ count: Int, path: String, token: @escaping (Int) async throws -> String?,
        make: @escaping @Sendable (Int, ScenarioStats, EventLoopPromise<Void>, UInt64) -> H
    ) async throws -> [H] {
        var out: [H] = []
        var i = 0
        while i < count {
            let n = min(connectBatch, count - i)
            var futures: [EventLoopFuture<H>] = []
            for j in i..<(i + n) {
                let t = try await token(j)
                futures.append(open(loop: group.next(), path: path, token: t) { s, p, at in make(j, s, p, at) })
            }
            for f in futures {
                do { out.append(try await f.get()) } catch { await countError("connect") }
            }
            i += n
        }
        if out.isEmpty && count > 0 {
            throw ScenarioError("no socket could be opened to \(host):\(port)\(path): is the server running there?")
        }
        return out
    }

    func countError(_ code: String) async {
        let loop = group.next()
        let s = stats(loop)
        _ = try? await loop.submit { s.error(code) }.get()
    }

    func mint(_ sub: String, _ role: Role) async throws -> String {
        guard let minter else { throw ScenarioError("no secret to mint tokens") }
        return try await minter.mint(sub: sub, tenant: tenant, role: role, ttlSeconds: 7200)
    }

    /// Creates an exam over HTTP (as an admin of the run's tenant). `pasteFlags`: every `clipboard.paste` raises a
    /// flag at once (the proctor-room's latency samples).
    func createExam(_ id: String, questions: Int, durationSec: Int, pasteFlags: Bool = false) async throws {
        let body = LoadExams.body(id: id, title: "Load scenario \(file.name)", questions: questions,
                                  durationSec: durationSec, pasteFlags: pasteFlags)
        try await LoadExams.create(host: host, port: port, adminToken: try await mint("load-admin", .admin), id: id, body: body)
    }

    private func runID() -> String { String(UInt64.random(in: 0...UInt64.max), radix: 36) }

    // MARK: echo and idle

    private func runEcho() async throws -> Window {
        let n = try file.int("connections"), inFlight = max(1, try file.int("inFlight"))
        let ping = file.string("op") == "ping"
        guard ping || file.string("op") == "echo" else { throw ScenarioError("`op` must be echo or ping") }
        let bytes = try file.int("payloadBytes")
        let payload = #"{"op":"echo","pad":""# + String(repeating: "x", count: max(0, bytes - 22)) + #""}"#
        let token = ping ? try await mint("load-ping", .candidate) : nil
        let running = self.running
        let sockets = try await openMany(n, path: ping ? "/v1/socket" : "/v1/echo", token: { _ in token }) { _, s, p, at in
            ThroughputSocket(mode: ping ? .ping : .echo, hub: ping, inFlight: inFlight, payload: payload, stats: s,
                             running: running, readyPromise: p, openedAt: at)
        }
        headline = "\(ping ? "ping op" : "echo"): \(sockets.count) connections x \(inFlight) in flight, \(bytes)-byte messages"
        for s in sockets { s.eventLoop.execute { s.start() } }
        try await Task.sleep(for: .seconds(try file.double("warmup")))
        let w = try await startWindow(reset: true)
        try await Task.sleep(for: .seconds(try file.double("duration")))
        let window = endWindow(w)
        running.withLockedValue { $0 = false }
        for s in sockets { s.eventLoop.execute { s.drop() } }
        return window
    }

    private func runIdle() async throws -> Window {
        let n = try file.int("connections")
        let token = peer ? nil : try await mint("load-idle", .candidate)
        let running = self.running, hub = !peer
        let t0 = NIODeadline.now()
        let sockets = try await openMany(n, path: peer ? "/v1/echo" : "/v1/socket", token: { _ in token }) { _, s, p, at in
            ThroughputSocket(mode: .idle, hub: hub, inFlight: 0, payload: "", stats: s, running: running,
                             readyPromise: p, openedAt: at)
        }
        let connectSeconds = Double((NIODeadline.now() - t0).nanoseconds) / 1e9
        headline = "idle: \(sockets.count) \(peer ? "" : "authenticated ")sockets held"
        print("holding \(sockets.count) idle sockets (connected in \(String(format: "%.2f", connectSeconds)) s)")
        try? FileHandle.standardOutput.synchronize()
        extra["connectSeconds"] = connectSeconds
        extra["held"] = sockets.count
        let w = try await startWindow(reset: false)
        try await Task.sleep(for: .seconds(try file.double("duration")))
        let window = endWindow(w)
        running.withLockedValue { $0 = false }
        for s in sockets { s.eventLoop.execute { s.drop() } }
        return window
    }

    // MARK: broadcast

    private func runBroadcast() async throws -> Window {
        let n = try file.int("subscribers"), rate = try file.double("rate"), bytes = try file.int("payloadBytes")
        let questions = try file.int("questions")
        let running = self.running
        let raw = peer
        var channel = ""
        let examID = raw ? "" : "bcast-\(runID())"
        var publisherToken: String?
        if !raw {
            try await createExam(examID, questions: questions, durationSec: 86_400)
            publisherToken = try await mint("bcast-publisher-\(examID)", .candidate)
        }
        // The publisher first (on the hub its attempt names the channel), started once every subscriber is in.
        let publisher = try await open(loop: group.next(), path: raw ? "/v1/broadcast" : "/v1/socket", token: publisherToken) {
            s, p, at in
            PublisherSocket(raw: raw, examID: examID, payloadBytes: bytes, questions: questions, ratePerSecond: rate,
                            stats: s, running: running, readyPromise: p, openedAt: at)
        }.get()
        if !raw {
            channel = try await publisher.eventLoop.submit { "attempt:\(publisher.attemptID ?? "")" }.get()
        }
        let ch = channel
        let subscribers = try await openMany(n, path: raw ? "/v1/broadcast" : "/v1/socket", token: { i in
            raw ? nil : try await self.mint("bcast-proctor-\(i)", .proctor)
        }) { _, s, p, at in
            SubscriberSocket(raw: raw, channel: ch, stats: s, running: running, readyPromise: p, openedAt: at)
        }
        headline = "broadcast: 1 publisher at \(Int(rate)) messages/s to \(subscribers.count) subscribers"
            + (raw ? " (/v1/broadcast)" : " (answer.saved on \(channel), proctors subscribed)")
        try await publisher.eventLoop.submit { publisher.start() }.get()
        try await Task.sleep(for: .seconds(try file.double("warmup")))
        let w = try await startWindow(reset: true)
        try await Task.sleep(for: .seconds(try file.double("duration")))
        let window = endWindow(w)
        running.withLockedValue { $0 = false }
        try await Task.sleep(for: .seconds(try file.double("drain")))
        let published = try await publisher.eventLoop.submit { publisher.published }.get()
        let total = try await snapshot(histograms: false)
        let expected = published * subscribers.count
        let lost = max(0, expected - total.received)
        if lost > 0 {
            let loop = group.next()
            let s = stats(loop)
            _ = try? await loop.submit { s.checks[Check.lostDelivery.rawValue] += lost }.get()
        }
        extra["published"] = published
        extra["subscribers"] = subscribers.count
        extra["expectedDeliveries"] = expected
        extra["receivedDeliveries"] = total.received
        extra["lostDeliveries"] = lost
        notes.append("published \(published), delivered \(total.received) of \(expected) (\(lost) lost)")
        for s in subscribers { s.eventLoop.execute { s.drop() } }
        publisher.eventLoop.execute { publisher.drop() }
        return window
    }

    // MARK: exam-wave

    private func runExamWave() async throws -> Window {
        let n = try file.int("candidates"), ramp = try file.double("ramp"), duration = try file.double("duration")
        let questions = try file.int("questions"), window = try file.double("submitWindow")
        let examID = "wave-\(runID())"
        try await createExam(examID, questions: questions, durationSec: Int(ramp + duration) + 600)
        var plan = CandidatePlan(examID: examID, questions: questions)
        plan.saveEvery = try file.interval("saveEvery").map { .milliseconds(Int64($0 * 1000)) }
        let eventEvery = try file.interval("telemetryEvery"), frameEvery = try file.interval("telemetryFrameEvery")
        if let eventEvery {
            // Events every `telemetryEvery`, sent in a frame every `telemetryFrameEvery` (as examhub.js batches them).
            let frame = max(eventEvery, frameEvery ?? eventEvery)
            plan.telemetryEvery = .milliseconds(Int64(frame * 1000))
            plan.telemetryPerFrame = max(1, Int((frame / eventEvery).rounded()))
        }
        plan.chatEvery = try file.interval("chatEvery")
        plan.flagRatio = try file.double("flagRatio")
        headline = "exam-wave: \(n) candidates joining over \(Int(ramp)) s, deadline \(Int(ramp + duration)) s after the start; "
            + "save every \(file.string("saveEvery")) s, a telemetry event every \(file.string("telemetryEvery")) s sent every \(file.string("telemetryFrameEvery")) s, chat every ~\(file.string("chatEvery")) s, submits in the last \(file.string("submitWindow")) s"
        // Tokens first, so that minting does not slow the ramp.
        var tokens: [String] = []
        tokens.reserveCapacity(n)
        for i in 0..<n { tokens.append(try await mint("wave-\(examID)-\(i)", .candidate)) }
        let start = try await startWindow(reset: true)
        let deadline = start.at + .milliseconds(Int64((ramp + duration) * 1000))
        let running = self.running
        var candidates: [Candidate] = []
        var pending: [EventLoopFuture<CandidateSocket>] = []
        for i in 0..<n {
            let due = start.at + .milliseconds(Int64(ramp * 1000 * Double(i) / Double(max(1, n))))
            let wait = due - .now()
            if wait > .milliseconds(5) { try await Task.sleep(for: .nanoseconds(wait.nanoseconds)) }
            let loop = group.next()
            let c = Candidate(index: i, token: tokens[i], loop: loop, questions: questions)
            candidates.append(c)
            var candidatePlan = plan
            candidatePlan.submitAt = deadline - .milliseconds(Int64(Double.random(in: 0..<max(0.001, window)) * 1000))
            let p = candidatePlan, flags = self.flags
            pending.append(open(loop: loop, path: "/v1/socket", token: c.token) { s, pr, at in
                CandidateSocket(candidate: c, plan: p, flags: flags, recoveringSince: nil, stats: s, running: running,
                                readyPromise: pr, openedAt: at)
            })
            if pending.count >= connectBatch { try await settle(&pending) }
        }
        try await settle(&pending)
        // Wait for the deadline, then for the submit wave's replies (at most 30 s more).
        let left = deadline - .now()
        if left > .zero { try await Task.sleep(for: .nanoseconds(left.nanoseconds)) }
        var submitted = 0
        for _ in 0..<300 {
            submitted = 0
            for c in candidates { submitted += try await c.loop.submit { c.submitted ? 1 : 0 }.get() }
            if submitted == candidates.count { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let w = endWindow(start)
        running.withLockedValue { $0 = false }
        extra["submitted"] = submitted
        extra["candidates"] = n
        if submitted < n {
            let missing = n - submitted
            let loop = group.next()
            let s = stats(loop)
            _ = try? await loop.submit { s.errors["not_submitted", default: 0] += missing }.get()
        }
        notes.append("\(submitted) of \(n) candidates submitted")
        for c in candidates { c.loop.execute { c.socket?.drop() } }
        return w
    }

    private func settle(_ futures: inout [EventLoopFuture<CandidateSocket>]) async throws {
        for f in futures {
            do { _ = try await f.get() } catch { await countError("connect") }
        }
        futures.removeAll()
    }

    // MARK: proctor-room

    private func runProctorRoom() async throws -> Window {
        let proctors = try file.int("proctors"), room = try file.int("roomSize")
        guard proctors >= 1 else { throw ScenarioError("`proctors` must be at least 1") }
        let run = runID()
        let exams = (0..<proctors).map { "room-\(run)-\($0)" }
        for e in exams { try await createExam(e, questions: 10, durationSec: 86_400, pasteFlags: true) }
        let running = self.running, flags = self.flags
        let watchers = try await openMany(proctors, path: "/v1/socket", token: { i in
            try await self.mint("room-proctor-\(run)-\(i)", .proctor)
        }) { i, s, p, at in ProctorSocket(examID: exams[i], flags: flags, stats: s, running: running, readyPromise: p, openedAt: at) }
        var plan = CandidatePlan(examID: "")
        plan.telemetryEvery = try file.interval("telemetryEvery").map { .milliseconds(Int64($0 * 1000)) }
        plan.saveEvery = try file.interval("saveEvery").map { .milliseconds(Int64($0 * 1000)) }
        plan.flagRatio = try file.double("flagRatio")
        let basePlan = plan
        let candidates = try await openMany(proctors * room, path: "/v1/socket", token: { i in
            try await self.mint("room-cand-\(run)-\(i)", .candidate)
        }) { i, s, p, at in
            var plan = basePlan
            plan.examID = exams[i % exams.count]
            let c = Candidate(index: i, token: "", loop: p.futureResult.eventLoop, questions: 10)
            return CandidateSocket(candidate: c, plan: plan, flags: flags, recoveringSince: nil, stats: s, running: running,
                                   readyPromise: p, openedAt: at)
        }
        headline = "proctor-room: \(watchers.count) proctors watching rooms of \(room) (\(candidates.count) candidates), telemetry every \(file.string("telemetryEvery")) s, \(file.string("flagRatio")) of frames raise a flag"
        try await Task.sleep(for: .seconds(try file.double("warmup")))
        let w = try await startWindow(reset: true)
        try await Task.sleep(for: .seconds(try file.double("duration")))
        let window = endWindow(w)
        running.withLockedValue { $0 = false }
        try await Task.sleep(for: .milliseconds(500))
        for s in candidates { s.eventLoop.execute { s.drop() } }
        for s in watchers { s.eventLoop.execute { s.drop() } }
        return window
    }

    // MARK: reconnect-storm

    private func runReconnectStorm() async throws -> Window {
        let n = try file.int("candidates"), questions = try file.int("questions")
        let storms = try file.int("storms"), gap = try file.double("stormEvery"), jitter = try file.double("jitter")
        let examID = "storm-\(runID())"
        try await createExam(examID, questions: questions, durationSec: 86_400)
        var plan = CandidatePlan(examID: examID, questions: questions)
        plan.saveEvery = try file.interval("saveEvery").map { .milliseconds(Int64($0 * 1000)) }
        plan.trackChannel = true
        let running = self.running, flags = self.flags
        var candidates: [Candidate] = []
        for i in 0..<n {
            candidates.append(Candidate(index: i, token: try await mint("storm-\(examID)-\(i)", .candidate),
                                        loop: group.next(), questions: questions))
        }
        let p = plan
        var futures: [EventLoopFuture<CandidateSocket>] = []
        for c in candidates {
            futures.append(open(loop: c.loop, path: "/v1/socket", token: c.token) { s, pr, at in
                CandidateSocket(candidate: c, plan: p, flags: flags, recoveringSince: nil, stats: s, running: running,
                                readyPromise: pr, openedAt: at)
            })
            if futures.count >= connectBatch { try await settle(&futures) }
        }
        try await settle(&futures)
        // A proctor warns every candidate right after each drop: the warnings land while they are away, so each
        // must come back through recovery (or live, for those already back).
        let warnings = try file.int("warnings")
        let proctor = try await open(loop: group.next(), path: "/v1/socket", token: try await mint("storm-proctor-\(examID)", .proctor)) {
            s, pr, at in ProctorSocket(examID: examID, flags: flags, stats: s, running: running, readyPromise: pr, openedAt: at)
        }.get()
        let all = candidates
        try await proctor.eventLoop.submit {
            proctor.onWarned = { tag in
                guard tag >= 0, tag < all.count else { return }
                let c = all[tag]
                c.loop.execute { c.warningsSent += 1 }
            }
        }.get()
        headline = "reconnect-storm: \(n) candidates saving every \(file.string("saveEvery")) s; \(storms) storms \(Int(gap)) s apart, everyone dropped at once and back within \(file.string("jitter")) s with subscribe since"
        try await Task.sleep(for: .seconds(try file.double("warmup")))
        let w = try await startWindow(reset: true)
        var stormTimes: [Double] = []
        for k in 0..<storms {
            try await Task.sleep(for: .seconds(gap))
            let t0 = NIODeadline.now()
            for c in candidates {
                c.loop.execute { [self] in
                    c.socket?.drop()
                    let delay = TimeAmount.milliseconds(Int64(Double.random(in: 0...max(0, jitter)) * 1000))
                    c.loop.scheduleTask(in: delay) { self.reconnect(c, plan: p, attempt: 1) }
                }
            }
            if warnings > 0 {
                let ids = try await withThrowingTaskGroup(of: (Int, String?).self) { g in
                    for c in candidates { g.addTask { (c.index, try await c.loop.submit { c.attemptID }.get()) } }
                    var out: [(Int, String)] = []
                    for try await (i, id) in g { if let id { out.append((i, id)) } }
                    return out
                }
                proctor.eventLoop.execute {
                    for _ in 0..<warnings { for (i, id) in ids { proctor.warn(attemptID: id, tag: i) } }
                    proctor.flush()
                }
            }
            // Wait until every candidate recovered (open again), at most a minute.
            var back = 0
            for _ in 0..<600 {
                try await Task.sleep(for: .milliseconds(100))
                back = 0
                for c in candidates {
                    back += try await c.loop.submit { c.socket?.isReady == true ? 1 : 0 }.get()
                }
                if back == n { break }
            }
            let took = Double((NIODeadline.now() - t0).nanoseconds) / 1e9
            stormTimes.append(took)
            print("storm \(k + 1): \(n) dropped, \(back) recovered in \(String(format: "%.2f", took)) s")
        }
        try await Task.sleep(for: .seconds(gap))
        let window = endWindow(w)
        running.withLockedValue { $0 = false }
        var sent = 0, seen = 0
        for c in candidates {
            let (a, b) = try await c.loop.submit { (c.warningsSent, c.warningsSeen) }.get()
            sent += a
            seen += b
            if b < a {
                let st = stats(c.loop)
                try await c.loop.submit { st.checks[Check.warningLost.rawValue] += a - b }.get()
            }
        }
        extra["warningsSent"] = sent
        extra["warningsReceived"] = seen
        notes.append("\(seen) of \(sent) warnings sent while candidates were away were received")
        proctor.eventLoop.execute { proctor.drop() }
        let verified = try await snapshot(histograms: false).verified
        extra["stormSeconds"] = stormTimes
        extra["savesVerifiedAfterDrops"] = verified
        notes.append("\(verified) saves acknowledged before a drop were checked after it (in the replayed events and the rejoin's answers)")
        notes.append("storms took " + stormTimes.map { String(format: "%.2f s", $0) }.joined(separator: ", ") + " until every candidate had recovered")
        for c in candidates { c.loop.execute { c.socket?.drop() } }
        return window
    }

    /// Reconnects a dropped candidate (on its loop); retries a failed connect after a second, five times.
    private func reconnect(_ c: Candidate, plan: CandidatePlan, attempt: Int) {
        let since = NIODeadline.now().uptimeNanoseconds
        let running = self.running, flags = self.flags
        _ = open(loop: c.loop, path: "/v1/socket", token: c.token) { s, pr, at in
            CandidateSocket(candidate: c, plan: plan, flags: flags, recoveringSince: since, stats: s, running: running,
                            readyPromise: pr, openedAt: at)
        }.whenFailure { [self] _ in
            stats(c.loop).error(attempt < 5 ? "reconnect_retry" : "reconnect_failed")
            if attempt < 5 { c.loop.scheduleTask(in: .seconds(1)) { self.reconnect(c, plan: plan, attempt: attempt + 1) } }
        }
    }

    // MARK: Report

    private func report(_ s: ScenarioSnapshot, window: Window) -> ScenarioReport {
        var lines = ["", "\(file.name) (\(file.kind.rawValue)) on \(peer ? "peer" : "hub") \(host):\(port): \(headline)"]
        lines.append(String(format: "measured %.1f s", window.seconds))
        lines.append("operation                         count        /s      p50      p90      p99    p99.9      max  (ms)")
        var ops: [String: Any] = [:]
        var messages = 0
        for op in Op.allCases where s.done[op.rawValue] > 0 {
            let h = s.latency[op.rawValue]
            func ms(_ p: Double) -> Double { Double(h.valueAtPercentile(p)) / 1e6 }
            let count = s.done[op.rawValue]
            if op != .connect { messages += count }
            let rate = Double(count) / max(0.001, window.seconds)
            lines.append(op.name.padding(toLength: 30, withPad: " ", startingAt: 0) + String(format: " %8d %9.0f %8.2f %8.2f %8.2f %8.2f %8.2f", count, rate,
                                ms(50), ms(90), ms(99), ms(99.9), Double(h.max) / 1e6))
            ops[op.name] = ["count": count, "perSecond": rate, "p50Ms": ms(50), "p90Ms": ms(90), "p99Ms": ms(99),
                            "p999Ms": ms(99.9), "maxMs": Double(h.max) / 1e6]
        }
        var setupOps: [String: Any] = [:]
        if let setup {
            var parts: [String] = []
            for op in Op.allCases where setup.done[op.rawValue] > 0 {
                let h = setup.latency[op.rawValue]
                func ms(_ p: Double) -> Double { Double(h.valueAtPercentile(p)) / 1e6 }
                parts.append(String(format: "%@ %d (p50 %.2f, p99 %.2f, max %.2f ms)", op.name, setup.done[op.rawValue],
                                    ms(50), ms(99), Double(h.max) / 1e6))
                setupOps[op.name] = ["count": setup.done[op.rawValue], "p50Ms": ms(50), "p90Ms": ms(90), "p99Ms": ms(99),
                                     "p999Ms": ms(99.9), "maxMs": Double(h.max) / 1e6]
            }
            lines.append("before measuring: " + parts.joined(separator: "; "))
        }
        let errs = s.errors.sorted { $0.key < $1.key }
        lines.append("errors: " + (errs.isEmpty ? "none" : errs.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
        let failed = Check.allCases.filter { s.checks[$0.rawValue] > 0 }
        lines.append("checks: " + (failed.isEmpty ? "all passed" : failed.map { "\($0.name) \(s.checks[$0.rawValue])" }.joined(separator: ", ")))
        for n in notes { lines.append(n) }
        var cpu = String(format: "load tester CPU %.2f s (%.2f cores)", window.clientCPU, window.clientCPU / max(0.001, window.seconds))
        if let server = window.serverCPU {
            cpu += String(format: "; server CPU %.2f s (%.2f cores), %.0f messages per server CPU-second", server,
                          server / max(0.001, window.seconds), server > 0 ? Double(messages) / server : 0)
        }
        lines.append(cpu)
        var json: [String: Any] = [
            "scenario": file.name, "kind": file.kind.rawValue, "target": peer ? "peer" : "hub", "parameters": file.parameters,
            "seconds": window.seconds, "ops": ops, "errors": s.errors,
            "checks": Dictionary(uniqueKeysWithValues: Check.allCases.map { ($0.name, s.checks[$0.rawValue]) }),
            "messages": messages, "messagesPerSecond": Double(messages) / max(0.001, window.seconds),
            "clientCpuSeconds": window.clientCPU, "setup": setupOps,
        ]
        if let server = window.serverCPU {
            json["serverCpuSeconds"] = server
            json["messagesPerServerCpuSecond"] = server > 0 ? Double(messages) / server : 0
        }
        json.merge(extra) { a, _ in a }
        let passed = s.errorCount == 0 && s.checkFailures == 0
        json["passed"] = passed
        lines.append(passed ? "PASSED" : "FAILED")
        return ScenarioReport(text: lines.joined(separator: "\n"), json: json, passed: passed)
    }

    // MARK: CPU

    static func clientCPU() -> Double {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec)
            + Double(u.ru_stime.tv_usec) / 1e6
    }

    /// utime + stime of a process from `/proc/PID/stat`, in seconds.
    static func processCPU(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
