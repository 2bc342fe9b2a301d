import NIOCore
import XCTest

@testable import ExamHubLLM

final class SSEParserTests: XCTestCase {
    private func parse(_ chunks: [[UInt8]]) throws -> [ServerSentEvent] {
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        for chunk in chunks { events += try parser.feed(ByteBuffer(bytes: chunk)) }
        parser.finish()
        return events
    }

    /// Every captured stream, split in two at every byte offset and fed one byte at a time, gives the same
    /// events as fed whole.
    func testCapturedStreamsAtEverySplit() throws {
        for name in Samples.all {
            let bytes = Array(try Samples.text(name).utf8)
            let whole = try parse([bytes])
            XCTAssertGreaterThan(whole.count, 1, name)
            for offset in 0...bytes.count {
                let split = try parse([Array(bytes[..<offset]), Array(bytes[offset...])])
                XCTAssertEqual(split, whole, "\(name) split at \(offset)")
            }
            XCTAssertEqual(try parse(bytes.map { [$0] }), whole, "\(name) byte by byte")
        }
    }

    /// The same streams with CRLF and CR line endings, split at every offset (a CR ending one chunk and the LF
    /// starting the next are one line end).
    func testCapturedStreamsWithCRLFAndCR() throws {
        for name in Samples.all {
            let text = try Samples.text(name)
            let whole = try parse([Array(text.utf8)])
            for ending in ["\r\n", "\r"] {
                let bytes = Array(text.replacingOccurrences(of: "\n", with: ending).utf8)
                for offset in 0...bytes.count {
                    XCTAssertEqual(try parse([Array(bytes[..<offset]), Array(bytes[offset...])]), whole,
                                   "\(name) with \(ending.debugDescription) split at \(offset)")
                }
            }
        }
    }

    /// Multi-byte UTF-8 (2, 3 and 4 bytes) split at every offset, including inside each character, and in
    /// random multi-piece splits.
    func testUTF8SplitInsideCharacters() throws {
        let text = "data: {\"t\":\"é中😀 ok\"}\n\nevent: x\ndata: ünï\ndata: 🎓\n\n"
        let bytes = Array(text.utf8)
        let expected = [
            ServerSentEvent(event: nil, data: "{\"t\":\"é中😀 ok\"}", id: nil),
            ServerSentEvent(event: "x", data: "ünï\n🎓", id: nil),
        ]
        XCTAssertEqual(try parse([bytes]), expected)
        for offset in 0...bytes.count {
            XCTAssertEqual(try parse([Array(bytes[..<offset]), Array(bytes[offset...])]), expected, "at \(offset)")
        }
        var generator = SplitMix64(seed: 42)
        for _ in 0..<500 {
            var chunks: [[UInt8]] = []
            var index = 0
            while index < bytes.count {
                let size = Int(generator.next() % 5) + 1
                chunks.append(Array(bytes[index..<min(index + size, bytes.count)]))
                index += size
            }
            XCTAssertEqual(try parse(chunks), expected)
        }
    }

    func testFieldsCommentsAndDispatchRules() throws {
        let text = "\u{FEFF}: a comment\nevent: first\nid: 7\ndata\ndata:  two spaces\nretry: 10\nunknown: x\n\n"
            + "data: after\r\n\r\n"
            + "event: nodata\n\n"
            + "data: unterminated"
        let events = try parse([Array(text.utf8)])
        XCTAssertEqual(events, [
            ServerSentEvent(event: "first", data: "\n two spaces", id: "7"),
            ServerSentEvent(event: nil, data: "after", id: "7"),
        ])
    }

    func testLineTooLongThrows() {
        var parser = ServerSentEventParser(maxLineBytes: 16)
        XCTAssertThrowsError(try parser.feed(Array(repeating: UInt8(ascii: "a"), count: 17)))
        var fine = ServerSentEventParser(maxLineBytes: 16)
        XCTAssertEqual(try fine.feed(Array("data: 0123456789\n\n".utf8)).map(\.data), ["0123456789"])
    }
}

/// A small deterministic generator for random splits.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
