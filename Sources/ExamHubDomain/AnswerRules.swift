/// What an answer may be, per question type, and how versions advance (PROTOCOL.md guarantees 5.2 and 5.3).
public enum AnswerRules {
    /// The largest answer value, as compact JSON, in bytes.
    public static let maxValueBytes = 65_536

    /// Checks `value` against `question`; `null` clears an answer and is always allowed.
    public static func validate(_ value: JSONValue, for question: ExamDefinition.Question, encodedBytes: Int)
        throws(HubError)
    {
        guard encodedBytes <= maxValueBytes else {
            throw HubError(.tooLarge, "an answer may be at most \(maxValueBytes) bytes")
        }
        if value == .null { return }
        switch question.type {
        case .single:
            guard case .string(let s) = value else { throw .badRequest("a single-choice answer is one option string") }
            guard question.options?.contains(s) == true else { throw .badRequest("\"\(s.prefix(64))\" is not an option") }
        case .multi:
            guard case .array(let items) = value else { throw .badRequest("a multi-choice answer is an array of options") }
            var seen = Set<String>()
            for item in items {
                guard case .string(let s) = item else { throw .badRequest("a multi-choice answer is an array of strings") }
                guard question.options?.contains(s) == true else { throw .badRequest("\"\(s.prefix(64))\" is not an option") }
                guard seen.insert(s).inserted else { throw .badRequest("\"\(s.prefix(64))\" is chosen twice") }
            }
        case .text:
            guard case .string = value else { throw .badRequest("a text answer is a string") }
        case .number:
            switch value {
            case .int: break
            case .double(let d) where d.isFinite: break
            default: throw .badRequest("a number answer is a finite number")
            }
        }
    }

    /// The outcome of applying a save to the current answer.
    public enum Decision: Equatable, Sendable {
        /// Write the value with this version.
        case write(version: Int64)
        /// The base version is stale: refuse with the current version.
        case conflict(currentVersion: Int64)
    }

    /// Decides a save given the current version (0 when unanswered) and the client's optional base version.
    public static func decide(currentVersion: Int64, baseVersion: Int64?) -> Decision {
        if let baseVersion, baseVersion != currentVersion { return .conflict(currentVersion: currentVersion) }
        return .write(version: currentVersion + 1)
    }
}
