import ExamHubDomain
import Testing

@Suite struct ChannelNameTests {
    @Test func parsesEveryKind() {
        #expect(ChannelName("attempt:a-1") == .attempt("a-1"))
        #expect(ChannelName("exam:e_1.x:proctor") == .examProctor("e_1.x"))
        #expect(ChannelName("chat:c1") == .chat("c1"))
    }

    @Test(arguments: [
        "", "attempt", "attempt:", "attempt:a:b", "exam:e1", "exam:e1:watch", "exam::proctor", "chat:a b", "conn",
        "ATTEMPT:a", "attempt:é", String(repeating: "x", count: 10), "attempt:" + String(repeating: "a", count: 129),
    ])
    func refusesInvalidNames(raw: String) {
        #expect(ChannelName(raw) == nil)
    }

    @Test func roundTripsDescription() {
        for raw in ["attempt:a1", "exam:e1:proctor", "chat:c-9"] {
            #expect(ChannelName(raw)?.description == raw)
        }
    }

    @Test func idLimits() {
        #expect(ChannelName.isValidID(String(repeating: "a", count: 128)))
        #expect(!ChannelName.isValidID(String(repeating: "a", count: 129)))
        #expect(!ChannelName.isValidID(""))
    }
}
