/// An exam as an admin defines it (PROTOCOL.md section 6), validated from JSON with clear errors.
public struct ExamDefinition: Sendable, Hashable {
    /// A question's answer type.
    public enum QuestionType: String, Sendable, Hashable, CaseIterable {
        case single, multi, text, number
    }

    /// One question.
    public struct Question: Sendable, Hashable {
        public var id: String
        public var type: QuestionType
        public var prompt: String
        public var options: [String]?

        public init(id: String, type: QuestionType, prompt: String, options: [String]? = nil) {
            self.id = id
            self.type = type
            self.prompt = prompt
            self.options = options
        }
    }

    public var id: String
    public var title: String
    public var durationSec: Int
    public var graceSec: Int
    public var questions: [Question]
    /// The proctoring profile name (`default` when absent).
    public var proctoringProfile: String
    /// The exam's changes to its profile (`proctoring.overrides`: rules added or replaced, rules disabled, risk
    /// model), checked against the profile by the proctoring module when the exam is defined.
    public var proctoringOverrides: JSONValue?

    /// Limits on definitions.
    public static let maxQuestions = 500
    public static let maxDurationSec = 7 * 24 * 3600
    public static let maxGraceSec = 3600
    public static let maxOptions = 100

    public init(
        id: String, title: String, durationSec: Int, graceSec: Int = 0, questions: [Question],
        proctoringProfile: String = "default", proctoringOverrides: JSONValue? = nil
    ) {
        self.id = id
        self.title = title
        self.durationSec = durationSec
        self.graceSec = graceSec
        self.questions = questions
        self.proctoringProfile = proctoringProfile
        self.proctoringOverrides = proctoringOverrides
    }

    /// Reads and validates a definition; every error names the field (`questions[3].options`).
    public init(json: JSONValue) throws(HubError) {
        guard case .object(let o) = json else { throw .badRequest("an exam definition must be a JSON object") }
        func string(_ key: String, in obj: [String: JSONValue], path: String, max: Int) throws(HubError) -> String {
            guard case .string(let s)? = obj[key] else { throw .badRequest("\(path)\(key) must be a string") }
            guard !s.isEmpty else { throw .badRequest("\(path)\(key) must not be empty") }
            guard s.utf8.count <= max else { throw .badRequest("\(path)\(key) is longer than \(max) bytes") }
            return s
        }
        func int(_ key: String, range: ClosedRange<Int>, default def: Int? = nil) throws(HubError) -> Int {
            guard let v = o[key] else {
                if let def { return def }
                throw .badRequest("\(key) is required")
            }
            guard let i = v.intValue, let n = Int(exactly: i), range.contains(n) else {
                throw .badRequest("\(key) must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        id = try string("id", in: o, path: "", max: 128)
        guard ChannelName.isValidID(id) else { throw .badRequest("id must be 1-128 of [A-Za-z0-9_.-]") }
        title = try string("title", in: o, path: "", max: 512)
        durationSec = try int("durationSec", range: 1...Self.maxDurationSec)
        graceSec = try int("graceSec", range: 0...Self.maxGraceSec, default: 0)
        guard case .array(let rawQuestions)? = o["questions"] else { throw .badRequest("questions must be an array") }
        guard !rawQuestions.isEmpty else { throw .badRequest("questions must not be empty") }
        guard rawQuestions.count <= Self.maxQuestions else {
            throw .badRequest("at most \(Self.maxQuestions) questions")
        }
        var seen = Set<String>()
        var questions: [Question] = []
        for (i, raw) in rawQuestions.enumerated() {
            let path = "questions[\(i)]."
            guard case .object(let q) = raw else { throw .badRequest("questions[\(i)] must be an object") }
            let qid = try string("id", in: q, path: path, max: 128)
            guard ChannelName.isValidID(qid) else { throw .badRequest("\(path)id must be 1-128 of [A-Za-z0-9_.-]") }
            guard seen.insert(qid).inserted else { throw .badRequest("\(path)id \"\(qid)\" is used twice") }
            let typeName = try string("type", in: q, path: path, max: 16)
            guard let type = QuestionType(rawValue: typeName) else {
                throw .badRequest("\(path)type must be one of single, multi, text, number")
            }
            let prompt = try string("prompt", in: q, path: path, max: 65_536)
            var options: [String]?
            switch type {
            case .single, .multi:
                guard case .array(let rawOptions)? = q["options"], !rawOptions.isEmpty else {
                    throw .badRequest("\(path)options must be a non-empty array for \(typeName) questions")
                }
                guard rawOptions.count <= Self.maxOptions else {
                    throw .badRequest("\(path)options: at most \(Self.maxOptions)")
                }
                var list: [String] = []
                for option in rawOptions {
                    guard case .string(let s) = option, !s.isEmpty, s.utf8.count <= 1024 else {
                        throw .badRequest("\(path)options must be non-empty strings of at most 1024 bytes")
                    }
                    guard !list.contains(s) else { throw .badRequest("\(path)options: \"\(s.prefix(64))\" is listed twice") }
                    list.append(s)
                }
                options = list
            case .text, .number:
                if let extra = q["options"], extra != .null {
                    throw .badRequest("\(path)options are only for single and multi questions")
                }
            }
            questions.append(Question(id: qid, type: type, prompt: prompt, options: options))
        }
        self.questions = questions
        if let p = o["proctoring"], p != .null {
            guard case .object(let po) = p else { throw .badRequest("proctoring must be an object") }
            for key in po.keys.sorted() where key != "profile" && key != "overrides" {
                throw .badRequest("proctoring.\(key.prefix(64)) is not a known field (expected profile, overrides)")
            }
            proctoringProfile = po["profile"] == nil ? "default" : try string("profile", in: po, path: "proctoring.", max: 64)
            if let overrides = po["overrides"], overrides != .null {
                guard case .object = overrides else { throw .badRequest("proctoring.overrides must be an object") }
                proctoringOverrides = overrides
            } else {
                proctoringOverrides = nil
            }
        } else {
            proctoringProfile = "default"
            proctoringOverrides = nil
        }
    }

    /// The definition as JSON, in the shape of PROTOCOL.md section 6.
    public var json: JSONValue {
        .object([
            "id": .string(id), "title": .string(title), "durationSec": .int(Int64(durationSec)),
            "graceSec": .int(Int64(graceSec)),
            "questions": .array(questions.map(\.json)),
            "proctoring": .object(
                proctoringOverrides.map { ["profile": .string(proctoringProfile), "overrides": $0] }
                    ?? ["profile": .string(proctoringProfile)]),
        ])
    }

    /// The question with `id`, if any.
    public func question(_ id: String) -> Question? {
        questions.first { $0.id == id }
    }
}

extension ExamDefinition.Question {
    public var json: JSONValue {
        var o: [String: JSONValue] = ["id": .string(id), "type": .string(type.rawValue), "prompt": .string(prompt)]
        if let options { o["options"] = .array(options.map(JSONValue.string)) }
        return .object(o)
    }
}
