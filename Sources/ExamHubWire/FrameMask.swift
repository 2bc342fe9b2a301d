import NIOCore

extension ByteBuffer {
    /// Headroom for a server frame's header (2 bytes, plus 8 for the longest length; server frames are not masked):
    /// a payload with this much free space before its bytes gets its header written in place by NIOWebSocket's
    /// encoder, instead of in a separate header buffer (an allocation and one more iovec per frame).
    public static let webSocketHeaderHeadroom = 10

    /// A copy of the readable bytes XOR-ed with a client frame's masking key (RFC 6455 section 5.3), eight bytes at
    /// a time, with `headroom` free bytes before them.
    ///
    /// Unmasking the frame in place would copy it anyway (the decoder's buffer still holds the storage) and then
    /// mask it byte by byte; this is the one copy, and its headroom lets an echo or a reply built from it go out
    /// with its frame header prepended.
    public func webSocketUnmaskedCopy(
        key: (UInt8, UInt8, UInt8, UInt8), headroom: Int = ByteBuffer.webSocketHeaderHeadroom,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        let n = readableBytes
        var out = allocator.buffer(capacity: headroom + n)
        out.moveWriterIndex(forwardBy: headroom)
        out.moveReaderIndex(forwardBy: headroom)
        guard n > 0 else { return out }
        let keyBytes = [key.0, key.1, key.2, key.3, key.0, key.1, key.2, key.3]
        let key64 = keyBytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        withUnsafeReadableBytes { src in
            out.writeWithUnsafeMutableBytes(minimumWritableBytes: n) { dst in
                var i = 0
                while i + 8 <= n {
                    let word = src.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    dst.storeBytes(of: word ^ key64, toByteOffset: i, as: UInt64.self)
                    i += 8
                }
                while i < n {
                    dst[i] = src[i] ^ keyBytes[i & 3]
                    i += 1
                }
                return n
            }
        }
        return out
    }
}

extension ByteBufferAllocator {
    /// An empty buffer for one outgoing frame's payload, with `ByteBuffer.webSocketHeaderHeadroom` free bytes in
    /// front, so that the frame encoder writes the header there instead of in a buffer of its own.
    public func webSocketPayloadBuffer(capacity: Int) -> ByteBuffer {
        var buffer = self.buffer(capacity: ByteBuffer.webSocketHeaderHeadroom + capacity)
        buffer.moveWriterIndex(forwardBy: ByteBuffer.webSocketHeaderHeadroom)
        buffer.moveReaderIndex(forwardBy: ByteBuffer.webSocketHeaderHeadroom)
        return buffer
    }
}

extension ByteBuffer {
    /// A whole unmasked, unfragmented server text frame (RFC 6455 section 5.2): FIN and opcode 1, the payload length
    /// in 7, 16 or 64 bits, then `payload`. Used for a channel event, which is the same frame for every subscriber of
    /// an event loop: framed once, it goes to each socket as it is, past the frame encoder.
    public static func webSocketTextFrame(_ payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        let n = payload.readableBytes
        var out = allocator.buffer(capacity: n + 10)
        out.writeInteger(UInt8(0x81))
        if n < 126 {
            out.writeInteger(UInt8(n))
        } else if n <= Int(UInt16.max) {
            out.writeInteger(UInt8(126))
            out.writeInteger(UInt16(n))
        } else {
            out.writeInteger(UInt8(127))
            out.writeInteger(UInt64(n))
        }
        out.writeImmutableBuffer(payload)
        return out
    }
}
