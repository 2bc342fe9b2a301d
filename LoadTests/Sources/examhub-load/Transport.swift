import ExamHubWire
import NIOCore
import NIOSSL
import NIOWebSocket

/// How load sockets reach the hub: over TLS or not (`--tls`: no certificate check, benchmarks run against test
/// certificates), and offering permessage-deflate or not (`--compression`, as browsers do:
/// `permessage-deflate; client_max_window_bits`, keeping the client's context when the hub allows it).
struct Transport: Sendable {
    var tls: NIOSSLContext?
    var compression = false
    /// Byte counters per event loop of the client (compression only).
    var wire: [ObjectIdentifier: WireStats] = [:]

    static let plain = Transport()

    static func makeTLS() throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateVerification = .none
        config.applicationProtocols = ["http/1.1"]
        return try NIOSSLContext(configuration: config)
    }

    static let offer = "permessage-deflate; client_max_window_bits"
}

/// Bytes of WebSocket message payloads before and after permessage-deflate, each way, on one client event loop.
/// Touched only on that loop.
final class WireStats: @unchecked Sendable {
    struct Snapshot {
        var rawOut = 0, wireOut = 0, rawIn = 0, wireIn = 0, messagesOut = 0, messagesIn = 0, compressedIn = 0
        var agreed: String?

        mutating func add(_ o: Snapshot) {
            rawOut += o.rawOut
            wireOut += o.wireOut
            rawIn += o.rawIn
            wireIn += o.wireIn
            messagesOut += o.messagesOut
            messagesIn += o.messagesIn
            compressedIn += o.compressedIn
            agreed = agreed ?? o.agreed
        }

        /// For the JSON result line.
        var json: [String: Any] {
            [
                "rawBytesOut": rawOut, "wireBytesOut": wireOut, "rawBytesIn": rawIn, "wireBytesIn": wireIn,
                "messagesOut": messagesOut, "messagesIn": messagesIn, "compressedIn": compressedIn,
                "extension": agreed ?? "none",
            ]
        }
    }

    var current = Snapshot()

    static func perLoop(_ group: any EventLoopGroup) -> [ObjectIdentifier: WireStats] {
        var out: [ObjectIdentifier: WireStats] = [:]
        for loop in group.makeIterator() { out[ObjectIdentifier(loop)] = WireStats() }
        return out
    }

    /// The totals over every loop; `reset` zeroes them (after a warm-up).
    static func snapshot(_ group: any EventLoopGroup, _ stats: [ObjectIdentifier: WireStats], reset: Bool) async throws
        -> Snapshot
    {
        var total = Snapshot()
        for loop in group.makeIterator() {
            guard let s = stats[ObjectIdentifier(loop)] else { continue }
            let part = try await loop.submit { () -> Snapshot in
                let snap = s.current
                if reset {
                    let agreed = s.current.agreed
                    s.current = Snapshot()
                    s.current.agreed = agreed
                }
                return snap
            }.get()
            total.add(part)
        }
        return total
    }
}

/// The client side of permessage-deflate, between NIOWebSocket's frame codec and a workload handler: compresses
/// every outgoing data message (browsers compress them all), inflates incoming RSV1 messages, and counts bytes.
/// With no agreement (the hub declined) it only counts. Workload handlers send and receive unfragmented messages,
/// which is all this handles.
final class ClientDeflateHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let compressor: MessageCompressor?
    private let inflater: MessageDecompressor?
    private let stats: WireStats

    init(agreement: PerMessageDeflate.Agreement?, stats: WireStats) throws {
        if let agreement {
            compressor = try MessageCompressor(
                windowBits: agreement.clientWindowBits, memoryLevel: 8, level: 6,
                contextTakeover: !agreement.clientNoContextTakeover)
            inflater = try MessageDecompressor(windowBits: agreement.serverWindowBits, contextTakeover: false)
            stats.current.agreed = agreement.responseHeader
        } else {
            compressor = nil
            inflater = nil
        }
        self.stats = stats
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var frame = unwrapOutboundIn(data)
        if frame.opcode == .text || frame.opcode == .binary {
            stats.current.messagesOut += 1
            stats.current.rawOut += frame.data.readableBytes
            if let compressed = compressor?.compress(frame.data, allocator: context.channel.allocator) {
                frame.data = compressed
                frame.rsv1 = true
            }
            stats.current.wireOut += frame.data.readableBytes
        }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        if frame.opcode == .text || frame.opcode == .binary {
            stats.current.messagesIn += 1
            stats.current.wireIn += frame.data.readableBytes
            if frame.rsv1, let inflater {
                stats.current.compressedIn += 1
                do {
                    frame.data = try inflater.decompress(frame.data, limit: 64 << 20, allocator: context.channel.allocator)
                    frame.rsv1 = false
                } catch {
                    context.fireErrorCaught(error)
                    return
                }
            }
            stats.current.rawIn += frame.data.readableBytes
        }
        context.fireChannelRead(wrapInboundOut(frame))
    }
}
