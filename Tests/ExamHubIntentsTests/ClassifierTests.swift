import XCTest

@testable import ExamHubIntents

final class ClassifierTests: XCTestCase {
    static let examples: [(String, String)] = [
        ("what is the weather today", "weather"), ("will it rain tomorrow", "weather"),
        ("is it sunny outside", "weather"), ("how cold is it", "weather"), ("weather forecast please", "weather"),
        ("do I need an umbrella", "weather"), ("what's the temperature", "weather"),
        ("play some music", "music"), ("put on a song", "music"), ("play my playlist", "music"),
        ("I want to hear jazz", "music"), ("turn the music up", "music"), ("next song", "music"),
        ("skip this track", "music"),
        ("set an alarm for 7", "alarm"), ("wake me up at six", "alarm"), ("cancel my alarm", "alarm"),
        ("set alarm", "alarm"), ("alarm for tomorrow morning", "alarm"), ("turn off the alarm", "alarm"),
        ("remind me to wake up early", "alarm"),
    ]

    func trained(_ configuration: MatcherConfiguration = MatcherConfiguration()) -> IntentMatcher {
        IntentMatcher.train(
            examples: Self.examples.map(\.0), labels: Self.examples.map(\.1), configuration: configuration)
    }

    func testLearnsASmallSyntheticSet() {
        let matcher = trained()
        XCTAssertEqual(matcher.labels, ["weather", "music", "alarm"])
        for (text, label) in Self.examples {
            XCTAssertEqual(matcher.classify(text).label, label, text)
        }
        // Unseen paraphrases.
        XCTAssertEqual(matcher.match("is it going to rain").intent, "weather")
        XCTAssertEqual(matcher.match("play a song by the beatles").intent, "music")
        XCTAssertEqual(matcher.match("set an alarm at 8").intent, "alarm")
        XCTAssertGreaterThan(matcher.match("weather forecast").confidence, 0.5)
    }

    func testTrainingIsDeterministicForASeed() {
        let a = trained().classify("will it be sunny")
        let b = trained().classify("will it be sunny")
        XCTAssertEqual(a.probability, b.probability)
        XCTAssertEqual(a.label, b.label)
    }

    func testOutOfScopeRejectedByThreshold() {
        let matcher = trained(MatcherConfiguration(outOfScopeThreshold: 0.6))
        // Words and character n-grams never seen in training: the model only has its priors.
        let unrelated = matcher.match("xylophone quokka zugzwang")
        XCTAssertTrue(unrelated.isOutOfScope)
        XCTAssertNil(unrelated.intent)
        XCTAssertLessThan(unrelated.confidence, 0.6)
        XCTAssertFalse(matcher.match("play some jazz music").isOutOfScope)
        // Nothing known at all: out of scope whatever the threshold.
        XCTAssertTrue(trained(MatcherConfiguration(outOfScopeThreshold: 0)).match("").isOutOfScope)
    }

    func testOutOfScopeClass() {
        var examples = Self.examples
        examples += [
            ("what is the capital of france", "oos"), ("how tall is mount everest", "oos"),
            ("who won the football game", "oos"), ("translate hello into german", "oos"),
            ("what is the capital city of spain", "oos"), ("tell me about the roman empire", "oos"),
        ]
        let matcher = IntentMatcher.train(
            examples: examples.map(\.0), labels: examples.map(\.1),
            configuration: MatcherConfiguration(outOfScopeThreshold: 0))
        XCTAssertTrue(matcher.match("what is the capital of italy").isOutOfScope)
        XCTAssertTrue(matcher.classify("what is the capital of italy").outOfScopeClassWon)
        XCTAssertEqual(matcher.match("play some music").intent, "music")
        XCTAssertNotEqual(matcher.match("capital of germany").intent, "oos")
    }

    func testThresholdTuningBalancesAccuracyAndRecall() {
        typealias R = (label: String?, probability: Double, outOfScopeClassWon: Bool)
        let inScope: [(R, String)] = [
            ((label: "a", probability: 0.9, outOfScopeClassWon: false), "a"),
            ((label: "a", probability: 0.6, outOfScopeClassWon: false), "a"),
            ((label: "b", probability: 0.3, outOfScopeClassWon: false), "a"),
        ]
        let outOfScope: [R] = [
            (label: "a", probability: 0.4, outOfScopeClassWon: false),
            (label: "b", probability: 0.2, outOfScopeClassWon: false),
        ]
        // Any threshold in (0.4, 0.6] keeps both correct in-scope answers and rejects both out-of-scope ones.
        let threshold = IntentEvaluation.tuneThreshold(inScope: inScope, outOfScope: outOfScope)
        XCTAssertGreaterThan(threshold, 0.4)
        XCTAssertLessThanOrEqual(threshold, 0.6)
    }

    func testNoTrainingDataGivesOutOfScope() {
        let empty = IntentMatcher.train(examples: [], labels: [])
        XCTAssertTrue(empty.match("hello").isOutOfScope)
        let onlyPunctuation = IntentMatcher.train(examples: ["?!", "..."], labels: ["a", "b"])
        XCTAssertTrue(onlyPunctuation.match("hello").isOutOfScope)
        XCTAssertTrue(IntentMatcher.train(examples: ["hello"], labels: ["oos"]).match("hello").isOutOfScope)
    }

    func testBadInputAlwaysGivesAResult() {
        let matcher = trained()
        for text in [
            "", "   ", "🙂🙂🙂", String(repeating: "a", count: 1_000_000),
            String(repeating: "weather ", count: 50_000), "\u{0}\u{1}\u{2}", "ẞ Ǆ ﬃ", "\u{202E}cisum yalp",
        ] {
            let match = matcher.match(text)
            XCTAssertTrue(match.confidence.isFinite)
            XCTAssertTrue((0...1).contains(match.confidence))
        }
        XCTAssertEqual(matcher.match(String(repeating: "weather forecast ", count: 50_000)).intent, "weather")
    }
}
