import ExamHubDomain
import ExamHubWire
import NIOCore
import NIOWebSocket

/// The permessage-deflate streams one event loop shares among its sockets: a compressor per window size (the
/// server never keeps context, so one stream, reset after every message, serves every socket) and one inflater
/// (window 15) for clients that reset their context after every message. Made on first use; touched only on the
/// loop.
final class LoopDeflateStreams {
    private var compressors: [Int: MessageCompressor] = [:]
    private var sharedInflater: MessageDecompressor?

    func compressor(windowBits: Int, level: Int) -> MessageCompressor? {
        if let c = compressors[windowBits] { return c }
        // A smaller hash table than zlib's default for small windows: it is cleared after every message.
        let memoryLevel = min(8, max(1, windowBits - 7))
        guard
            let c = try? MessageCompressor(
                windowBits: windowBits, memoryLevel: memoryLevel, level: level, contextTakeover: false)
        else { return nil }
        compressors[windowBits] = c
        return c
    }

    func inflater() -> MessageDecompressor? {
        if let d = sharedInflater { return d }
        sharedInflater = try? MessageDecompressor(windowBits: 15, contextTakeover: false)
        return sharedInflater
    }
}

/// What permessage-deflate agreed for one socket, and its inflater when the client keeps its context.
final class SocketDeflate {
    let agreement: PerMessageDeflate.Agreement
    let minBytes: Int
    let level: Int
    let streams: LoopDeflateStreams
    /// Bytes of the node's compression memory budget this socket holds (its own inflater), returned at close.
    let reservedBytes: Int
    private var ownInflater: MessageDecompressor?

    init(agreement: PerMessageDeflate.Agreement, configuration: CompressionConfiguration, streams: LoopDeflateStreams) {
        self.agreement = agreement
        self.minBytes = max(1, configuration.minBytes)
        self.level = configuration.level
        self.streams = streams
        self.reservedBytes =
            agreement.clientNoContextTakeover
            ? 0 : CompressionConfiguration.inflaterCost(windowBits: agreement.clientWindowBits)
    }

    /// `payload` compressed, or `nil` when it is short, does not shrink, or zlib failed (send it as it is).
    func compress(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard payload.readableBytes >= minBytes,
            let compressor = streams.compressor(windowBits: agreement.serverWindowBits, level: level)
        else { return nil }
        return compressor.compress(payload, allocator: allocator)
    }

    /// One whole compressed message inflated, at most `limit` bytes.
    func decompress(_ message: ByteBuffer, limit: Int, allocator: ByteBufferAllocator) throws(MessageDecompressor.Failure)
        -> ByteBuffer
    {
        let inflater: MessageDecompressor
        if agreement.clientNoContextTakeover {
            guard let shared = streams.inflater() else { throw .corrupt }
            inflater = shared
        } else if let own = ownInflater {
            inflater = own
        } else {
            // Made on the first compressed message: a client that never compresses costs nothing.
            guard let own = try? MessageDecompressor(windowBits: agreement.clientWindowBits, contextTakeover: true)
            else { throw .corrupt }
            ownInflater = own
            inflater = own
        }
        return try inflater.decompress(message, limit: limit, allocator: allocator)
    }
}

/// An event frame on its way to one loop's subscribers. Its compressed form is made at most once per loop (every
/// subscriber with the same window gets the same bytes, since the server keeps no context) and only when a
/// subscriber that negotiated compression asks for it.
struct OutboundEvent {
    let frame: ByteBuffer
    let channel: ChannelName
    private var cache: (windowBits: Int, data: ByteBuffer?)?
    private var framedCache: ByteBuffer?

    /// The whole WebSocket frame (header and payload), built on first use and shared by every subscriber of the
    /// loop that takes it uncompressed.
    mutating func framed(allocator: ByteBufferAllocator) -> ByteBuffer {
        if let framedCache { return framedCache }
        let framed = ByteBuffer.webSocketTextFrame(frame, allocator: allocator)
        framedCache = framed
        return framed
    }

    init(frame: ByteBuffer, channel: ChannelName) {
        self.frame = frame
        self.channel = channel
    }

    /// The compressed payload for `deflate` (`nil`: send `frame` as it is).
    mutating func compressed(for deflate: SocketDeflate, allocator: ByteBufferAllocator) -> ByteBuffer? {
        let bits = deflate.agreement.serverWindowBits
        if let cached = cache, cached.windowBits == bits { return cached.data }
        let data = deflate.compress(frame, allocator: allocator)
        cache = (bits, data)
        return data
    }
}

extension ConnectionHandler {
    /// A text frame for a reply or any frame meant for this socket alone: compressed (RSV1) when permessage-deflate
    /// was agreed and it pays. Without compression this is the plain frame, with no allocation.
    @inline(__always)
    func textFrame(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> WebSocketFrame {
        if let deflate, let data = deflate.compress(payload, allocator: allocator) {
            services.metrics.compression.sent(raw: payload.readableBytes, wire: data.readableBytes)
            return WebSocketFrame(fin: true, rsv1: true, opcode: .text, data: data)
        }
        return WebSocketFrame(fin: true, opcode: .text, data: payload)
    }

    /// Whether a channel event goes out compressed on this socket.
    func compresses(_ event: OutboundEvent) -> Bool {
        deflate != nil && services.configuration.compression.channels.contains(event.channel)
    }

    /// A text frame for a channel event: compressed when permessage-deflate was agreed and the channel kind is in
    /// `EXAMHUB_COMPRESSION_CHANNELS`.
    @inline(__always)
    func eventFrame(_ event: inout OutboundEvent, allocator: ByteBufferAllocator) -> WebSocketFrame {
        if let deflate, services.configuration.compression.channels.contains(event.channel),
            let data = event.compressed(for: deflate, allocator: allocator)
        {
            services.metrics.compression.sent(raw: event.frame.readableBytes, wire: data.readableBytes)
            return WebSocketFrame(fin: true, rsv1: true, opcode: .text, data: data)
        }
        return WebSocketFrame(fin: true, opcode: .text, data: event.frame)
    }
}
