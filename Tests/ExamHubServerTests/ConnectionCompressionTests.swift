import ExamHubDomain
import ExamHubWire
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import ExamHubServer

/// permessage-deflate on a connection, in memory: inbound RSV1 messages inflated, replies and events compressed,
/// and every way a compressed message can be wrong.
@Suite struct ConnectionCompressionTests {
    let proctor = Principal(userID: "p1", tenant: "t1", role: .proctor, expiresAt: 4_000_000_000)
    let allocator = ByteBufferAllocator()

    func agreement(_ offer: String = "permessage-deflate; client_max_window_bits") -> PerMessageDeflate.Agreement? {
        PerMessageDeflate.negotiate(PerMessageDeflate.offers(in: [offer]), policy: .init(maxWindowBits: 12))
    }

    func open(
        deflate: PerMessageDeflate.Agreement?, configure: (inout HubConfiguration) -> Void = { _ in }
    ) async throws -> (EmbeddedChannel, EmbeddedEventLoop, HubServices) {
        let loop = EmbeddedEventLoop()
        let services = try await makeServices(loop: loop, configure: configure)
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(
            ConnectionHandler(services: services, mode: .hub, principal: proctor, remoteIP: "198.51.100.7", deflate: deflate))
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return (channel, loop, services)
    }

    /// A masked client frame with `payload` compressed (RSV1 set).
    func compressedFrame(_ payload: [UInt8], with compressor: MessageCompressor, opcode: WebSocketOpcode = .text) throws
        -> WebSocketFrame
    {
        var data = try #require(compressor.compress(ByteBuffer(bytes: payload), allocator: allocator))
        data.webSocketMask(testMask)
        return WebSocketFrame(fin: true, rsv1: true, opcode: opcode, maskKey: testMask, data: data)
    }

    func inflate(_ frame: WebSocketFrame) throws -> String {
        #expect(frame.rsv1)
        let inflater = try MessageDecompressor(windowBits: 15, contextTakeover: false)
        return String(buffer: try inflater.decompress(frame.data, limit: 1 << 20, allocator: allocator))
    }

