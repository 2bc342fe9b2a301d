import XCTest

@testable import ExamHubIntents

final class TextNormalizerTests: XCTestCase {
    let normalizer = TextNormalizer()

    func testLowercasesAndStripsPunctuation() {
        XCTAssertEqual(normalizer.tokens("How much TIME is left?!"), ["how", "much", "time", "is", "left"])
        XCTAssertEqual(normalizer.tokens("  hello,world...  "), ["hello", "world"])
    }

    func testExpandsContractions() {
        XCTAssertEqual(normalizer.tokens("What's the answer"), ["what", "is", "the", "answer"])
        XCTAssertEqual(normalizer.tokens("I can't, I won't"), ["i", "can", "not", "i", "will", "not"])
        XCTAssertEqual(normalizer.tokens("I’m sure it didn’t save"), ["i", "am", "sure", "it", "did", "not", "save"])
        XCTAssertEqual(normalizer.tokens("they're here, we'll see"), ["they", "are", "here", "we", "will", "see"])
        XCTAssertEqual(normalizer.tokens("the exam's rules"), ["the", "exam", "rules"])
    }

    func testFoldsDiacriticsAndWidth() {
        XCTAssertEqual(normalizer.tokens("Café RÉSUMÉ naïve"), ["cafe", "resume", "naive"])
        XCTAssertEqual(normalizer.tokens("Ｈｅｌｌｏ"), ["hello"])
    }

    func testStemming() {
        XCTAssertEqual(TextNormalizer.stem("answers"), "answer")
        XCTAssertEqual(TextNormalizer.stem("saved"), "sav")
        XCTAssertEqual(TextNormalizer.stem("saving"), "sav")
        XCTAssertEqual(TextNormalizer.stem("entries"), "entry")
        XCTAssertEqual(TextNormalizer.stem("class"), "class")
        XCTAssertEqual(TextNormalizer.stem("is"), "is")
        XCTAssertEqual(TextNormalizer.stem("2026"), "2026")
    }

    func testBadInputNeverFails() {
        XCTAssertEqual(normalizer.tokens(""), [])
        XCTAssertEqual(normalizer.tokens("?!… 🙂🙂"), [])
        XCTAssertEqual(normalizer.tokens("'''"), [])
        XCTAssertEqual(normalizer.tokens("e\u{301}"), ["e"])
        let huge = String(repeating: "time left ", count: 100_000)
        XCTAssertLessThanOrEqual(normalizer.tokens(huge).count, 2_000)
        XCTAssertEqual(normalizer.tokens("\u{0}\u{FEFF}hi\u{202E}there"), ["hi", "there"])
        XCTAssertEqual(normalizer.tokens("日本語のテスト").isEmpty, false)
    }
}
