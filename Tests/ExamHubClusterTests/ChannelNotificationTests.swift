import Testing

@testable import ExamHubCluster

@Suite struct ChannelNotificationTests {
    @Test func readsTheHeaderAndTheDataAfterTheFirstNewline() throws {
        // As PostgreSQL's json_build_array writes it, spaces included; the data may hold an escaped newline.
        let payload = #"["n1x", "t1", "exam:e1:proctor", "0a1b2c3d4e5f6a7b", 42, 1763900000123, "flag.raised"]"#
            + "\n" + #"{"code":"paste","note":"a\nb"}"#
        let n = try #require(ChannelNotification(parsing: payload))
        #expect(n.node == "n1x" && n.tenant == "t1" && n.channel == "exam:e1:proctor")
        #expect(n.epoch == "0a1b2c3d4e5f6a7b" && n.seq == 42 && n.tsMillis == 1_763_900_000_123)
        #expect(n.type == "flag.raised")
        #expect(n.data == #"{"code":"paste","note":"a\nb"}"#)
    }

    @Test func aHeaderAloneMeansTheDataIsInTheLog() throws {
        let n = try #require(ChannelNotification(parsing: #"["n1", "t\"1", "attempt:a1", "e", 1, 5, "answer.saved"]"#))
        #expect(n.tenant == "t\"1" && n.data == nil)
    }

    @Test(arguments: [
        "", "not json", "{}", #"["n1", "t1", "attempt:a1", "e", 0, 5, "x"]"#, #"["n1", "t1", "attempt:a1", "e", -3, 5, "x"]"#,
        #"["n1", "t1", "attempt:a1", "e", 1, 5]"#, #"["n1", "t1", "attempt:a1", "e", "1", 5, "x"]"#,
        #"[1, "t1", "attempt:a1", "e", 1, 5, "x"]"#,
    ])
    func anythingElseIsRefused(_ payload: String) {
        #expect(ChannelNotification(parsing: payload) == nil)
    }
}
