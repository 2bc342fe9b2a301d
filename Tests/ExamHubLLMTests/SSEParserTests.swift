import XCTest
@testable import ExamHubLLM
