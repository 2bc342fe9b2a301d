import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// The base of every scenario socket: writes text frames, answers pings, keeps the requests waiting for their
/// replies (by `id`), and hands replies and events to the role (a subclass). One instance per WebSocket, used only on
/// its channel's event loop.
class ScenarioSocket: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let stats: ScenarioStats
    let running: NIOLockedValueBox<Bool>
    let readyPromise: EventLoopPromise<Void>
    private(set) var context: ChannelHandlerContext?
    private var pending: [Int64: (op: Op, sent: UInt64, tag: Int)] = [:]
    private var nextID: Int64 = 1
    /// Ready (upgraded, authenticated, joined or recovered as its role requires) and not yet closed.
    private(set) var isReady = false
    /// The loop this socket lives on.
    var eventLoop: any EventLoop { readyPromise.futureResult.eventLoop }
    private var timers: [RepeatedTask] = []
    let openedAt: UInt64

    init(stats: ScenarioStats, running: NIOLockedValueBox<Bool>, readyPromise: EventLoopPromise<Void>, openedAt: UInt64) {
        self.stats = stats
        self.running = running
        self.readyPromise = readyPromise
        self.openedAt = openedAt
    }

    // MARK: For the roles

    /// The socket is upgraded (and, on `/v1/socket`, authenticated by the bearer token of the upgrade request).
    func opened() {}
    /// A reply to a request of this socket, with the text of the whole frame.
    func replied(_ op: Op, ok: Bool, sent: UInt64, now: UInt64, text: String) {}
    /// A reply to a request sent with a `tag` (which request of several it answers).
    func replied(_ op: Op, ok: Bool, tag: Int, text: String) {}
    /// An `event` frame.
    func event(_ text: String, now: UInt64) {}
    /// A frame that is neither a reply nor an event (echoes, peers' broadcasts).
    func other(_ frame: WebSocketFrame, now: UInt64) {}
    /// The socket closed (by either side).
    func closed() {}

    /// Marks the socket usable: counts it open, times the connect, and tells the runner.
    final func ready(now: UInt64) {
        guard !isReady else { return }
        isReady = true
        stats.open += 1
        stats.record(.connect, since: openedAt, now: now)
        readyPromise.succeed(())
    }

    /// Sends a request with a fresh `id` (the JSON text after `{"op":…,"id":N,` is `fields`), timed as `op`.
    final func request(_ op: Op, _ name: String, _ fields: String, now: UInt64 = NIODeadline.now().uptimeNanoseconds,
                       tag: Int = -1) {
        let id = nextID
        nextID += 1
        pending[id] = (op, now, tag)
        send(#"{"op":""# + name + #"","id":"# + String(id) + (fields.isEmpty ? "}" : "," + fields + "}"))
    }

    final func send(_ text: String) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        stats.sent += 1
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: buffer)), promise: nil)
    }

    final func flush() { context?.flush() }

    /// Runs `body` every `interval` after a random phase, while the run is on; stopped when the socket goes.
    final func every(_ interval: TimeAmount, _ body: @escaping (ScenarioSocket) -> Void) {
        guard let loop = context?.eventLoop else { return }
        let phase = TimeAmount.nanoseconds(Int64.random(in: 0..<max(1, interval.nanoseconds)))
        let bound = NIOLoopBound(self, eventLoop: loop)
        timers.append(loop.scheduleRepeatedTask(initialDelay: phase, delay: interval) { _ in
            let socket = bound.value
            guard socket.running.withLockedValue({ $0 }), socket.context != nil else { return }
            body(socket)
            socket.flush()
        })
    }

    final func stopTimers() {
        for t in timers { t.cancel() }
        timers.removeAll()
    }

    /// Closes the socket abruptly (TCP close, no close frame), as a dropped network would.
    final func drop() {
        stopTimers()
        context?.close(promise: nil)
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        opened()
        context.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimers()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimers()
        if isReady { stats.open -= 1 }
        isReady = false
        readyPromise.fail(LoadError.upgradeFailed)
        closed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let now = NIODeadline.now().uptimeNanoseconds
        switch frame.opcode {
        case .text:
            let view = frame.data.readableBytesView
            if view.starts(with: Self.replyPrefix) {
                let text = String(buffer: frame.data)
                guard let id = FrameText.int(text, "id"), let (op, sent, tag) = pending.removeValue(forKey: id) else {
                    stats.checks[Check.strayReply.rawValue] += 1
                    return
                }
                let ok = text.contains(#""ok":true"#)
                if ok {
                    stats.record(op, since: sent, now: now)
                } else {
                    stats.error(FrameText.string(text, "code") ?? "unparsed_error")
                }
                if tag >= 0 { replied(op, ok: ok, tag: tag, text: text) }
                replied(op, ok: ok, sent: sent, now: now, text: text)
            } else if view.starts(with: Self.eventPrefix) {
                event(String(buffer: frame.data), now: now)
            } else {
                other(frame, now: now)
            }
        case .binary:
            other(frame, now: now)
        case .ping:
            var data = frame.data
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: data.readSlice(length: data.readableBytes) ?? data)
            context.write(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            var data = frame.data
            let code = data.readInteger(as: UInt16.self).map(String.init) ?? "none"
            if running.withLockedValue({ $0 }) { stats.error("closed \(code)") }
            context.close(promise: nil)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if running.withLockedValue({ $0 }) || !isReady { stats.error("transport") }
        readyPromise.fail(error)
        context.close(promise: nil)
    }

    // MARK: Parsing helpers (see FrameText for single fields)

    static let replyPrefix = Array(#"{"op":"reply""#.utf8)
    static let eventPrefix = Array(#"{"op":"event""#.utf8)

    /// The whole frame as JSON (for the few replies a check reads in depth).
    static func json(_ text: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }
}

// MARK: - echo, ping, idle

/// Keeps `inFlight` echoes (on `/v1/echo`) or `ping` ops outstanding, or holds the socket idle. Replies come back in
/// order on one socket, so send times are a queue (no id map on this path).
final class ThroughputSocket: ScenarioSocket, @unchecked Sendable {
    enum Mode { case echo, ping, idle }
    let mode: Mode
    let inFlight: Int
    let payload: String
    /// On `/v1/socket` (authenticated by the upgrade's bearer token): ready after one `ping` reply, so the socket
    /// is known to be authenticated and routed.
    let hub: Bool
    private var sendTimes: [UInt64] = []
    private var head = 0
    private var probe = true

    init(mode: Mode, hub: Bool, inFlight: Int, payload: String, stats: ScenarioStats, running: NIOLockedValueBox<Bool>,
         readyPromise: EventLoopPromise<Void>, openedAt: UInt64) {
        self.mode = mode
        self.hub = hub
        self.inFlight = inFlight
        self.payload = payload
        super.init(stats: stats, running: running, readyPromise: readyPromise, openedAt: openedAt)
    }

    override func opened() {
        if hub {
            send(#"{"op":"ping","id":0}"#)
        } else {
            probe = false
            ready(now: NIODeadline.now().uptimeNanoseconds)
        }
    }

    /// Starts the request loop (once every socket is ready).
    func start() {
        guard mode != .idle else { return }
        for _ in 0..<inFlight { sendOne() }
        flush()
    }

    private func sendOne() {
        sendTimes.append(NIODeadline.now().uptimeNanoseconds)
        switch mode {
        case .echo: send(payload)
        case .ping: send(#"{"op":"ping","id":1}"#)
        case .idle: break
        }
    }

    override func replied(_ op: Op, ok: Bool, sent: UInt64, now: UInt64, text: String) {}

    override func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.opcode == .text || frame.opcode == .binary else {
            super.channelRead(context: context, data: data)
            return
        }
        let now = NIODeadline.now().uptimeNanoseconds
        if probe {
            probe = false
            if frame.data.readableBytesView.starts(with: Self.replyPrefix), String(buffer: frame.data).contains(#""ok":true"#) {
                ready(now: now)
            } else {
                stats.error(FrameText.string(String(buffer: frame.data), "code") ?? "refused")
                readyPromise.fail(LoadError.helloRefused(String(buffer: frame.data)))
            }
            return
        }
        if mode == .ping, !frame.data.readableBytesView.starts(with: Self.replyPrefix) {
            if frame.data.readableBytesView.starts(with: Self.eventPrefix) { return }
            stats.error("unexpected_frame")
        }
        if head < sendTimes.count {
            let sent = sendTimes[head]
            head += 1
            if head > 4096 {
                sendTimes.removeFirst(head)
                head = 0
            }
            stats.record(mode == .ping ? .ping : .echo, since: sent, now: now)
        } else {
            stats.checks[Check.strayReply.rawValue] += 1
        }
        if running.withLockedValue({ $0 }) { sendOne() }
    }
}

// MARK: - broadcast

/// The broadcast publisher. On a peer (`raw`): sends `{"seq":N,"t":<uptime ns>,"pad":"…"}` on `/v1/broadcast`. On
/// the hub: a candidate saving an answer whose value is the send time, so that every `answer.saved` event on its
/// attempt channel carries it to the subscribers (proctors of the exam).
final class PublisherSocket: ScenarioSocket, @unchecked Sendable {
    let raw: Bool
    let examID: String
    let pad: String
    let questions: Int
    let ratePerSecond: Double
    private(set) var attemptID: String?
    private(set) var published = 0
    private var seq = 0
    private var owed = 0.0
    private var lastVersion: [Int64]

    init(raw: Bool, examID: String, payloadBytes: Int, questions: Int, ratePerSecond: Double, stats: ScenarioStats,
         running: NIOLockedValueBox<Bool>, readyPromise: EventLoopPromise<Void>, openedAt: UInt64) {
        self.raw = raw
        self.examID = examID
        self.pad = String(repeating: "x", count: max(0, payloadBytes - 40))
        self.questions = max(1, questions)
        self.ratePerSecond = ratePerSecond
        self.lastVersion = Array(repeating: 0, count: max(1, questions))
        super.init(stats: stats, running: running, readyPromise: readyPromise, openedAt: openedAt)
    }

    override func opened() {
        if raw {
            ready(now: NIODeadline.now().uptimeNanoseconds)
        } else {
            request(.join, "attempt.join", #""examId":"\#(examID)""#)
        }
    }

    override func replied(_ op: Op, ok: Bool, sent: UInt64, now: UInt64, text: String) {
        switch op {
        case .join:
            guard ok, let id = FrameText.string(text, "attemptId") else {
                readyPromise.fail(LoadError.helloRefused(text))
                return
            }
            attemptID = id
            ready(now: now)
        case .save where ok:
            published += 1
            checkVersion(text, lastVersion: &lastVersion, stats: stats)
        default:
            break
        }
    }

    /// Publishes at the rate, in slices every 5 ms.
    func start() {
        let tick = TimeAmount.milliseconds(5)
        every(tick) { socket in
            guard let me = socket as? PublisherSocket else { return }
            me.owed += me.ratePerSecond * 0.005
            while me.owed >= 1 {
                me.owed -= 1
                me.publishOne()
            }
        }
    }

    private func publishOne() {
        seq += 1
        let t = NIODeadline.now().uptimeNanoseconds
        if raw {
            published += 1
            send(#"{"seq":\#(seq),"t":\#(t),"pad":"\#(pad)"}"#)
        } else if let attemptID {
            request(.save, "answer.save",
                    #""attemptId":"\#(attemptID)","qid":"q\#(seq % questions)","value":"t\#(t)\#(pad)","opId":"b\#(t)-\#(seq)""#,
                    now: t)
        }
    }
}

/// A broadcast subscriber: on a peer, any socket on `/v1/broadcast`; on the hub, a proctor subscribed to the
/// publisher's attempt channel. Times every delivery from the send time it carries and checks that `seq` goes up by
/// exactly one each time (a gap is a lost message, anything else a duplicate or reordering).
final class SubscriberSocket: ScenarioSocket, @unchecked Sendable {
    let raw: Bool
    let channel: String
    private var lastSeq: Int64 = -1

    init(raw: Bool, channel: String, stats: ScenarioStats, running: NIOLockedValueBox<Bool>,
         readyPromise: EventLoopPromise<Void>, openedAt: UInt64) {
        self.raw = raw
        self.channel = channel
        super.init(stats: stats, running: running, readyPromise: readyPromise, openedAt: openedAt)
    }

    override func opened() {
        if raw {
            lastSeq = 0
            ready(now: NIODeadline.now().uptimeNanoseconds)
        } else {
            request(.subscribe, "subscribe", #""ch":"\#(channel)""#)
        }
    }

    override func replied(_ op: Op, ok: Bool, sent: UInt64, now: UInt64, text: String) {
        guard op == .subscribe else { return }
        guard ok, let seq = FrameText.int(text, "seq") else {
            readyPromise.fail(LoadError.helloRefused(text))
            return
        }
        lastSeq = seq
        ready(now: now)
    }

    // The subscriber path runs once per delivery (400,000 a second in the broadcast target), so it reads the
    // numbers straight from the frame's bytes instead of making a String of it.
    override func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.opcode == .text, take(frame.data, now: NIODeadline.now().uptimeNanoseconds) else {
            super.channelRead(context: context, data: data)
            return
        }
    }

    /// Handles a text message that is a delivery (or an event to skip) and returns true; false for anything else
    /// (a reply, or anything before the subscription is in place), which the generic path handles.
    func take(_ data: ByteBuffer, now: UInt64) -> Bool {
        guard lastSeq >= 0 else { return false }
        if raw {
            deliver(seq: ByteScan.int(after: Self.seqKey, in: data), sentAt: ByteScan.int(after: Self.tKey, in: data), now: now)
            return true
        }
        guard data.readableBytesView.starts(with: Self.eventPrefix) else { return false }
        if ByteScan.contains(Self.savedType, in: data) {
            deliver(seq: ByteScan.int(after: Self.seqKey, in: data), sentAt: ByteScan.int(after: Self.valueKey, in: data), now: now)
        }
        return true
    }

    static let seqKey = Array(#""seq":"#.utf8)
    static let tKey = Array(#""t":"#.utf8)
    static let valueKey = Array(#""value":"t"#.utf8)
    static let savedType = Array(#""type":"answer.saved""#.utf8)

    private func deliver(seq: UInt64?, sentAt: UInt64?, now: UInt64) {
        stats.received += 1
        guard let s = seq else {
            stats.checks[Check.strayReply.rawValue] += 1
            return
        }
        let seq = Int64(truncatingIfNeeded: s)
        if seq > lastSeq + 1 { stats.checks[Check.seqGap.rawValue] += 1 }
        if seq <= lastSeq { stats.checks[Check.seqOutOfOrder.rawValue] += 1 } else { lastSeq = seq }
        if let sentAt { stats.record(.delivery, since: sentAt, now: now) }
    }
}

/// Checks an `answer.save` ack's version against the last one for its question (`q<N>` ids).
func checkVersion(_ text: String, lastVersion: inout [Int64], stats: ScenarioStats) {
    guard let q = FrameText.string(text, "qid"), let qi = Int(q.dropFirst()), qi >= 0, qi < lastVersion.count,
        let v = FrameText.int(text, "version")
    else { return }
    if v <= lastVersion[qi] { stats.checks[Check.versionNotIncreasing.rawValue] += 1 }
    lastVersion[qi] = v
}

/// Finds byte patterns in a frame without copying it.
enum ByteScan {
    /// Whether `pattern` occurs in `buffer`'s readable bytes.
    static func contains(_ pattern: [UInt8], in buffer: ByteBuffer) -> Bool {
        offset(of: pattern, in: buffer) != nil
    }

    /// The unsigned integer written right after the first `pattern` in `buffer`.
    static func int(after pattern: [UInt8], in buffer: ByteBuffer) -> UInt64? {
        guard let start = offset(of: pattern, in: buffer) else { return nil }
        return buffer.withUnsafeReadableBytes { bytes -> UInt64? in
            var i = start + pattern.count
            var value: UInt64 = 0
            var digits = 0
            while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57, digits < 19 {
                value = value * 10 + UInt64(bytes[i] - 48)
                i += 1
                digits += 1
            }
            return digits > 0 ? value : nil
        }
    }

    private static func offset(of pattern: [UInt8], in buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard let first = pattern.first, bytes.count >= pattern.count else { return nil }
            var i = 0
            let last = bytes.count - pattern.count
            outer: while i <= last {
                if bytes[i] == first {
                    for k in 1..<pattern.count where bytes[i + k] != pattern[k] {
                        i += 1
                        continue outer
                    }
                    return i
                }
                i += 1
            }
            return nil
        }
    }
}

/// Reads a broadcast subscriber's frames straight from the socket's bytes, in place of NIO's frame decoder: a text
/// frame that is a delivery goes to the subscriber without a `WebSocketFrame` being made and passed down the
/// pipeline (at 400,000 deliveries a second, that is most of the load tester's cost); anything else (replies, pings,
/// the close) is passed on as a `WebSocketFrame`. Server frames are unmasked; a masked one is a protocol error.
final class RawFrameReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = WebSocketFrame

    let subscriber: SubscriberSocket
    private var pending: ByteBuffer?

    init(subscriber: SubscriberSocket) {
        self.subscriber = subscriber
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if var held = pending {
            held.writeBuffer(&buffer)
            buffer = held
            pending = nil
        }
        let now = NIODeadline.now().uptimeNanoseconds
        while let (fin, opcode, payload) = nextFrame(&buffer, context: context) {
            if fin, opcode == 0x1, subscriber.take(payload, now: now) { continue }
            guard let op = WebSocketOpcode(encodedWebSocketOpcode: opcode) else {
                context.fireErrorCaught(LoadError.upgradeFailed)
                return
            }
            context.fireChannelRead(wrapInboundOut(WebSocketFrame(fin: fin, opcode: op, data: payload)))
        }
        if buffer.readableBytes > 0 { pending = buffer }
    }

    /// The next whole frame in `buffer` (consumed), or nil when more bytes are needed.
    private func nextFrame(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) -> (Bool, UInt8, ByteBuffer)? {
        guard let b0 = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let b1 = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self)
        else { return nil }
        guard b1 & 0x80 == 0 else {
            context.fireErrorCaught(LoadError.upgradeFailed)
            return nil
        }
        var header = 2
        var length = Int(b1 & 0x7F)
        if length == 126 {
            guard let l = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return nil }
            length = Int(l)
            header = 4
        } else if length == 127 {
            guard let l = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt64.self), l < 1 << 31 else { return nil }
            length = Int(l)
            header = 10
        }
        guard buffer.readableBytes >= header + length else { return nil }
        buffer.moveReaderIndex(forwardBy: header)
        guard let payload = buffer.readSlice(length: length) else { return nil }
        return (b0 & 0x80 != 0, b0 & 0x0F, payload)
    }
}
