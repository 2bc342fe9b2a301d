import XCTest

@testable import ExamHubIntents

final class IntentCatalogLoadingTests: XCTestCase {
    func write(_ files: [String: String]) throws -> URL {
        let directory = try temporaryDirectory(self)
        for (name, text) in files {
            try Data(text.utf8).write(to: directory.appendingPathComponent(name))
        }
        return directory
    }

    func issues(_ files: [String: String]) throws -> [IntentValidationIssue] {
        let directory = try write(files)
        do {
            _ = try IntentCatalog.load(directory: directory)
            XCTFail("expected validation errors")
            return []
        } catch let error as IntentCatalogError {
            return error.issues
        }
    }

    static let valid = """
        name: greeting
        phrases:
          - hello
          - hi there
        responses:
          - Hello!
        """

    func testValidFileLoads() throws {
        let directory = try write(["greeting.yaml": Self.valid, "notes.txt": "ignored"])
        let catalog = try IntentCatalog.load(directory: directory)
        XCTAssertEqual(catalog.intents.map(\.name), ["greeting"])
        XCTAssertEqual(catalog.intents[0].phrases, ["hello", "hi there"])
        XCTAssertEqual(catalog.intents[0].context, .any)
    }

    func testUnknownKeyMissingNameAndEmptyPhrase() throws {
        let found = try issues([
            "a.yaml": """
            name: greeting
            phrases:
              - hello
              - "  ?! "
            responses:
              - Hello!
            colour: blue
            """,
            "b.yaml": """
            description: no name here
            phrases: [hi]
            responses: [Hi]
            """,
        ])
        let lines = found.map { "\(URL(fileURLWithPath: $0.file).lastPathComponent):\($0.line)" }
        XCTAssertEqual(lines, ["a.yaml:4", "a.yaml:7", "b.yaml:1"], "\(found)")
        XCTAssertTrue(found[0].message.contains("empty phrase"))
        XCTAssertTrue(found[1].message.contains("unknown key 'colour'"))
        XCTAssertTrue(found[2].message.contains("missing 'name'"))
        XCTAssertTrue(found[0].description.hasSuffix("a.yaml:4: empty phrase"))
    }

    func testDuplicateNamesUnknownActionAndUnknownSlot() throws {
        let found = try issues([
            "a.yaml": Self.valid,
            "b.yaml": """
            # the same name again
            name: greeting
            phrases: [hey]
            responses: [Hey]
            """,
            "c.yaml": """
            name: time_left
            action: time_remaining
            phrases:
              - how much time is left
            responses:
              - "You have {time_left} left"
              - "Question {question}: {minutes}"
            """,
        ])
        XCTAssertEqual(found.map(\.line), [2, 2, 6, 7, 7], "\(found)")
        XCTAssertTrue(found[0].message.contains("duplicate intent name 'greeting'"))
        XCTAssertTrue(found[0].message.contains("a.yaml:1"))
        XCTAssertTrue(found[1].message.contains("unknown action 'time_remaining'"))
        // The action is unknown, so no slot is available.
        XCTAssertTrue(found[2].message.contains("'{time_left}'"))
        XCTAssertTrue(found[3].message.contains("'{question}'"))
        XCTAssertTrue(found[4].message.contains("'{minutes}'"))
    }

    func testSlotsProvidedByEntitiesAndActions() throws {
        let directory = try write([
            "t.yaml": """
            name: time_left
            action: time_left
            entities:
              - name: question
                type: number
              - name: part
                values:
                  - value: reading
                    synonyms: [part a]
                  - listening
            phrases:
              - time left for question {question}
            responses:
              - "{time_left} left for {part} question {question}, ends {ends_at}"
            """
        ])
        let catalog = try IntentCatalog.load(directory: directory)
        let intent = try XCTUnwrap(catalog.intent(named: "time_left"))
        XCTAssertEqual(intent.action, .timeLeft)
        XCTAssertEqual(intent.entities.map(\.name), ["question", "part"])
        XCTAssertEqual(
            intent.entities[1].kind,
            .list([EntityListValue(value: "reading", synonyms: ["part a"]), EntityListValue(value: "listening")]))
    }

    func testEntityErrorsAndPhrasePlaceholders() throws {
        let found = try issues([
            "e.yaml": """
            name: x
            entities:
              - name: when
                type: time
              - name: part
                type: list
              - name: q
                type: number
                colour: red
            phrases:
              - at {when}
              - for {nothing}
            responses: [ok]
            context: during_exam
            """
        ])
        XCTAssertEqual(found.map(\.line), [4, 5, 9, 11, 12, 14], "\(found)")
        XCTAssertTrue(found[0].message.contains("unknown entity type 'time'"))
        XCTAssertTrue(found[1].message.contains("needs a non-empty 'values'"))
        XCTAssertTrue(found[2].message.contains("unknown entity key 'colour'"))
        XCTAssertTrue(found[3].message.contains("'{when}'"))
        XCTAssertTrue(found[4].message.contains("'{nothing}'"))
        XCTAssertTrue(found[5].message.contains("unknown context 'during_exam'"))
    }

    func testYAMLSyntaxErrorsCarryTheirLine() throws {
        let found = try issues([
            "s.yaml": """
            name: greeting
            phrases:
              - hello
              - "unterminated
            responses: [Hi]
            """,
            "t.yaml": "- just\n- a list\n",
            "u.yaml": "",
        ])
        XCTAssertEqual(found.count, 3, "\(found)")
        XCTAssertEqual(found[0].file.hasSuffix("s.yaml"), true)
        XCTAssertGreaterThanOrEqual(found[0].line, 4)
        XCTAssertTrue(found[0].message.hasPrefix("YAML syntax"))
        XCTAssertEqual(found[1].line, 1)
        XCTAssertTrue(found[1].message.contains("expected a mapping"))
        XCTAssertTrue(found[2].message.contains("empty file"))
    }

    func testRespondChoosesVariantsAndFillsSlots() throws {
        let catalog = try IntentCatalog(intents: [
            Intent(
                name: "time_left", phrases: ["time left"],
                entities: [EntityDefinition(name: "question", kind: .number)],
                responses: ["You have {time_left} left.", "Question {question}: {time_left} left."],
                action: .timeLeft)
        ])
        let plain = IntentMatch(intent: "time_left", confidence: 0.9, isOutOfScope: false, action: .timeLeft)
        XCTAssertEqual(
            catalog.respond(to: plain, slots: ["time_left": "5 minutes"], variantSeed: 1), "You have 5 minutes left.")
        var withQuestion = plain
        withQuestion.entities["question"] = .number(3)
        XCTAssertEqual(
            catalog.respond(to: withQuestion, slots: ["time_left": "5 minutes"], variantSeed: 9),
            "Question 3: 5 minutes left.")
        XCTAssertEqual(catalog.respond(to: plain, slots: [:]), "You have unknown left.")
        XCTAssertEqual(
            catalog.respond(to: IntentMatch(intent: nil, confidence: 0.1, isOutOfScope: true)),
            IntentCatalog.fallbackResponse)
        XCTAssertEqual(IntentCatalog.slots(in: "a {b} {c_d} {not a slot} {}"), ["b", "c_d"])
        XCTAssertEqual(IntentCatalog.render("{a} {b", values: ["a": "x"]), "x {b")
    }
}
