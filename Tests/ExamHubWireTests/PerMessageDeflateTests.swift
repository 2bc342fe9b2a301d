import ExamHubWire
import NIOCore
import Testing

@Suite struct HeaderElementsTests {
    typealias P = HeaderElements.Parameter

    @Test func parsesExtensionsAndParameters() throws {
        let parsed = try #require(
            HeaderElements.parse("permessage-deflate; client_max_window_bits, x-foo;A=1 ;b=\"two, three\""))
        #expect(parsed.count == 2)
        #expect(parsed[0] == [P(name: "permessage-deflate"), P(name: "client_max_window_bits")])
        #expect(parsed[1] == [P(name: "x-foo"), P(name: "a", value: "1"), P(name: "b", value: "two, three", quoted: true)])
    }

    @Test func forwardedStyle() throws {
        let parsed = try #require(
            HeaderElements.parse(#"for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711""#))
        #expect(parsed.count == 2)
        #expect(parsed[0].first == P(name: "for", value: "192.0.2.60"))
        #expect(parsed[1] == [P(name: "for", value: "[2001:db8:cafe::17]:4711", quoted: true)])
    }

    @Test func escapesInQuotedStrings() throws {
        let parsed = try #require(HeaderElements.parse(#"a="x\"y\\z""#))
        #expect(parsed == [[P(name: "a", value: #"x"y\z"#, quoted: true)]])
    }

    @Test(arguments: [
        #"a="unterminated"#, #"a=b"c""#, #""quoted-name"=1"#, "a==1", "a b=1", "a=[::1]", #"a="x" y"#, "=1",
        "a=", "ü=1",
    ])
    func garbageIsRejected(_ header: String) {
        #expect(HeaderElements.parse(header) == nil)
    }

    @Test func emptyItemsAreSkipped() throws {
        #expect(HeaderElements.parse(" , a ;; b ,") == [[P(name: "a"), P(name: "b")]])
        #expect(HeaderElements.parse("") == [])
    }
}

@Suite struct PerMessageDeflateNegotiationTests {
    typealias Offer = PerMessageDeflate.Offer

    func negotiate(_ header: String, maxWindowBits: Int = 12, takeover: Bool = true) -> PerMessageDeflate.Agreement? {
        PerMessageDeflate.negotiate(
            PerMessageDeflate.offers(in: [header]),
            policy: .init(maxWindowBits: maxWindowBits, allowClientContextTakeover: takeover))
    }

    @Test func browserOffer() throws {
        // What Chrome and Firefox send.
        let a = try #require(negotiate("permessage-deflate; client_max_window_bits"))
        #expect(
            a.responseHeader
                == "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12")
        #expect(a.serverWindowBits == 12)
        #expect(a.clientWindowBits == 12)
        #expect(!a.clientNoContextTakeover)
    }

    @Test func plainOfferCannotLimitTheClientWindow() throws {
        let a = try #require(negotiate("permessage-deflate"))
        #expect(a.responseHeader == "permessage-deflate; server_no_context_takeover; server_max_window_bits=12")
        #expect(a.clientWindowBits == 15)
    }

    @Test func honoursTheClientsLimitsAndContextRequests() throws {
        let a = try #require(
            negotiate(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                    + "server_max_window_bits=10; client_max_window_bits=9"))
        #expect(
            a.responseHeader
                == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                + "server_max_window_bits=10; client_max_window_bits=9")
        #expect(a.serverWindowBits == 10 && a.clientWindowBits == 9 && a.clientNoContextTakeover)
    }

    @Test func quotedValuesAreValues() throws {
        let a = try #require(negotiate(#"permessage-deflate; server_max_window_bits="11""#))
        #expect(a.serverWindowBits == 11)
    }

    @Test func overBudgetTheClientIsAskedNotToKeepContext() throws {
        let a = try #require(negotiate("permessage-deflate; client_max_window_bits", takeover: false))
        #expect(a.clientNoContextTakeover)
        #expect(a.responseHeader.contains("; client_no_context_takeover"))
    }

    @Test(arguments: [
        "permessage-deflate; server_max_window_bits=8",  // zlib cannot compress with a 256-byte window
        "permessage-deflate; mystery_parameter",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        #"permessage-deflate; server_max_window_bits="1 0""#,
        "x-webkit-deflate-frame",
        "permessage-deflate=1",
    ])
    func offersTheServerCannotHonourAreDeclined(_ header: String) {
        #expect(negotiate(header) == nil)
    }

    @Test func fallsBackToTheNextOffer() throws {
        let a = try #require(
            negotiate(
                "permessage-deflate; server_max_window_bits=8; client_max_window_bits, "
                    + "permessage-deflate; unknown=1, permessage-deflate; server_max_window_bits=9"))
        #expect(a.serverWindowBits == 9)
        #expect(a.clientWindowBits == 15)
        // Offers spread over several header lines count in order too.
        let offers = PerMessageDeflate.offers(in: [
            "x-foo, permessage-deflate; server_max_window_bits=8", "permessage-deflate; client_max_window_bits=10",
        ])
        // A well-formed offer the server cannot honour is still an offer; negotiation skips it.
        #expect(offers == [Offer(serverMaxWindowBits: 8), Offer(clientMaxWindowBits: .bits(10))])
        #expect(PerMessageDeflate.negotiate(offers, policy: .init(maxWindowBits: 12))?.clientWindowBits == 10)
    }

    @Test func anUnparseableLineAddsNothing() {
        #expect(PerMessageDeflate.offers(in: [#"permessage-deflate; x="open"#]).isEmpty)
    }

    @Test func theWindowCapApplies() throws {
        let a = try #require(negotiate("permessage-deflate; server_max_window_bits=15; client_max_window_bits=15", maxWindowBits: 10))
        #expect(a.serverWindowBits == 10 && a.clientWindowBits == 10)
    }

    @Test func aClientReadsTheResponse() throws {
        let a = try #require(
            PerMessageDeflate.clientAgreement(responseLines: [
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11"
            ]))
        #expect(a.clientWindowBits == 11 && a.serverWindowBits == 12 && !a.clientNoContextTakeover)
        #expect(PerMessageDeflate.clientAgreement(responseLines: ["x-other"]) == nil)
    }
}

