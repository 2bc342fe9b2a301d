import CompressNIO
import NIOCore

/// Compresses whole WebSocket messages for permessage-deflate (RFC 7692 section 7.2.1): raw deflate, a sync
/// flush, the trailing `00 00 ff ff` removed. Not thread-safe: one per event loop (no context takeover, reset after
/// every message) or one per socket (context takeover).
public final class MessageCompressor {
    private let zlib: ZlibCompressor
    /// Whether the stream keeps its window between messages (otherwise it is reset after each).
    public let contextTakeover: Bool
    public let windowBits: Int

    /// `windowBits` 9-15, `memoryLevel` 1-9, `level` 1-9.
    public init(windowBits: Int, memoryLevel: Int = 8, level: Int = 6, contextTakeover: Bool) throws {
        precondition(PerMessageDeflate.compressWindowBits.contains(windowBits), "window bits must be 9-15")
        self.zlib = try ZlibCompressor(
            algorithm: .deflate,
            configuration: ZlibConfiguration(
                windowSize: Int32(windowBits), compressionLevel: Int32(min(max(level, 1), 9)),
                memoryLevel: Int32(min(max(memoryLevel, 1), 9)), strategy: .default))
        self.contextTakeover = contextTakeover
        self.windowBits = windowBits
    }

    /// The compressed payload of `message`. Without context takeover, `nil` when compressing would not make it
    /// smaller (send it as it is) or zlib failed; with context takeover the result must be sent (the peer's window
    /// needs it), so it is `nil` only when zlib failed (the stream is then reset, which a peer tolerates: its
    /// window simply holds history this side no longer refers to).
    public func compress(_ message: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard message.readableBytes > 0 else { return nil }
        var input = message
        var output = allocator.buffer(capacity: zlib.maxSize(from: input))
        do {
            try zlib.deflate(from: &input, to: &output, flush: .sync)
        } catch {
            try? zlib.reset()
            return nil
        }
        if !contextTakeover { try? zlib.reset() }
        // A sync flush ends with an empty stored block, 00 00 ff ff, which the sender removes.
        guard input.readableBytes == 0, output.readableBytes >= 4,
            output.getInteger(at: output.writerIndex - 4, as: UInt32.self) == 0x0000_FFFF
        else {
            try? zlib.reset()
            return nil
        }
        output.moveWriterIndex(to: output.writerIndex - 4)
        if !contextTakeover && output.readableBytes >= message.readableBytes { return nil }
        return output
    }
}

/// Inflates permessage-deflate messages with a limit on the result (a small compressed message can expand a
/// thousandfold: a zip bomb). Not thread-safe: one per event loop (the client resets its context after every
/// message) or one per socket (client context takeover).
public final class MessageDecompressor {
    /// Why a message could not be inflated.
    public enum Failure: Error, Equatable {
        /// The inflated message would exceed the limit.
        case tooLarge
        /// Not valid deflate data (or data after a final block).
        case corrupt
    }

    private let zlib: ZlibDecompressor
    public let contextTakeover: Bool

    /// `windowBits` 8-15 (inflating with a window larger than the sender's is always fine).
    public init(windowBits: Int, contextTakeover: Bool) throws {
        self.zlib = try ZlibDecompressor(algorithm: .deflate, windowSize: Int32(min(max(windowBits, 9), 15)))
        self.contextTakeover = contextTakeover
    }

    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    /// Inflates one whole message (its frames' payloads concatenated, unmasked). At most `limit` bytes come out.
    public func decompress(_ compressed: ByteBuffer, limit: Int, allocator: ByteBufferAllocator) throws(Failure)
        -> ByteBuffer
    {
        var input = allocator.buffer(capacity: compressed.readableBytes + 4)
        input.writeImmutableBuffer(compressed)
        input.writeBytes(Self.tail)
        // One byte over the limit tells "too large" from "exactly the limit".
        let ceiling = limit + 1
        // Most messages fit the first guess (4 KiB, or 8 times the input), so one inflate call and no regrowth.
        var output = allocator.buffer(capacity: min(ceiling, max(4096, compressed.readableBytes * 8)))
        defer { if !contextTakeover { try? zlib.reset() } }
        while true {
            do {
                try zlib.inflate(from: &input, to: &output)
                // Returned with room left: everything given was inflated. Input left over means a final block
                // (BFINAL) ended the stream early: start a new one for the next message.
                if input.readableBytes > 0 {
                    try? zlib.reset()
                    if input.readableBytes > 4 { throw Failure.corrupt }
                }
                if output.readableBytes > limit {
                    try? zlib.reset()
                    throw Failure.tooLarge
                }
                return output
            } catch let error as CompressNIOError where error == .bufferOverflow {
                if output.readableBytes >= ceiling {
                    try? zlib.reset()
                    throw Failure.tooLarge
                }
                if input.readableBytes == 0 { return output }
                let room = ceiling - output.readableBytes
                output.reserveCapacity(minimumWritableBytes: min(max(output.readableBytes, 4096), room))
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                // No progress possible and no input left: done.
                return output
            } catch let failure as Failure {
                throw failure
            } catch {
                try? zlib.reset()
                throw Failure.corrupt
            }
        }
    }
}
