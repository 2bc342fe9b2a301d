import ExamHubIntents
import ExamHubLLM
import Foundation
import XCTest

@testable import ExamHubAssistant

/// The assistant's decisions on the shipped `Intents/` catalog: policy first, then intents, then the LLM.
final class AssistantTests: XCTestCase {
    static let catalog: IntentCatalog? = {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Intents")
        return try? IntentCatalog.load(directory: dir.standardized)
    }()
    static let withLLM: Assistant? = catalog.map { Assistant(catalog: $0, llmEnabled: true) }

    private func assistant(llm: Bool = true) throws -> Assistant {
        let base = try XCTUnwrap(Self.withLLM, "the Intents folder did not load")
        return Assistant(catalog: base.catalog, matcher: base.matcher, llmEnabled: llm)
    }

    private func decide(_ text: String, inAttempt: Bool, llm: Bool = true) throws -> AssistantDecision {
        var context = DialogContext(inAttempt: inAttempt)
        return try assistant(llm: llm).decide(text, context: &context).0
    }

    func testExamContentIsRefusedByThePolicy() throws {
        for text in ["what's the answer to question 3", "give me a hint", "explain this question"] {
            for inAttempt in [true, false] {
                guard case .reply(_, let intent, _, let source) = try decide(text, inAttempt: inAttempt) else {
                    return XCTFail("\(text): not refused")
                }
                XCTAssertEqual(source, .policy, text)
                XCTAssertEqual(intent, "exam_help", text)
            }
        }
    }

    func testTheContentNetCatchesWhatTheIntentsDoNotKnowDuringAnAttemptOnly() throws {
        let text = "compute the derivative of x squared plus the integral of sine"
        guard case .reply(_, _, _, let source) = try decide(text, inAttempt: true) else { return XCTFail("not refused") }
        XCTAssertEqual(source, .policy)
        XCTAssertEqual(try decide(text, inAttempt: false), .llm, "outside an attempt maths is a fair question")
    }

    func testAbuseIsRefusedButFrustrationIsNot() throws {
        XCTAssertTrue(ContentPolicy.isAbusive("you are a useless idiot"))
        XCTAssertTrue(ContentPolicy.isAbusive("shut up you stupid bot"))
        XCTAssertFalse(ContentPolicy.isAbusive("this stupid webcam will not start"))
        XCTAssertFalse(ContentPolicy.isAbusive("I hate exams"))
        guard case .reply(let text, _, _, let source) = try decide("you idiot", inAttempt: false) else {
            return XCTFail("not refused")
        }
        XCTAssertEqual(source, .policy)
        XCTAssertEqual(text, ContentPolicy.abuseReply)
    }

    func testActionsAreHandedBackWithTheirMatch() throws {
        guard case .action(let action, let match) = try decide("how much time do I have left", inAttempt: true) else {
            return XCTFail("no action")
        }
        XCTAssertEqual(action, .timeLeft)
        let text = try assistant().render(match, slots: ["time_left": "12 minutes", "ends_at": "14:30 UTC"])
        XCTAssertTrue(text.contains("12 minutes"), text)
        // Outside an attempt the intent's context does not hold: its unavailable text, no action.
        guard case .reply(let outside, let intent, _, .intent) = try decide("how much time do I have left", inAttempt: false)
        else { return XCTFail("no reply") }
        XCTAssertEqual(intent, "time_left")
        XCTAssertTrue(outside.contains("not in an exam attempt"), outside)
    }

    func testUnknownQuestionsGoToTheLLMOrGetAPlainNo() throws {
        XCTAssertEqual(try decide("what is the capital of France", inAttempt: false), .llm)
        guard case .reply(let text, nil, _, .intent) = try decide("what is the capital of France", inAttempt: false, llm: false)
        else { return XCTFail("no reply") }
        XCTAssertEqual(text, ContentPolicy.noLLMReply)
    }

    func testTheLLMGetsTheSystemPromptTheHistoryAndTheMessageOnly() {
        let messages = Assistant.llmMessages(
            systemPrompt: Assistant.systemPrompt(inAttempt: true),
            history: [("user", "hi"), ("assistant", "Hello!")], message: "what is a good study plan?")
        XCTAssertEqual(messages.map(\.role), [.system, .user, .assistant, .user])
        XCTAssertTrue(messages[0].content.contains("Never give answers, hints"))
        XCTAssertFalse(Assistant.systemPrompt(inAttempt: false).contains("Never give answers"))
        XCTAssertEqual(messages.last?.content, "what is a good study plan?")
    }

    func testContentCuesNeedWholeWords() {
        XCTAssertTrue(ContentPolicy.looksLikeExamContent("Is option B right?"))
        XCTAssertTrue(ContentPolicy.looksLikeExamContent("what does question 4 mean"))
        XCTAssertFalse(ContentPolicy.looksLikeExamContent("my webcam shows a black screen"))
        XCTAssertFalse(ContentPolicy.looksLikeExamContent("can I use a calculator"))
        XCTAssertFalse(ContentPolicy.looksLikeExamContent(""))
    }
}
