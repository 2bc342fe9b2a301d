import Histogram
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

/// Counters for the autosave workload, per event loop. Touched only on that loop.
final class AutosaveStats: @unchecked Sendable {
    var acks = 0
    var events = 0
    var errors = 0
    var versionErrors = 0
    var errorCodes: [String: Int] = [:]
    var ready = 0
    var latency = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
}

/// One simulated candidate: joins the exam, then saves a growing text answer, either every `interval` (with a
/// random phase, like people typing) or with `inFlight` saves always outstanding (saturation). Checks that every
/// ack's version is higher than the last one for its question.
final class AutosaveHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let index: Int
    /// Unique per run, so that the opIds of a rerun that rejoins the same attempts are new.
    let runID: String
    let examID: String
    let questions: Int
    let interval: TimeAmount?
    let inFlight: Int
    let stats: AutosaveStats
    let running: NIOLockedValueBox<Bool>
    let readyPromise: EventLoopPromise<Void>
    private var attemptID: String?
    private var nextID: Int64 = 1
    private var sendTimes: [UInt64] = []
    private var head = 0
    private var lastVersion: [Int64] = []
    private var text = ""
    private var timer: RepeatedTask?

    init(index: Int, runID: String, examID: String, questions: Int, interval: TimeAmount?, inFlight: Int, stats: AutosaveStats,
         running: NIOLockedValueBox<Bool>, readyPromise: EventLoopPromise<Void>) {
        self.index = index
        self.runID = runID
        self.examID = examID
        self.questions = questions
        self.interval = interval
        self.inFlight = inFlight
        self.stats = stats
        self.running = running
        self.readyPromise = readyPromise
        self.lastVersion = Array(repeating: 0, count: questions)
        // Each candidate starts at a random point of the ~2 KB typing cycle, so the answers (and the hub's recovery
        // history of them) do not all grow and shrink in step: a soak then sees a steady load, not a 500 s wave.
        let start = Int.random(in: 0..<2000)
        while text.utf8.count < start { text += "word\(text.utf8.count % 97) " }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        write(context: context, #"{"op":"attempt.join","id":0,"examId":"\#(examID)"}"#)
        context.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func start(context: ChannelHandlerContext) {
        if let interval {
            let phase = TimeAmount.nanoseconds(Int64.random(in: 0..<max(1, interval.nanoseconds)))
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleRepeatedTask(initialDelay: phase, delay: interval) { _ in
                let (handler, context) = bound.value
                guard handler.running.withLockedValue({ $0 }) else { return }
                handler.save(context: context)
                context.flush()
            }
        } else {
            for _ in 0..<inFlight { save(context: context) }
            context.flush()
        }
    }

    private func save(context: ChannelHandlerContext) {
        guard let attemptID else { return }
        let id = nextID
        nextID += 1
        // Realistic growth: a few words per save, restarting after about 2 KB.
        if text.utf8.count > 2000 { text = "" }
        text += "word\(id % 97) "
        let qid = Int(id % Int64(questions))
        sendTimes.append(NIODeadline.now().uptimeNanoseconds)
        write(context: context, #"{"op":"answer.save","id":\#(id),"attemptId":"\#(attemptID)","qid":"q\#(qid)","value":"\#(text)","opId":"\#(runID)-\#(index)-\#(id)"}"#)
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
            if text.hasPrefix(#"{"op":"event""#) {
                stats.events += 1
                return
            }
            if attemptID == nil {
                guard let id = FrameText.string(text, "attemptId") else {
                    stats.errors += 1
                    readyPromise.fail(LoadError.helloRefused(text))
                    return
                }
                attemptID = id
                stats.ready += 1
                readyPromise.succeed(())
                return
            }
            if head < sendTimes.count {
                stats.latency.record(NIODeadline.now().uptimeNanoseconds - sendTimes[head])
                head += 1
                if head > 1024 {
                    sendTimes.removeFirst(head)
                    head = 0
                }
            }
            if text.contains(#""ok":true"#) {
                stats.acks += 1
                if let q = FrameText.string(text, "qid"), let qi = Int(q.dropFirst()), qi < lastVersion.count,
                    let v = FrameText.int(text, "version")
                {
                    if v <= lastVersion[qi] { stats.versionErrors += 1 }
                    lastVersion[qi] = v
                }
            } else {
                stats.errors += 1
                let code = FrameText.string(text, "code") ?? "?"
                stats.errorCodes[code, default: 0] += 1
            }
            if interval == nil && running.withLockedValue({ $0 }) {
                save(context: context)
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
        stats.errors += 1
        readyPromise.fail(error)
        context.close(promise: nil)
    }
}
