import XCTest

@testable import ExamHubIntents

final class EntityExtractorTests: XCTestCase {
    let normalizer = TextNormalizer()
    let today = CalendarDate(year: 2026, month: 11, day: 23)!  // a Monday

    func builtIns(_ text: String) -> (numbers: [EntityValue], durations: [EntityValue], dates: [EntityValue]) {
        let found = EntityExtractor.builtIns(in: normalizer.tokens(text), today: today)
        return (found.numbers.map(\.value), found.durations.map(\.value), found.dates.map(\.value))
    }

    func testNumbers() {
        XCTAssertEqual(builtIns("and for question 3?").numbers, [.number(3)])
        XCTAssertEqual(builtIns("question twelve and the 4th one").numbers, [.number(12), .number(4)])
        XCTAssertEqual(builtIns("the third question").numbers, [.number(3)])
        XCTAssertEqual(builtIns("no numbers here").numbers, [])
        XCTAssertEqual(EntityValue.number(3).description, "3")
    }

    func testDurations() {
        XCTAssertEqual(builtIns("can I leave for 10 minutes").durations, [.duration(seconds: 600)])
        XCTAssertEqual(builtIns("an hour").durations, [.duration(seconds: 3_600)])
        XCTAssertEqual(builtIns("half an hour").durations, [.duration(seconds: 1_800)])
        XCTAssertEqual(builtIns("1 hour and 30 mins").durations, [.duration(seconds: 5_400)])
        XCTAssertEqual(builtIns("five minutes, question 2").durations, [.duration(seconds: 300)])
        // The number inside a duration is not also a number.
        XCTAssertEqual(builtIns("five minutes, question 2").numbers, [.number(2)])
        XCTAssertEqual(EntityValue.duration(seconds: 5_400).description, "1 hour 30 minutes")
    }

    func testDates() {
        XCTAssertEqual(builtIns("is my exam tomorrow").dates, [.date(CalendarDate(year: 2026, month: 11, day: 24)!)])
        XCTAssertEqual(builtIns("today").dates, [.date(today)])
        XCTAssertEqual(builtIns("on 2026-12-01 please").dates, [.date(CalendarDate(year: 2026, month: 12, day: 1)!)])
        XCTAssertEqual(builtIns("on 2026-12-01 please").numbers, [])
        XCTAssertEqual(builtIns("next friday").dates, [.date(CalendarDate(year: 2026, month: 11, day: 27)!)])
        XCTAssertEqual(builtIns("monday").dates, [.date(CalendarDate(year: 2026, month: 11, day: 30)!)])
        XCTAssertEqual(builtIns("december 1st").dates, [.date(CalendarDate(year: 2026, month: 12, day: 1)!)])
        XCTAssertEqual(builtIns("the 3rd of january").dates, [.date(CalendarDate(year: 2027, month: 1, day: 3)!)])
        XCTAssertEqual(builtIns("2026-02-30").dates, [])
        XCTAssertEqual(EntityValue.date(today).description, "2026-11-23")
    }

    func testCalendarArithmetic() {
        XCTAssertEqual(CalendarDate(year: 1970, month: 1, day: 1)?.daysSinceEpoch, 0)
        XCTAssertEqual(today.weekday, 0)
        XCTAssertEqual(
            CalendarDate(year: 2024, month: 2, day: 28)?.adding(days: 1), CalendarDate(year: 2024, month: 2, day: 29))
        XCTAssertNil(CalendarDate(year: 2025, month: 2, day: 29))
        XCTAssertEqual(
            CalendarDate(Date(timeIntervalSince1970: 86_400 * 365)), CalendarDate(year: 1971, month: 1, day: 1))
    }

    func testListEntitiesWithSynonyms() {
        let values = [
            EntityListValue(value: "reading", synonyms: ["reading section", "part a"]),
            EntityListValue(value: "listening", synonyms: ["audio part", "part b"]),
        ]
        func mentions(_ text: String) -> [EntityValue] {
            EntityExtractor.listMentions(of: values, in: normalizer.tokens(text), normalizer: normalizer).map(\.value)
        }
        XCTAssertEqual(mentions("time left in Part B?"), [.list("listening")])
        XCTAssertEqual(mentions("the reading section and the audio part"), [.list("reading"), .list("listening")])
        XCTAssertEqual(mentions("Reading"), [.list("reading")])
        XCTAssertEqual(mentions("nothing"), [])
    }

    func testMatcherFillsDeclaredEntities() throws {
        let catalog = try IntentCatalog(intents: [
            Intent(
                name: "section_time",
                phrases: ["how long for the {section}", "time for {section}", "time left in section"],
                entities: [
                    EntityDefinition(
                        name: "section", kind: .list([EntityListValue(value: "reading", synonyms: ["part a"])])),
                    EntityDefinition(name: "extra", kind: .duration),
                ],
                responses: ["{section}"]),
            Intent(name: "greeting", phrases: ["hello", "hi there", "good morning"], responses: ["Hi"]),
        ])
        let matcher = IntentMatcher(catalog: catalog, configuration: MatcherConfiguration(outOfScopeThreshold: 0))
        let match = matcher.match("how long for part a, I need 5 more minutes")
        XCTAssertEqual(match.intent, "section_time")
        XCTAssertEqual(match.entities["section"], .list("reading"))
        XCTAssertEqual(match.entities["extra"], .duration(seconds: 300))
        // Placeholder phrases were expanded with the entity's values for training.
        XCTAssertTrue(
            IntentMatcher.expand("time for {section}", entities: catalog.intents[0].entities).contains(
                "time for reading"))
    }
}
