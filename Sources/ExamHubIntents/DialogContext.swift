import Foundation

/// What the matcher knows about the conversation so far: whether the user is in an attempt, the previous matched
/// intent and its entities. A value type; the hub keeps one per chat and calls ``record(_:)`` after each match.
///
/// A follow-up ("and for question 3?", "what about the other one") that matches nothing confidently inherits the
/// previous intent when it looks like a follow-up (starts with "and", "what about", "how about", "also", ...
/// or consists of values only) and every entity value in it fits one of the previous intent's entities.
public struct DialogContext: Sendable, Hashable {
    /// Whether the user is in an exam attempt (checked against each intent's `context:`).
    public var inAttempt: Bool
    /// The previous matched intent, if any.
    public var previousIntent: String?
    /// The previous match's entities (a follow-up keeps those it doesn't override).
    public var previousEntities: [String: EntityValue]
    /// The day relative dates ("tomorrow") are resolved against; nil means today in UTC.
    public var today: CalendarDate?

    /// Creates a context.
    public init(
        inAttempt: Bool = false, previousIntent: String? = nil, previousEntities: [String: EntityValue] = [:],
        today: CalendarDate? = nil
    ) {
        self.inAttempt = inAttempt
        self.previousIntent = previousIntent
        self.previousEntities = previousEntities
        self.today = today
    }

    /// Remembers `match` as the previous turn; an out-of-scope match forgets the previous intent.
    public mutating func record(_ match: IntentMatch) {
        if match.isOutOfScope {
            previousIntent = nil
            previousEntities = [:]
        } else {
            previousIntent = match.intent
            previousEntities = match.entities
        }
    }

    /// Word sequences that open a follow-up question.
    static let followUpCues: [[String]] = [
        ["and"], ["what", "about"], ["how", "about"], ["what", "of"], ["also"], ["same"], ["for"], ["then"],
        ["and", "what", "about"], ["the", "other"], ["other", "one"], ["ok", "and"], ["okay", "and"],
    ]

    static func looksLikeFollowUp(_ tokens: [String]) -> Bool {
        guard !tokens.isEmpty, tokens.count <= 10 else { return false }
        return followUpCues.contains { cue in tokens.count >= cue.count && Array(tokens.prefix(cue.count)) == cue }
            || tokens.contains("other") && tokens.count <= 6
    }
}
