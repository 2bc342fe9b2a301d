/// One intent of the assistant, as read from an `Intents/*.yaml` file: what users say (phrases), what the assistant
/// answers (responses with `{slot}`s), the entities to pull out of the text, where it applies and the built-in
/// action that fills its answer from live state.
public struct Intent: Sendable, Hashable {
    /// Unique name (`time_left`); the label the matcher predicts.
    public var name: String
    /// A line for editors; not shown to users.
    public var description: String?
    /// Training phrases. `{entity}` placeholders are expanded with example values for training.
    public var phrases: [String]
    /// The entities filled from the user's text.
    public var entities: [EntityDefinition]
    /// Response variants; one is chosen per reply (see ``IntentCatalog/respond(to:slots:variantSeed:)``).
    public var responses: [String]
    /// Where the intent applies.
    public var context: ContextRequirement
    /// The answer given when ``context`` is not met; nil means the catalog's default.
    public var unavailableResponse: String?
    /// The built-in action whose slots the hub fills from live state, if any.
    public var action: BuiltInAction?
    /// The file it came from (for messages), empty when built in code.
    public var file: String

    /// Creates an intent.
    public init(
        name: String, description: String? = nil, phrases: [String], entities: [EntityDefinition] = [],
        responses: [String], context: ContextRequirement = .any, unavailableResponse: String? = nil,
        action: BuiltInAction? = nil, file: String = ""
    ) {
        self.name = name
        self.description = description
        self.phrases = phrases
        self.entities = entities
        self.responses = responses
        self.context = context
        self.unavailableResponse = unavailableResponse
        self.action = action
        self.file = file
    }

    /// The slots this intent's responses may use: its entities' names and its action's slots.
    public var availableSlots: Set<String> {
        Set(entities.map(\.name)).union(action?.providedSlots ?? [])
    }
}

/// Where an intent applies: during an exam attempt, outside one, or anywhere.
public enum ContextRequirement: String, Sendable, Hashable, CaseIterable {
    /// Anywhere (the default).
    case any
    /// Only while the user is in an exam attempt (`context: in_attempt`).
    case inAttempt = "in_attempt"
    /// Only outside an attempt (`context: not_in_attempt`).
    case notInAttempt = "not_in_attempt"

    /// Whether the requirement holds for a user who is (or is not) in an attempt.
    public func isSatisfied(inAttempt: Bool) -> Bool {
        switch self {
        case .any: return true
        case .inAttempt: return inAttempt
        case .notInAttempt: return !inAttempt
        }
    }
}

/// The built-in actions an intent may name (`action:`). The matcher only reports the action; the hub runs it and
/// passes the slots it provides to ``IntentCatalog/respond(to:slots:variantSeed:)``.
public enum BuiltInAction: String, Sendable, Hashable, CaseIterable {
    /// Time left in the current attempt. Slots: `time_left` ("23 minutes"), `ends_at` ("14:30 UTC").
    case timeLeft = "time_left"
    /// Autosave state of the current attempt. Slots: `save_status` ("all 12 answers are saved"),
    /// `last_saved` ("8 seconds ago").
    case saveStatus = "save_status"
    /// The rules of the exam. Slots: `exam_rules` (the exam's rules text).
    case examRules = "exam_rules"
    /// Records a problem report and notifies the proctors of the exam. Slots: `report_id`.
    case reportProblem = "report_problem"
    /// Asks for a human (a proctor of the exam, or support outside an attempt); notifies the proctors.
    /// Slots: `proctor_status` ("a proctor has been notified").
    case humanHelp = "human_help"

    /// The slots the hub fills for this action.
    public var providedSlots: Set<String> {
        switch self {
        case .timeLeft: return ["time_left", "ends_at"]
        case .saveStatus: return ["save_status", "last_saved"]
        case .examRules: return ["exam_rules"]
        case .reportProblem: return ["report_id"]
        case .humanHelp: return ["proctor_status"]
        }
    }

    /// Whether the hub must notify the proctors of the exam when it runs this action.
    public var notifiesProctors: Bool {
        switch self {
        case .reportProblem, .humanHelp: return true
        case .timeLeft, .saveStatus, .examRules: return false
        }
    }
}

/// An entity an intent pulls out of the user's text.
public struct EntityDefinition: Sendable, Hashable {
    /// The slot name (`question`).
    public var name: String
    /// What it matches.
    public var kind: EntityKind

    /// Creates an entity definition.
    public init(name: String, kind: EntityKind) {
        self.name = name
        self.kind = kind
    }
}

/// The kinds of entity: a list of values with synonyms, or a built-in.
public enum EntityKind: Sendable, Hashable {
    /// One of these values, each with synonyms (matched on normalized words, longest first).
    case list([EntityListValue])
    /// A number: digits ("3", "12th") or words ("three", "third").
    case number
    /// A duration: "10 minutes", "an hour", "1 hour 30 minutes".
    case duration
    /// A date: "today", "tomorrow", "next monday", "2026-12-01", "december 1".
    case date

    /// The name used in YAML (`type:`).
    public var typeName: String {
        switch self {
        case .list: return "list"
        case .number: return "number"
        case .duration: return "duration"
        case .date: return "date"
        }
    }
}

/// One value of a list entity and the other ways users say it.
public struct EntityListValue: Sendable, Hashable {
    /// The canonical value reported in matches and used in responses.
    public var value: String
    /// Synonyms (the value itself always matches too).
    public var synonyms: [String]

    /// Creates a list value.
    public init(value: String, synonyms: [String] = []) {
        self.value = value
        self.synonyms = synonyms
    }
}
