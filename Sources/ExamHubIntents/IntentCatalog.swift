/// The assistant's validated intents (normally loaded from `Intents/*.yaml` with ``load(directory:)``) and the
/// rendering of responses.
///
/// ```swift
/// let catalog = try IntentCatalog.load(directory: URL(fileURLWithPath: "Intents"))
/// let matcher = IntentMatcher(catalog: catalog)
/// var dialog = DialogContext(inAttempt: true)
/// let match = matcher.match("how long do I have left?", context: dialog)
/// dialog.record(match)
/// // The hub runs match.action (here .timeLeft) and passes its slots:
/// let text = catalog.respond(to: match, slots: ["time_left": "23 minutes"], variantSeed: 7)
/// ```
public struct IntentCatalog: Sendable {
    /// The intents, in file-name order.
    public let intents: [Intent]
    private let index: [String: Int]

    /// The answer when nothing matched (the hub normally hands such messages to the LLM gateway instead).
    public static let fallbackResponse =
        "Sorry, I didn't understand that. You can ask about the time left, saving, the exam rules, "
        + "or ask for a proctor."
    /// The answer when an intent's context requirement is not met and it has no `unavailable:` text.
    public static let defaultUnavailableResponse = "That isn't available right now."

    /// Creates a catalog from intents built in code, validating them like files are validated.
    /// - Throws: ``IntentCatalogError`` listing every problem.
    public init(intents: [Intent]) throws {
        var issues: [IntentValidationIssue] = []
        var seen: [String: Int] = [:]
        for (position, intent) in intents.enumerated() {
            if intent.name.isEmpty {
                issues.append(.init(file: intent.file, line: 0, message: "intent has no name"))
            } else if seen[intent.name] != nil {
                issues.append(.init(file: intent.file, line: 0, message: "duplicate intent name '\(intent.name)'"))
            } else {
                seen[intent.name] = position
            }
            if intent.phrases.isEmpty || intent.phrases.contains(where: { TextNormalizer().tokens($0).isEmpty }) {
                issues.append(.init(file: intent.file, line: 0, message: "intent '\(intent.name)' has an empty phrase"))
            }
            if intent.responses.isEmpty {
                issues.append(.init(file: intent.file, line: 0, message: "intent '\(intent.name)' has no responses"))
            }
            for response in intent.responses {
                for slot in Self.slots(in: response) where !intent.availableSlots.contains(slot) {
                    issues.append(.init(file: intent.file, line: 0, message: "unknown slot '{\(slot)}' in a response"))
                }
            }
        }
        guard issues.isEmpty else { throw IntentCatalogError(issues: issues) }
        self.intents = intents
        self.index = seen
    }

    /// The intent named `name`.
    public func intent(named name: String) -> Intent? {
        index[name].map { intents[$0] }
    }

    /// The reply to `match`: the matched intent's response with its slots filled from the match's entities and from
    /// `slots` (the values of the intent's built-in action, which win over entities of the same name).
    ///
    /// A variant is chosen by `variantSeed` among those whose slots are all available and that use the most of the
    /// match's entities; when no variant is complete, among those missing the fewest slots, rendered as "unknown".
    /// An out-of-scope match gets ``fallbackResponse``; an intent whose context requirement is unmet gets its
    /// `unavailable:` text.
    public func respond(to match: IntentMatch, slots: [String: String] = [:], variantSeed: UInt64 = 0) -> String {
        guard !match.isOutOfScope, let name = match.intent, let intent = intent(named: name) else {
            return Self.fallbackResponse
        }
        if !match.contextSatisfied {
            return intent.unavailableResponse ?? Self.defaultUnavailableResponse
        }
        var values: [String: String] = [:]
        for (name, value) in match.entities { values[name] = value.description }
        for (name, value) in slots { values[name] = value }
        let complete = intent.responses.filter { Self.slots(in: $0).allSatisfy { values[$0] != nil } }
        // Prefer the variants that mention what the user asked about (the most entity slots).
        func entitySlots(_ template: String) -> Int {
            Self.slots(in: template).filter { match.entities[$0] != nil }.count
        }
        let most = complete.map(entitySlots).max() ?? 0
        func missing(_ template: String) -> Int { Self.slots(in: template).filter { values[$0] == nil }.count }
        let fewest = intent.responses.map(missing).min() ?? 0
        let candidates =
            complete.isEmpty
            ? intent.responses.filter { missing($0) == fewest } : complete.filter { entitySlots($0) == most }
        guard !candidates.isEmpty else { return Self.fallbackResponse }
        var random = SplitMix64(seed: variantSeed)
        let template = candidates[Int(random.next() % UInt64(candidates.count))]
        return Self.render(template, values: values)
    }

    /// The `{slot}` names used in a template, in order.
    public static func slots(in template: String) -> [String] {
        var names: [String] = []
        var current: String?
        for character in template {
            if character == "{" {
                current = ""
            } else if character == "}" {
                if let name = current, !name.isEmpty { names.append(name) }
                current = nil
            } else if current != nil {
                if character.isLetter || character.isNumber || character == "_" {
                    current?.append(character)
                } else {
                    current = nil
                }
            }
        }
        return names
    }

    /// `template` with each `{slot}` replaced by its value ("unknown" when missing).
    static func render(_ template: String, values: [String: String]) -> String {
        var output = ""
        var pending: String?
        for character in template {
            if character == "{" {
                if let open = pending { output += "{" + open }
                pending = ""
            } else if character == "}", let name = pending {
                output += name.isEmpty ? "{}" : (values[name] ?? "unknown")
                pending = nil
            } else if pending != nil {
                if character.isLetter || character.isNumber || character == "_" {
                    pending?.append(character)
                } else {
                    output += "{" + (pending ?? "") + String(character)
                    pending = nil
                }
            } else {
                output.append(character)
            }
        }
        if let open = pending { output += "{" + open }
        return output
    }
}

/// One problem found while validating intent files, with its place: `Intents/time_left.yaml:12: message`.
public struct IntentValidationIssue: Sendable, Hashable, CustomStringConvertible {
    /// The file, as given to the loader (relative to the working directory when loaded from a relative path).
    public var file: String
    /// 1-based line; 0 when unknown (intents built in code).
    public var line: Int
    /// What is wrong.
    public var message: String

    /// Creates an issue.
    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// `file:line: message`.
    public var description: String { "\(file):\(line): \(message)" }
}

/// The intent files are invalid: every issue found, in file and line order.
public struct IntentCatalogError: Error, Sendable, CustomStringConvertible {
    /// The problems, each with file and line.
    public var issues: [IntentValidationIssue]

    /// Creates an error.
    public init(issues: [IntentValidationIssue]) { self.issues = issues }

    /// One `file:line: message` per line.
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}
