import ExamHubDomain
import ExamHubWire
import NIOCore
import Testing

@Suite struct JSONParserTests {
    @Test func parsesValues() throws {
        let v = try JSONParser.parse(#"{"a":[1,-2,3.5,1e3,true,false,null],"b":"x\"\\\/\n\u00e9\ud83d\ude00","c":{}}"#)
        #expect(v["a"] == .array([.int(1), .int(-2), .double(3.5), .double(1000), .bool(true), .bool(false), .null]))
        #expect(v["b"] == .string("x\"\\/\né😀"))
        #expect(v["c"] == .object([:]))
    }

    @Test func bigIntegersBecomeDoubles() throws {
        #expect(try JSONParser.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONParser.parse("9223372036854775808") == .double(9_223_372_036_854_775_808))
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{'a':1}", "{\"a\" 1}", "01", "1.", ".5", "-", "1e", "+1", "tru",
        "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\u{01}b\"", "[1] 2", "{\"a\":1,\"a\":2}",
        "NaN", "Infinity", "1e999", "[", "{\"a\":}", "\"\\ud800\\u0041\"",
    ])
    func refusesInvalid(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        _ = try JSONParser.parse(ok)
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let veryDeep = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(veryDeep) }
    }

    @Test func containerLimit() {
        let many = "[" + Array(repeating: "1", count: 20).joined(separator: ",") + "]"
        #expect(throws: JSONParseError.self) {
            try JSONParser.parse(many, limits: .init(maxDepth: 4, maxContainerCount: 10))
        }
    }

    @Test func writerRoundTrips() throws {
        let value: JSONValue = .object([
            "s": .string("q\"\\\u{1}\n\t€"), "n": .int(-5), "d": .double(0.25), "a": .array([.null, .bool(true)]),
            "o": .object(["k": .string("")]),
        ])
        let text = value.jsonText
        #expect(try JSONParser.parse(text) == value)
        #expect(text.contains("\\u0001"))
    }
}

@Suite struct UTF8ValidatorTests {
    func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { UTF8Validator.isValid($0) } }

    @Test func acceptsWellFormed() {
        #expect(valid(Array("hello, κόσμε 😀 €".utf8)))
        #expect(valid([]))
        #expect(valid([0xF4, 0x8F, 0xBF, 0xBF]))  // U+10FFFF
        #expect(valid(Array(String(repeating: "abcdefgh", count: 100).utf8)))
    }

    @Test(arguments: [
        [0x80], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
        [0xF5, 0x80, 0x80, 0x80], [0xFF], [0xCE], [0xE2, 0x82], [0x61, 0x62, 0xC3], [0xCE, 0xBA, 0xE1, 0xBD],
    ] as [[UInt8]])
    func refusesMalformed(bytes: [UInt8]) {
        #expect(!valid(bytes))
    }

    @Test func incrementalAcrossFragments() {
        var v = UTF8Validator()
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        let first = [euro[0]].withUnsafeBytes { v.feed($0) }
        let completeAfterFirst = v.isComplete
        let rest = [euro[1], euro[2]].withUnsafeBytes { v.feed($0) }
        #expect(first && !completeAfterFirst && rest && v.isComplete)
        var w = UTF8Validator()
        let lead = [UInt8(0xE2)].withUnsafeBytes { w.feed($0) }
        let bad = [UInt8(0x41)].withUnsafeBytes { w.feed($0) }  // fails fast on the bad continuation
        #expect(lead && !bad)
    }
}

@Suite struct TimestampTests {
    @Test func formats() {
        #expect(Timestamp.format(millis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(millis: 1_795_431_082_123) == "2026-11-23T10:51:22.123Z")
        #expect(Timestamp.format(millis: 951_782_400_000) == "2000-02-29T00:00:00.000Z")
    }

    @Test func parsesWhatItFormats() {
        for ms: Int64 in [0, 1, 999, 1_795_431_082_123, 4_102_444_800_000, 951_782_400_000] {
            #expect(Timestamp.parse(Timestamp.format(millis: ms)) == ms)
        }
        #expect(Timestamp.parse("2026-11-23T11:51:22.5+01:00") == 1_795_431_082_500)
        #expect(Timestamp.parse("2026-11-23T10:51:22Z") == 1_795_431_082_000)
        for bad in ["", "2026-11-23", "2026-13-01T00:00:00Z", "2026-11-23T25:00:00Z", "2026-11-23T10:51:22", "x"] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
    }
}

@Suite struct EnvelopeTests {
    func decode(_ s: String) -> Result<Envelope, Envelope.DecodeFailure> {
        Array(s.utf8).withUnsafeBytes { bytes in
            do throws(Envelope.DecodeFailure) { return .success(try Envelope.decode(bytes)) } catch {
                return .failure(error)
            }
        }
    }

    @Test func decodesOpAndID() throws {
        let e = try decode(#"{"op":"ping","id":7}"#).get()
        #expect(e.op == "ping")
        #expect(e.id == 7)
        #expect(try decode(#"{"op":"ping"}"#).get().id == nil)
    }

    @Test func failuresCarryTheIDWhenReadable() {
        guard case .failure(let f) = decode(#"{"id":3}"#) else { Issue.record("expected failure"); return }
        #expect(f.id == 3)
        #expect(f.error.code == .badRequest)
        guard case .failure(let g) = decode(#"{"op":5,"id":4}"#) else { Issue.record("expected failure"); return }
        #expect(g.id == 4)
        for bad in [#"{"op":"x","id":-1}"#, #"{"op":"x","id":"1"}"#, #"{"op":"x","id":1.5}"#, "[1]", "nope"] {
            guard case .failure(let h) = decode(bad) else { Issue.record("expected failure for \(bad)"); continue }
            #expect(h.id == nil)
        }
    }

    @Test func typedFieldErrors() throws {
        let e = try decode(#"{"op":"x","s":5,"o":"no","long":"abcdef"}"#).get()
        #expect(throws: HubError.self) { try e.string("s") }
        #expect(throws: HubError.self) { try e.string("missing") }
        #expect(throws: HubError.self) { try e.optionalObject("o") }
        do { _ = try e.string("long", maxBytes: 3) } catch { #expect(error.code == .tooLarge) }
        #expect(try e.optionalString("missing") == nil)
    }
}

@Suite struct ServerFrameTests {
    @Test func writesRepliesAndEvents() throws {
        var b = ByteBufferAllocator().buffer(capacity: 64)
        ServerFrame.writeOK(into: &b, id: 7) { buf in
            ServerFrame.writeKey(into: &buf, "a", first: true)
            buf.writeJSONInt(1)
        }
        #expect(String(buffer: b) == #"{"op":"reply","id":7,"ok":true,"data":{"a":1}}"#)
        b.clear()
        ServerFrame.writeError(into: &b, id: 8, error: HubError(.conflict, "no", details: .object(["version": .int(2)])))
        let parsed = try JSONParser.parse(String(buffer: b))
        #expect(parsed["error"]?["code"] == .string("conflict"))
        #expect(parsed["error"]?["details"]?["version"] == .int(2))
        b.clear()
        ServerFrame.writeEvent(into: &b, channel: "exam:e1:proctor", seq: 3, type: "x", tsMillis: 0, data: .object([:]))
        #expect(String(buffer: b) == #"{"op":"event","ch":"exam:e1:proctor","seq":3,"type":"x","ts":"1970-01-01T00:00:00.000Z","data":{}}"#)
    }
}
