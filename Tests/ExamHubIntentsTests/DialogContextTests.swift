import XCTest

@testable import ExamHubIntents

final class DialogContextTests: XCTestCase {
    func testFollowUpInheritsThePreviousIntentWhenItsEntitiesFit() throws {
        let matcher = try XCTUnwrap(Shipped.matcher)
        var dialog = DialogContext(inAttempt: true)

        let first = matcher.match("is my answer to question 2 saved?", context: dialog)
        XCTAssertEqual(first.intent, "save_status")
        XCTAssertEqual(first.entities["question"], .number(2))
        XCTAssertEqual(first.action, .saveStatus)
        dialog.record(first)

        let second = matcher.match("and for question 3?", context: dialog)
        XCTAssertEqual(second.intent, "save_status")
        XCTAssertTrue(second.isFollowUp)
        XCTAssertEqual(second.entities["question"], .number(3))
        dialog.record(second)

        let third = matcher.match("what about the other one", context: dialog)
        XCTAssertEqual(third.intent, "save_status")
        XCTAssertTrue(third.isFollowUp)
        XCTAssertEqual(third.entities["question"], .number(3), "kept from the previous turn")
    }

    func testFollowUpAfterTimeLeft() throws {
        let matcher = try XCTUnwrap(Shipped.matcher)
        var dialog = DialogContext(inAttempt: true)
        let first = matcher.match("how much time do I have left", context: dialog)
        XCTAssertEqual(first.intent, "time_left")
        dialog.record(first)
        let second = matcher.match("and for question 3?", context: dialog)
        XCTAssertEqual(second.intent, "time_left")
        XCTAssertEqual(second.entities["question"], .number(3))
        XCTAssertEqual(second.action, .timeLeft)
    }

    func testNoInheritanceWithoutContextOrWhenEntitiesDoNotFit() throws {
        let matcher = try XCTUnwrap(Shipped.matcher)
        // No previous intent: a bare follow-up is not inherited from anything.
        XCTAssertFalse(matcher.match("and for question 3?", context: DialogContext(inAttempt: true)).isFollowUp)

        // exam_rules declares no entity: a follow-up naming a date doesn't fit it.
        var dialog = DialogContext(inAttempt: true)
        let rules = matcher.match("what are the exam rules", context: dialog)
        XCTAssertEqual(rules.intent, "exam_rules")
        dialog.record(rules)
        let next = matcher.match("and tomorrow?", context: dialog)
        XCTAssertFalse(next.isFollowUp)
        XCTAssertNotEqual(next.intent, "exam_rules")

        // A confident new question is not a follow-up.
        dialog.record(matcher.match("are my answers saved", context: dialog))
        let fresh = matcher.match("what are the exam rules", context: dialog)
        XCTAssertEqual(fresh.intent, "exam_rules")
        XCTAssertFalse(fresh.isFollowUp)
    }

    func testRecordForgetsAfterOutOfScope() {
        var dialog = DialogContext(
            inAttempt: true, previousIntent: "time_left", previousEntities: ["question": .number(1)])
        dialog.record(IntentMatch(intent: nil, confidence: 0.1, isOutOfScope: true))
        XCTAssertNil(dialog.previousIntent)
        XCTAssertTrue(dialog.previousEntities.isEmpty)
    }

    func testContextRequirement() throws {
        let matcher = try XCTUnwrap(Shipped.matcher)
        let catalog = try Shipped.catalog.get()
        let outside = matcher.match("how much time do I have left", context: DialogContext(inAttempt: false))
        XCTAssertEqual(outside.intent, "time_left")
        XCTAssertFalse(outside.contextSatisfied)
        XCTAssertEqual(
            catalog.respond(to: outside, slots: [:]), catalog.intent(named: "time_left")?.unavailableResponse)
        let inside = matcher.match("how much time do I have left", context: DialogContext(inAttempt: true))
        XCTAssertTrue(inside.contextSatisfied)
    }
}
