import XCTest

@testable import ExamHubIntents

/// The default `Intents/` folder: it validates, it is big enough, and the matcher trained on it behaves.
final class ShippedIntentsTests: XCTestCase {
    func testShippedFolderLoadsAndValidates() throws {
        let catalog = try Shipped.catalog.get()
        XCTAssertGreaterThanOrEqual(catalog.intents.count, 25)
        for intent in catalog.intents {
            XCTAssertGreaterThanOrEqual(intent.phrases.count, 15, intent.name)
            XCTAssertFalse(intent.responses.isEmpty, intent.name)
        }
        let actions = Set(catalog.intents.compactMap(\.action))
        XCTAssertEqual(actions, Set(BuiltInAction.allCases), "every built-in action is used by a shipped intent")
        XCTAssertNotNil(catalog.intent(named: "exam_help"))
    }

    func testEveryIntentMatchesItsOwnPhrases() throws {
        let catalog = try Shipped.catalog.get()
        let matcher = try XCTUnwrap(Shipped.matcher)
        var total = 0
        var correct = 0
        for intent in catalog.intents {
            var own = 0
            for phrase in intent.phrases {
                let text = IntentMatcher.expand(phrase, entities: intent.entities)[0]
                if matcher.match(text).intent == intent.name { own += 1 }
            }
            XCTAssertGreaterThanOrEqual(Double(own) / Double(intent.phrases.count), 0.85, intent.name)
            total += intent.phrases.count
            correct += own
        }
        XCTAssertGreaterThanOrEqual(Double(correct) / Double(total), 0.95)
    }

    func testHeldOutParaphrases() throws {
        let matcher = try XCTUnwrap(Shipped.matcher)
        let cases: [(String, String)] = [
            ("how many minutes remain?", "time_left"),
            ("did my answers get saved", "save_status"),
            ("I'd like to speak with a proctor please", "human_help"),
            ("question 5 has a broken picture", "report_problem"),
            ("can I go to the toilet", "break_request"),
            ("where do I click to submit the exam", "submit_exam"),
            ("my wifi dropped out", "connection_lost"),
            ("is a calculator permitted", "calculator"),
            ("what are the rules of this exam", "exam_rules"),
            ("hello there", "greeting"),
            ("thank you!", "thanks"),
        ]
        var hits = 0
        for (text, expected) in cases where matcher.match(text).intent == expected { hits += 1 }
        XCTAssertGreaterThanOrEqual(hits, cases.count - 1, "held-out paraphrases")
    }

    func testExamHelpRefusal() throws {
        let catalog = try Shipped.catalog.get()
        let matcher = try XCTUnwrap(Shipped.matcher)
        let refusal = try XCTUnwrap(catalog.intent(named: "exam_help"))
        for text in [
            "what's the answer to question 3", "give me a hint", "explain this question",
            "What is the answer to number 7?", "can you give me a small hint please",
            "could you explain question 2 to me",
            "tell me which option is correct",
        ] {
            let match = matcher.match(text, context: DialogContext(inAttempt: true))
            XCTAssertEqual(match.intent, "exam_help", text)
            let reply = catalog.respond(to: match, slots: [:], variantSeed: 3)
            XCTAssertTrue(refusal.responses.contains(reply), reply)
            XCTAssertTrue(reply.contains("can't help") || reply.contains("not able to help"))
        }
    }

    func testOffTopicIsOutOfScope() throws {
        let matcher = try XCTUnwrap(Shipped.matcher)
        let offTopic = [
            "what's the weather in paris", "book me a flight to london", "what is the capital of australia",
            "play some music", "how do I bake bread", "who won the world cup", "order a pizza",
            "what's the exchange rate of the dollar", "tell me about quantum physics", "set an alarm for 7am",
        ]
        let rejected = offTopic.filter { matcher.match($0).isOutOfScope }.count
        XCTAssertGreaterThanOrEqual(rejected, 7, "off-topic questions rejected")
        XCTAssertFalse(matcher.match("how much time is left").isOutOfScope)
    }

    func testRespondWithActionSlots() throws {
        let catalog = try Shipped.catalog.get()
        let matcher = try XCTUnwrap(Shipped.matcher)
        let match = matcher.match("how long do I have left?", context: DialogContext(inAttempt: true))
        XCTAssertEqual(match.action, .timeLeft)
        let reply = catalog.respond(
            to: match, slots: ["time_left": "23 minutes", "ends_at": "14:30 UTC"], variantSeed: 0)
        XCTAssertTrue(reply.contains("23 minutes"), reply)
        let report = matcher.match("question 4 has a typo", context: DialogContext(inAttempt: true))
        XCTAssertEqual(report.action, .reportProblem)
        XCTAssertEqual(report.action?.notifiesProctors, true)
        XCTAssertEqual(report.entities["question"], .number(4))
    }
}
