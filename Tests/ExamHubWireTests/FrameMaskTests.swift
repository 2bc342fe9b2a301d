import ExamHubWire
import NIOCore
import Testing

@Suite struct FrameMaskTests {
    /// The word-at-a-time unmasking against the RFC's definition (byte i XOR key[i % 4]) for every length around
    /// the 8-byte steps, and with the headroom a frame header needs.
    @Test(arguments: [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 125, 126, 1000, 65_537])
    func matchesTheDefinition(length: Int) {
        let key: (UInt8, UInt8, UInt8, UInt8) = (0x37, 0xFA, 0x21, 0x3D)
        let keyArray = [key.0, key.1, key.2, key.3]
        let plain = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let masked = plain.enumerated().map { $0.element ^ keyArray[$0.offset % 4] }
        var source = ByteBufferAllocator().buffer(capacity: length + 3)
        source.writeBytes([9, 9, 9])
        source.moveReaderIndex(forwardBy: 3)  // a slice that does not start at 0, as a decoder's frame data
        source.writeBytes(masked)
        let out = source.webSocketUnmaskedCopy(key: key, allocator: ByteBufferAllocator())
        #expect(Array(out.readableBytesView) == plain)
        #expect(out.readerIndex == ByteBuffer.webSocketHeaderHeadroom)
        #expect(Array(source.readableBytesView) == masked)  // the source is left as it was
    }

    /// RFC 6455 section 5.7: a masked "Hello".
    @Test func unmasksTheRFCExample() {
        var source = ByteBufferAllocator().buffer(capacity: 5)
        source.writeBytes([0x7F, 0x9F, 0x4D, 0x51, 0x58])
        let out = source.webSocketUnmaskedCopy(key: (0x37, 0xFA, 0x21, 0x3D), allocator: ByteBufferAllocator())
        #expect(String(buffer: out) == "Hello")
    }
}

@Suite struct JSONIntWriterTests {
    @Test(arguments: [Int64.min, Int64.min + 1, -1_000_000_007, -10, -9, -1, 0, 1, 9, 10, 99, 100, 1_700_000_000_123, Int64.max])
    func writesEveryInt64AsSwiftDoes(value: Int64) {
        var buffer = ByteBufferAllocator().buffer(capacity: 4)
        buffer.writeJSONInt(value)
        #expect(String(buffer: buffer) == String(value))
    }

    @Test func writesUnsignedAndOtherWidths() {
        var buffer = ByteBufferAllocator().buffer(capacity: 4)
        buffer.writeJSONInt(UInt64.max)
        buffer.writeStaticString(",")
        buffer.writeJSONInt(Int32(-42))
        buffer.writeStaticString(",")
        buffer.writeJSONInt(UInt8(255))
        buffer.writeStaticString(",")
        buffer.writeJSONInt(UInt64(0))
        #expect(String(buffer: buffer) == "18446744073709551615,-42,255,0")
    }
}

@Suite struct TextFrameTests {
    /// RFC 6455 section 5.7's unmasked "Hello", and the 16- and 64-bit length forms at their edges.
    @Test(arguments: [(5, [0x81, 0x05]), (125, [0x81, 125]), (126, [0x81, 126, 0x00, 126]),
                      (65_535, [0x81, 126, 0xFF, 0xFF]), (65_536, [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0])])
    func framesWithTheRightHeader(length: Int, header: [Int]) {
        var payload = ByteBufferAllocator().buffer(capacity: length)
        payload.writeRepeatingByte(UInt8(ascii: "x"), count: length)
        let frame = ByteBuffer.webSocketTextFrame(payload, allocator: ByteBufferAllocator())
        let bytes = Array(frame.readableBytesView)
        #expect(bytes.prefix(header.count).map(Int.init) == header)
        #expect(bytes.count == header.count + length)
        #expect(bytes.dropFirst(header.count).allSatisfy { $0 == UInt8(ascii: "x") })
    }
}