@Suite struct MessageDeflateTests {
    let allocator = ByteBufferAllocator()

    func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    @Test func roundTripWithoutContext() throws {
        let compressor = try MessageCompressor(windowBits: 12, contextTakeover: false)
        let inflater = try MessageDecompressor(windowBits: 15, contextTakeover: false)
        let text = String(repeating: #"{"op":"answer.save","value":"lorem ipsum dolor"},"#, count: 20)
        for _ in 0..<3 {
            let c = try #require(compressor.compress(buffer(text), allocator: allocator))
            #expect(c.readableBytes < text.utf8.count / 5)
            let plain = try inflater.decompress(c, limit: 1 << 20, allocator: allocator)
            #expect(String(buffer: plain) == text)
        }
    }

    @Test func contextTakeoverShrinksRepeatedMessages() throws {
        let compressor = try MessageCompressor(windowBits: 12, contextTakeover: true)
        let inflater = try MessageDecompressor(windowBits: 12, contextTakeover: true)
        let text = #"{"op":"answer.save","id":7,"qid":"q3","value":"The mitochondria is the powerhouse of the cell"}"#
        let first = try #require(compressor.compress(buffer(text), allocator: allocator))
        let second = try #require(compressor.compress(buffer(text), allocator: allocator))
        #expect(second.readableBytes < first.readableBytes / 3)
        #expect(String(buffer: try inflater.decompress(first, limit: 4096, allocator: allocator)) == text)
        #expect(String(buffer: try inflater.decompress(second, limit: 4096, allocator: allocator)) == text)
    }

    @Test func incompressibleOrEmptyMessagesStayAsTheyAre() throws {
        let compressor = try MessageCompressor(windowBits: 15, contextTakeover: false)
        #expect(compressor.compress(buffer("ab"), allocator: allocator) == nil)
        #expect(compressor.compress(ByteBuffer(), allocator: allocator) == nil)
        var random = SystemRandomNumberGenerator()
        let noise = ByteBuffer(bytes: (0..<600).map { _ in UInt8.random(in: 0...255, using: &random) })
        #expect(compressor.compress(noise, allocator: allocator) == nil)
    }

    @Test func aBombStopsAtTheLimit() throws {
        // 4 MiB of spaces compress to a few KiB.
        let compressor = try MessageCompressor(windowBits: 15, contextTakeover: false)
        let bomb = try #require(
            compressor.compress(ByteBuffer(repeating: 0x20, count: 4 << 20), allocator: allocator))
        #expect(bomb.readableBytes < 8192)
        let inflater = try MessageDecompressor(windowBits: 15, contextTakeover: false)
        #expect(throws: MessageDecompressor.Failure.tooLarge) {
            try inflater.decompress(bomb, limit: 262_144, allocator: allocator)
        }
        // Exactly at the limit is fine; one byte over is not.
        let exact = try #require(compressor.compress(ByteBuffer(repeating: 0x41, count: 5000), allocator: allocator))
        #expect(try inflater.decompress(exact, limit: 5000, allocator: allocator).readableBytes == 5000)
        #expect(throws: MessageDecompressor.Failure.tooLarge) {
            try inflater.decompress(exact, limit: 4999, allocator: allocator)
        }
        // The shared inflater is usable after a refusal.
        let small = try #require(compressor.compress(buffer(String(repeating: "ok ", count: 100)), allocator: allocator))
        #expect(try inflater.decompress(small, limit: 1000, allocator: allocator).readableBytes == 300)
    }

    @Test func corruptDataIsRefused() throws {
        let inflater = try MessageDecompressor(windowBits: 15, contextTakeover: false)
        #expect(throws: MessageDecompressor.Failure.corrupt) {
            try inflater.decompress(ByteBuffer(bytes: [0xFF, 0xFF, 0xFF, 0x00, 0x12]), limit: 1000, allocator: allocator)
        }
    }
}
