import ExamHubDomain
import ExamHubWire
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@testable import ExamHubServer

@Suite struct ConnectionHandlerTests {
    let proctor = Principal(userID: "p1", tenant: "t1", role: .proctor, expiresAt: 4_000_000_000)

    func open(principal: Principal?, mode: ConnectionHandler.Mode = .hub, configure: (inout HubConfiguration) -> Void = { _ in })
        async throws -> (EmbeddedChannel, EmbeddedEventLoop, HubServices)
    {
        let loop = EmbeddedEventLoop()
        let services = try await makeServices(loop: loop, configure: configure)
        let channel = EmbeddedChannel(loop: loop)
        #expect(services.reserveConnection(from: "127.0.0.1") == nil)  // as the upgrade does
        try channel.pipeline.syncOperations.addHandler(
            ConnectionHandler(services: services, mode: mode, principal: principal, remoteIP: "127.0.0.1"))
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return (channel, loop, services)
    }

    @Test func pingReplies() async throws {
        let (channel, _, _) = try await open(principal: proctor)
        try channel.writeInbound(clientText(#"{"op":"ping","id":1}"#))
        let frames = try channel.outboundFrames()
        #expect(frames.count == 1)
        let reply = try #require(frames.first?.json)
        #expect(reply["op"] == .string("reply"))
        #expect(reply["id"] == .int(1))
        #expect(reply["ok"] == .bool(true))
        #expect(reply["data"]?["serverTime"]?.stringValue.flatMap(Timestamp.parse) != nil)
    }

    @Test func reassemblesFragments() async throws {
        let (channel, _, _) = try await open(principal: proctor)
        try channel.writeInbound(clientText(#"{"op":"pi"#, fin: false))
        try channel.writeInbound(clientFrame(.ping, [1, 2]))  // control frames may interleave
        try channel.writeInbound(clientFrame(.continuation, Array(#"ng","id":2}"#.utf8)))
        let frames = try channel.outboundFrames()
        #expect(frames.map(\.opcode) == [.pong, .text])
        #expect(frames[0].data == ByteBuffer(bytes: [1, 2]))
        #expect(frames[1].json?["id"] == .int(2))
    }

    @Test func badJSONGetsAnErrorEventAndTheConnectionGoesOn() async throws {
        let (channel, _, _) = try await open(principal: proctor)
        try channel.writeInbound(clientText("{nope"))
        try channel.writeInbound(clientText(#"{"op":"unknown.op","id":5}"#))
        try channel.writeInbound(clientText(#"{"op":"ping","id":6}"#))
        let frames = try channel.outboundFrames().compactMap(\.json)
        #expect(frames.count == 3)
        #expect(frames[0]["ch"] == .string("conn"))
        #expect(frames[0]["type"] == .string("error"))
        #expect(frames[0]["data"]?["code"] == .string("bad_request"))
        #expect(frames[1]["error"]?["code"] == .string("bad_request"))
        #expect(frames[2]["ok"] == .bool(true))
        #expect(channel.isActive)
    }

    @Test(arguments: [
        (clientFrame(.binary, [1, 2, 3]), UInt16(1003)),
        (clientFrame(.text, Array("{}".utf8), masked: false), UInt16(1002)),
        (clientFrame(.continuation, Array("x".utf8)), UInt16(1002)),
        (clientFrame(.text, [0x7B, 0xC3, 0x28, 0x7D]), UInt16(1007)),
        (clientFrame(.text, Array(repeating: 0x20, count: 2000)), UInt16(1009)),
        (clientFrame(WebSocketOpcode(encodedWebSocketOpcode: 0x3)!, [1]), UInt16(1002)),
    ])
    func closesWithTheRightCode(frame: WebSocketFrame, code: UInt16) async throws {
        let (channel, _, _) = try await open(principal: proctor)
        try channel.writeInbound(frame)
        let frames = try channel.outboundFrames()
        #expect(frames.last?.closeCode == code)
    }

    @Test func reservedBitsAreAProtocolError() async throws {
        let (channel, _, _) = try await open(principal: proctor)
        var frame = clientText(#"{"op":"ping","id":1}"#)
        frame.rsv1 = true
        try channel.writeInbound(frame)
        #expect(try channel.outboundFrames().last?.closeCode == 1002)
    }

    @Test func invalidUTF8SplitAcrossFragments() async throws {
        let (channel, _, _) = try await open(principal: proctor)
        try channel.writeInbound(clientFrame(.text, [0x61, 0xE2], fin: false))
        #expect(try channel.outboundFrames().isEmpty)
        try channel.writeInbound(clientFrame(.continuation, [0x82, 0xAC], fin: true))  // € completed: valid
        // "a€" is not JSON, so a bad_request error event, not a close.
        let frames = try channel.outboundFrames()
        #expect(frames.first?.json?["type"] == .string("error"))
        try channel.writeInbound(clientFrame(.text, [0x61, 0xE2], fin: false))
        try channel.writeInbound(clientFrame(.continuation, [0x41], fin: true))
        #expect(try channel.outboundFrames().last?.closeCode == 1007)
    }

    @Test(arguments: [
        ([UInt8](), UInt16(1000)), ([0x03, 0xE8], UInt16(1000)), ([0x03, 0xE8, 0x6F, 0x6B], UInt16(1000)),
        ([0x03], UInt16(1002)), ([0x03, 0xED], UInt16(1002)), ([0x03, 0xEE], UInt16(1002)), ([0x00, 0x00], UInt16(1002)),
        ([0x0F, 0xA0], UInt16(4000)), ([0x03, 0xE8, 0xFF], UInt16(1007)),
    ])
    func answersCloseFrames(payload: [UInt8], expected: UInt16) async throws {
        let (channel, _, _) = try await open(principal: proctor)
        try channel.writeInbound(clientFrame(.connectionClose, payload))
        let frames = try channel.outboundFrames()
        #expect(frames.last?.closeCode == expected)
    }

    @Test func unauthenticatedSocketClosesWith4001AfterTheTimeout() async throws {
        let (channel, loop, _) = try await open(principal: nil)
        try channel.writeInbound(clientText(#"{"op":"ping","id":1}"#))
        let first = try channel.outboundFrames()
        #expect(first.first?.json?["error"]?["code"] == .string("unauthorized"))
        loop.advanceTime(by: .seconds(4))
        #expect(try channel.outboundFrames().isEmpty)
        loop.advanceTime(by: .seconds(2))
        #expect(try channel.outboundFrames().last?.closeCode == 4001)
    }

    @Test func expiredTokenClosesWith4001() async throws {
        // Expires 3 to 4 s from now (whole seconds); setting up the channel may take a moment on a busy machine.
        let soon = Principal(userID: "p1", tenant: "t1", role: .proctor, expiresAt: WallClock.nowMillis() / 1000 + 4)
        let (channel, loop, _) = try await open(principal: soon)
        loop.advanceTime(by: .seconds(1))
        #expect(try channel.outboundFrames().isEmpty)
        loop.advanceTime(by: .seconds(4))
        #expect(try channel.outboundFrames().last?.closeCode == 4001)
    }

    @Test func rateLimitRepliesThenCloses() async throws {
        let (channel, _, _) = try await open(principal: proctor) { c in
            c.ratePerSecond = 0.001
            c.rateBurst = 2
            c.rateCloseAfter = 3
        }
        for i in 1...6 { try channel.writeInbound(clientText(#"{"op":"ping","id":\#(i)}"#)) }
        let frames = try channel.outboundFrames()
        let codes = frames.compactMap { $0.json?["error"]?["code"]?.stringValue }
        #expect(frames.prefix(2).allSatisfy { $0.json?["ok"] == .bool(true) })
        #expect(codes == ["rate_limited", "rate_limited", "rate_limited"])
        #expect(frames.last?.closeCode == 4008)
    }

    @Test func subscribeDeliversAndRecovers() async throws {
        let (channel, loop, services) = try await open(principal: proctor)
        let key = ChannelKey(tenant: "t1", name: .examProctor("e1"))
        services.hub.publish(key, type: "flag.raised", data: .object(["n": .int(1)]), now: WallClock.nowMillis())
        try channel.writeInbound(clientText(#"{"op":"subscribe","id":1,"ch":"exam:e1:proctor"}"#))
        let reply = try #require(try channel.outboundFrames().first?.json)
        #expect(reply["data"]?["seq"] == .int(1))
        #expect(reply["data"]?["recovered"] == .bool(false))
        let epoch = try #require(reply["data"]?["epoch"]?.stringValue)

        services.hub.publish(key, type: "flag.raised", data: .object(["n": .int(2)]), now: WallClock.nowMillis())
        services.hub.publish(ChannelKey(tenant: "t2", name: .examProctor("e1")), type: "x", data: .object([:]), now: 0)
        loop.run()
        let events = try channel.outboundFrames().compactMap(\.json)
        #expect(events.count == 1)
        #expect(events[0]["seq"] == .int(2))
        #expect(events[0]["data"]?["n"] == .int(2))

        // A second socket recovers from seq 0 with the epoch: both events, in order.
        let second = EmbeddedChannel(loop: loop)
        #expect(services.reserveConnection(from: "127.0.0.1") == nil)
        try second.pipeline.syncOperations.addHandler(
            ConnectionHandler(services: services, mode: .hub, principal: proctor, remoteIP: "127.0.0.1"))
        try await second.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        try second.writeInbound(clientText(#"{"op":"subscribe","id":9,"ch":"exam:e1:proctor","since":{"epoch":"\#(epoch)","seq":0}}"#))
        let recovered = try second.outboundFrames().compactMap(\.json)
        #expect(recovered.count == 3)
        #expect(recovered[0]["data"]?["recovered"] == .bool(true))
        #expect(recovered[1]["seq"] == .int(1))
        #expect(recovered[2]["seq"] == .int(2))

        try channel.writeInbound(clientText(#"{"op":"unsubscribe","id":2,"ch":"exam:e1:proctor"}"#))
        _ = try channel.outboundFrames()
        services.hub.publish(key, type: "flag.raised", data: .object([:]), now: WallClock.nowMillis())
        loop.run()
        #expect(try channel.outboundFrames().isEmpty)
        #expect(try second.outboundFrames().count == 1)
    }

    @Test func candidatesCannotWatchProctorChannels() async throws {
        let candidate = Principal(userID: "u1", tenant: "t1", role: .candidate, expiresAt: 4_000_000_000)
        let (channel, _, _) = try await open(principal: candidate)
        try channel.writeInbound(clientText(#"{"op":"subscribe","id":1,"ch":"exam:e1:proctor"}"#))
        #expect(try channel.outboundFrames().first?.json?["error"]?["code"] == .string("forbidden"))
        try channel.writeInbound(clientText(#"{"op":"subscribe","id":2,"ch":"nonsense"}"#))
        #expect(try channel.outboundFrames().first?.json?["error"]?["code"] == .string("bad_request"))
    }

    @Test func subscriptionLimit() async throws {
        let (channel, _, _) = try await open(principal: proctor) { $0.maxSubscriptionsPerConnection = 2 }
        for i in 1...3 {
            try channel.writeInbound(clientText(#"{"op":"subscribe","id":\#(i),"ch":"exam:e\#(i):proctor"}"#))
        }
        let replies = try channel.outboundFrames().compactMap(\.json)
        #expect(replies.map { $0["ok"] } == [.bool(true), .bool(true), .bool(false)])
        #expect(replies[2]["error"]?["code"] == .string("too_large"))
    }

    @Test func echoModeEchoesTextAndBinary() async throws {
        let (channel, _, _) = try await open(principal: nil, mode: .echo)
        try channel.writeInbound(clientText("hello"))
        try channel.writeInbound(clientFrame(.binary, [0, 1, 2]))
        let frames = try channel.outboundFrames()
        #expect(frames.map(\.opcode) == [.text, .binary])
        #expect(frames[0].text == "hello")
    }

    @Test func drainClosesWith1001() async throws {
        let (channel, loop, services) = try await open(principal: proctor)
        services.hub.registry(for: loop)?.drainAll()
        #expect(try channel.outboundFrames().last?.closeCode == 1001)
    }
}
