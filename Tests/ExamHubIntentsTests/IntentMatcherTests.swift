import XCTest
@testable import ExamHubIntents
