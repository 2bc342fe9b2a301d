import ExamHubDomain
import NIOCore
import NIOEmbedded
import Testing

@testable import ExamHubServer

@Suite struct DrainScheduleTests {
    @Test func noSocketsNoSlices() {
        #expect(DrainSchedule(count: 0, window: .seconds(5)).slices.isEmpty)
    }

    @Test func zeroWindowClosesEverythingAtOnce() {
        #expect(DrainSchedule(count: 7, window: .zero).slices == [.init(offset: .zero, range: 0..<7)])
    }

    @Test func oneSlicePerSocketWhenFewFromStartToEnd() {
        let s = DrainSchedule(count: 3, window: .seconds(2)).slices
        #expect(s.map(\.range) == [0..<1, 1..<2, 2..<3])
        #expect(s.map(\.offset) == [.zero, .seconds(1), .seconds(2)])
    }

    @Test func manySocketsShareAtMostOneSlicePerIntervalEvenly() {
        let s = DrainSchedule(count: 1000, window: .seconds(5), minimumInterval: .milliseconds(50)).slices
        #expect(s.count == 101)
        #expect(s.first?.offset == .zero && s.last?.offset == .seconds(5))
        // Every socket exactly once, in order; shares differ by at most one.
        #expect(s.flatMap { Array($0.range) } == Array(0..<1000))
        let sizes = s.map(\.range.count)
        #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1)
        // Evenly spaced, never backwards.
        for (a, b) in zip(s, s.dropFirst()) {
            #expect(b.offset > a.offset)
            #expect(abs((b.offset - a.offset).nanoseconds - 50_000_000) <= 1)
        }
    }

    @Test func aLongWindowDoesNotOverflow() {
        let s = DrainSchedule(count: 100_000, window: .seconds(600), minimumInterval: .nanoseconds(1)).slices
        #expect(s.count == 100_000 && s.last?.offset == .seconds(600))
    }

    /// The registry closes its sockets slice by slice as the loop's clock advances, skipping those already gone.
    @Test func registryClosesItsSocketsOverTheWindow() async throws {
        let loop = EmbeddedEventLoop()
        let services = try await makeServices(loop: loop)
        let proctor = Principal(userID: "p1", tenant: "t1", role: .proctor, expiresAt: 4_000_000_000)
        var channels: [EmbeddedChannel] = []
        for _ in 0..<5 {
            let channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandler(
                ConnectionHandler(services: services, mode: .hub, principal: proctor))
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
            channels.append(channel)
        }
        func closed() throws -> [Bool] {
            try channels.map { c in try c.outboundFrames().contains { $0.closeCode == 1001 } }
        }
        var seen = [Bool](repeating: false, count: 5)
        func update() throws {
            for (i, c) in try closed().enumerated() where c { seen[i] = true }
        }
        // The fourth socket leaves on its own before the drain.
        try await channels[3].close()
        let registry = try #require(services.hub.registry(for: loop))
        registry.drain(over: .seconds(4))  // 4 sockets: at 0, 4/3, 8/3 and 4 s
        try update()
        #expect(seen == [true, false, false, false, false])
        loop.advanceTime(by: .milliseconds(1400))
        try update()
        #expect(seen == [true, true, false, false, false])
        loop.advanceTime(by: .milliseconds(1300))
        try update()
        #expect(seen == [true, true, true, false, false])
        loop.advanceTime(by: .milliseconds(1300))
        try update()
        #expect(seen == [true, true, true, false, true])
    }
}
