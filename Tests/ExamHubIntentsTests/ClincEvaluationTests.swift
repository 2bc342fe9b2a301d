import XCTest

@testable import ExamHubIntents

/// A small CLINC150 run in debug (10 intents); the full figure is measured in release with `examhub intents eval`.
final class ClincEvaluationTests: XCTestCase {
    func testSubsetOfClinc150() throws {
        let path = TestPaths.clinc.path
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("CLINC150 not found at \(path) (expected ../shared/data/intents from the package root)")
            return
        }
        let dataset = try ClincDataset.load(path: path).restricted(toLabels: 10)
        XCTAssertEqual(Set(dataset.split("train").map(\.label)).count, 10)
        var configuration = MatcherConfiguration.largeDataset
        configuration.training.epochs = 5
        let report = IntentEvaluation(configuration: configuration).run(dataset)
        let logistic = IntentEvaluation(configuration: MatcherConfiguration()).run(dataset)
        XCTAssertGreaterThan(logistic.inScopeAccuracyNoThreshold, 0.9)
        XCTAssertGreaterThan(report.inScopeAccuracyNoThreshold, 0.9)
        XCTAssertGreaterThan(report.inScopeAccuracy, 0.8)
        let recall = try XCTUnwrap(report.oosRecall)
        XCTAssertGreaterThan(recall, 0.5)
        XCTAssertEqual(report.classes, 11)
        XCTAssertNotNil(report.threshold)
    }

    func testDatasetWithoutOutOfScopeSplitsReportsAccuracyOnly() throws {
        let json = """
            {"train": [["hello there", "greet"], ["hi", "greet"], ["good morning", "greet"],
                       ["bye now", "bye"], ["goodbye", "bye"], ["see you later", "bye"]],
             "test": [["hello", "greet"], ["bye", "bye"]]}
            """
        let dataset = try ClincDataset.parse(Data(json.utf8))
        let report = IntentEvaluation().run(dataset)
        XCTAssertNil(report.oosRecall)
        XCTAssertNil(report.threshold)
        XCTAssertEqual(report.inScopeAccuracy, 1)
        XCTAssertThrowsError(try ClincDataset.parse(Data("[1, 2]".utf8)))
        XCTAssertThrowsError(try ClincDataset.parse(Data(#"{"train": [["x"]], "test": []}"#.utf8)))
    }
}