    @Test func compressedMessagesAreInflatedWithTheClientsContext() async throws {
        let (channel, _, services) = try await open(deflate: agreement())
        let client = try MessageCompressor(windowBits: 12, contextTakeover: true)
        for id in 1...3 {
            try channel.writeInbound(try compressedFrame(Array(#"{"op":"ping","id":\#(id)}"#.utf8), with: client))
        }
        let replies = try channel.outboundFrames()
        // Replies under the minimum size go out uncompressed.
        #expect(replies.map { $0.rsv1 } == [false, false, false])
        #expect(replies.compactMap { $0.json?["id"] } == [.int(1), .int(2), .int(3)])
        #expect(services.inflateMemoryInUse.withLockedValue { $0 } == CompressionConfiguration.inflaterCost(windowBits: 12))
        try await channel.close()
        #expect(services.inflateMemoryInUse.withLockedValue { $0 } == 0)
    }

    @Test func fragmentedCompressedMessage() async throws {
        let (channel, _, _) = try await open(deflate: agreement("permessage-deflate; client_no_context_takeover"))
        let client = try MessageCompressor(windowBits: 15, contextTakeover: false)
        let whole = try #require(
            client.compress(ByteBuffer(string: #"{"op":"ping","id":41,"pad":"\#(String(repeating: "x", count: 300))"}"#),
                            allocator: allocator))
        var first = whole.getSlice(at: whole.readerIndex, length: 5) ?? whole
        var rest = whole.getSlice(at: whole.readerIndex + 5, length: whole.readableBytes - 5) ?? whole
        first.webSocketMask(testMask)
        rest.webSocketMask(testMask)
        try channel.writeInbound(WebSocketFrame(fin: false, rsv1: true, opcode: .text, maskKey: testMask, data: first))
        try channel.writeInbound(clientFrame(.ping, [7]))
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .continuation, maskKey: testMask, data: rest))
        let frames = try channel.outboundFrames()
        #expect(frames.map(\.opcode) == [.pong, .text])
        #expect(frames.last?.json?["id"] == .int(41))
    }

    @Test func largeRepliesAndEventsAreCompressed() async throws {
        let (channel, loop, services) = try await open(deflate: agreement()) { c in
            c.compression.channels = [.examProctor]
            c.compression.minBytes = 64
        }
        try channel.writeInbound(clientText(#"{"op":"subscribe","id":1,"ch":"exam:e1:proctor"}"#))
        _ = try channel.outboundFrames()
        let note = String(repeating: "candidate left fullscreen; ", count: 20)
        services.hub.publish(
            ChannelKey(tenant: "t1", name: .examProctor("e1")), type: "flag.raised", data: .object(["note": .string(note)]),
            now: WallClock.nowMillis())
        loop.run()
        let event = try #require(try channel.outboundFrames().first)
        #expect(event.rsv1)
        #expect(event.data.readableBytes < note.utf8.count / 4)
        let json = try JSONParser.parse(try inflate(event))
        #expect(json["data"]?["note"] == .string(note))
    }

    @Test func eventsOfKindsNotListedStayUncompressed() async throws {
        let (channel, loop, services) = try await open(deflate: agreement()) { c in
            c.compression.channels = [.attempt]
            c.compression.minBytes = 64
        }
        try channel.writeInbound(clientText(#"{"op":"subscribe","id":1,"ch":"exam:e1:proctor"}"#))
        _ = try channel.outboundFrames()
        services.hub.publish(
            ChannelKey(tenant: "t1", name: .examProctor("e1")), type: "flag.raised",
            data: .object(["note": .string(String(repeating: "x", count: 500))]), now: WallClock.nowMillis())
        loop.run()
        let event = try #require(try channel.outboundFrames().first)
        #expect(!event.rsv1)
        #expect(event.json?["type"] == .string("flag.raised"))
    }

    @Test func withoutNegotiationRSV1IsAProtocolError() async throws {
        let (channel, _, _) = try await open(deflate: nil)
        let client = try MessageCompressor(windowBits: 15, contextTakeover: false)
        try channel.writeInbound(try compressedFrame(Array(String(repeating: #"{"op":"ping"}"#, count: 30).utf8), with: client))
        #expect(try channel.outboundFrames().last?.closeCode == 1002)
    }

    @Test func rsv1OnAControlFrameIsAProtocolError() async throws {
        let (channel, _, _) = try await open(deflate: agreement())
        var ping = clientFrame(.ping, [1])
        ping.rsv1 = true
        try channel.writeInbound(ping)
        #expect(try channel.outboundFrames().last?.closeCode == 1002)
    }

    @Test func rsv1OnAContinuationIsAProtocolError() async throws {
        let (channel, _, _) = try await open(deflate: agreement())
        try channel.writeInbound(clientText(#"{"op":"pi"#, fin: false))
        var next = clientFrame(.continuation, Array(#"ng","id":1}"#.utf8))
        next.rsv1 = true
        try channel.writeInbound(next)
        #expect(try channel.outboundFrames().last?.closeCode == 1002)
    }

    @Test func aBombClosesWith1009() async throws {
        // maxMessageBytes is 1,024 in these tests: 100 KiB of spaces compress to about 120 bytes.
        let (channel, _, _) = try await open(deflate: agreement())
        let client = try MessageCompressor(windowBits: 12, contextTakeover: true)
        let frame = try compressedFrame([UInt8](repeating: 0x20, count: 100 * 1024), with: client)
        #expect(frame.data.readableBytes < 1024)
        try channel.writeInbound(frame)
        #expect(try channel.outboundFrames().last?.closeCode == 1009)
    }

    @Test func corruptDataClosesWith1007() async throws {
        let (channel, _, _) = try await open(deflate: agreement())
        var data = ByteBuffer(bytes: [0xFF, 0xEE, 0xDD, 0xCC, 0xBB])
        data.webSocketMask(testMask)
        try channel.writeInbound(WebSocketFrame(fin: true, rsv1: true, opcode: .text, maskKey: testMask, data: data))
        #expect(try channel.outboundFrames().last?.closeCode == 1007)
    }

    @Test func invalidUTF8InsideCompressionClosesWith1007() async throws {
        let (channel, _, _) = try await open(deflate: agreement())
        let client = try MessageCompressor(windowBits: 12, contextTakeover: true)
        try channel.writeInbound(try compressedFrame([0x7B, 0xC3, 0x28, 0x7D], with: client))
        #expect(try channel.outboundFrames().last?.closeCode == 1007)
    }
}
