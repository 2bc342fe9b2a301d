import XCTest

@testable import ExamHubIntents

final class FeatureExtractorTests: XCTestCase {
    func testWordAndCharacterGramsCounted() {
        let words = FeatureExtractor(configuration: FeatureConfiguration(wordNGrams: 1...2, charNGrams: 0...0))
        // "time left time": unigrams time(2), left; bigrams "time left", "left time".
        let features = words.hashedCounts("time left time")
        XCTAssertEqual(features.count, 4)
        XCTAssertEqual(features.map(\.count).sorted(), [1, 1, 1, 2])

        let chars = FeatureExtractor(configuration: FeatureConfiguration(wordNGrams: 0...0, charNGrams: 3...3))
        // "<ab>" has 2 trigrams: "<ab", "ab>".
        XCTAssertEqual(chars.hashedCounts("ab").count, 2)
        // "<abc>": 3 trigrams; with 3...5: 3 + 2 + 1.
        let wide = FeatureExtractor(configuration: FeatureConfiguration(wordNGrams: 0...0, charNGrams: 3...5))
        XCTAssertEqual(wide.hashedCounts("abc").count, 6)
    }

    func testFeaturesAreNormalizedAndNumbersCollapsed() {
        let extractor = FeatureExtractor()
        XCTAssertEqual(
            extractor.hashedCounts("Question 3?").map(\.hash), extractor.hashedCounts("question 7").map(\.hash))
        XCTAssertEqual(extractor.hashedCounts("ANSWERS").map(\.hash), extractor.hashedCounts("answers").map(\.hash))
        XCTAssertTrue(extractor.hashedCounts("").isEmpty)
    }

    func testTFIDFVectorsAreL2NormalizedAndDropUnseenFeatures() {
        let extractor = FeatureExtractor()
        let texts = ["time left", "answers saved", "time remaining"]
        let space = FeatureSpace(fitting: texts.map { extractor.hashedCounts($0) }, extractor: extractor)
        let vector = space.vector("time left please")
        let norm = vector.values.reduce(0) { $0 + $1 * $1 }
        XCTAssertEqual(norm, 1, accuracy: 1e-5)
        XCTAssertEqual(vector.indices, vector.indices.sorted())
        XCTAssertEqual(space.vector("zzzz qqqq").count, 0)
        // A rarer feature weighs more: "left" (1 doc) outweighs "time" (2 docs).
        let wordsOnly = FeatureExtractor(configuration: FeatureConfiguration(wordNGrams: 1...1, charNGrams: 0...0))
        let wordSpace = FeatureSpace(fitting: texts.map { wordsOnly.hashedCounts($0) }, extractor: wordsOnly)
        let v = wordSpace.vector("time left")
        XCTAssertEqual(v.count, 2)
        XCTAssertNotEqual(v.values[0], v.values[1])
    }
}
