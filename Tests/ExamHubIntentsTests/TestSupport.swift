import Foundation
import XCTest

@testable import ExamHubIntents

/// Paths relative to the package root (found from this file), so tests run from any working directory.
enum TestPaths {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let intents = packageRoot.appendingPathComponent("Intents")
    static let clinc = packageRoot.deletingLastPathComponent()
        .appendingPathComponent("shared/data/intents/clinc150_data_full.json")
}

/// A temporary folder removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("examhub-intents-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// The shipped catalog and a matcher trained on it, built once for all tests (both are immutable).
enum Shipped {
    static let catalog: Result<IntentCatalog, Error> = Result { try IntentCatalog.load(directory: TestPaths.intents) }
    static let matcher: IntentMatcher? = try? IntentMatcher(catalog: catalog.get())
}
