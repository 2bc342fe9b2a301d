import Foundation
import Yams

extension IntentCatalog {
    /// Loads and validates every `*.yaml` / `*.yml` file of `directory` (one intent per file, file-name order).
    ///
    /// - Throws: ``IntentCatalogError`` with a `file:line: message` issue for every problem found (YAML syntax,
    ///   unknown keys, missing names, duplicate intent names, empty phrases, unknown actions, entity types or
    ///   contexts, response slots that no entity or action provides), or the file system's error when the
    ///   directory cannot be read.
    public static func load(directory: URL) throws -> IntentCatalog {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .sorted()
        var sources: [IntentSource] = []
        for name in names {
            let url = directory.appendingPathComponent(name)
            let data = try Data(contentsOf: url)
            let shown = directory.relativePath.isEmpty ? name : directory.relativePath + "/" + name
            guard let text = String(data: data, encoding: .utf8) else {
                throw IntentCatalogError(issues: [.init(file: shown, line: 1, message: "file is not valid UTF-8")])
            }
            sources.append(IntentSource(file: shown, text: text))
        }
        return try parse(sources)
    }

    /// Validates intent files given as text (`load(directory:)` without the file system).
    /// - Throws: ``IntentCatalogError`` listing every problem.
    public static func parse(_ sources: [IntentSource]) throws -> IntentCatalog {
        var issues: [IntentValidationIssue] = []
        var intents: [Intent] = []
        var firstSeen: [String: (file: String, line: Int)] = [:]
        for source in sources {
            var reader = IntentFileReader(file: source.file)
            if let (intent, nameLine) = reader.read(source.text) {
                if let first = firstSeen[intent.name] {
                    reader.issue(
                        nameLine,
                        "duplicate intent name '\(intent.name)' (first defined at \(first.file):\(first.line))")
                } else {
                    firstSeen[intent.name] = (source.file, nameLine)
                    if reader.issues.isEmpty { intents.append(intent) }
                }
            }
            issues += reader.issues.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }
                .map(\.element)
        }
        guard issues.isEmpty else { throw IntentCatalogError(issues: issues) }
        return try IntentCatalog(intents: intents)
    }
}

/// The text of one intent file and the name to report it under.
public struct IntentSource: Sendable, Hashable {
    /// The file name shown in issues.
    public var file: String
    /// The YAML text.
    public var text: String

    /// Creates a source.
    public init(file: String, text: String) {
        self.file = file
        self.text = text
    }
}

/// Reads one intent file through Yams' node API so every issue carries the line of the node it is about.
struct IntentFileReader {
    let file: String
    private(set) var issues: [IntentValidationIssue] = []

    init(file: String) { self.file = file }

    static let intentKeys: Set<String> = [
        "name", "description", "context", "action", "phrases", "entities", "responses", "unavailable",
    ]
    static let entityKeys: Set<String> = ["name", "type", "values"]
    static let valueKeys: Set<String> = ["value", "synonyms"]

    mutating func issue(_ line: Int, _ message: String) {
        issues.append(IntentValidationIssue(file: file, line: line, message: message))
    }

    /// The intent and the line of its name; nil when the file is too broken to say.
    mutating func read(_ text: String) -> (Intent, Int)? {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                issue(1, "empty file: expected an intent (a mapping with name, phrases, responses)")
                return nil
            }
            root = node
        } catch let error as YamlError {
            let (line, message) = Self.describe(error)
            issue(line, "YAML syntax: \(message)")
            return nil
        } catch {
            issue(1, "YAML syntax: \(error)")
            return nil
        }
        guard case .mapping(let mapping) = root else {
            issue(line(root), "expected a mapping with name, phrases, responses")
            return nil
        }
        var fields: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else {
                issue(line(key), "keys must be plain words")
                continue
            }
            if !Self.intentKeys.contains(name) {
                issue(
                    line(key),
                    "unknown key '\(name)' (expected one of: \(Self.intentKeys.sorted().joined(separator: ", ")))")
            }
            fields[name] = value
        }

        let nameNode = fields["name"]
        let nameLine = nameNode.map(line) ?? line(root)
        guard let name = nameNode.flatMap(nonEmptyString), Self.isIdentifier(name) else {
            issue(nameLine, nameNode == nil ? "missing 'name'" : "'name' must be a word like time_left")
            return nil
        }

        var intent = Intent(name: name, phrases: [], responses: [], file: file)
        intent.description = fields["description"].flatMap(nonEmptyString)

        if let node = fields["context"] {
            if let value = node.scalar?.string, let context = ContextRequirement(rawValue: value) {
                intent.context = context
            } else {
                issue(
                    line(node),
                    "unknown context '\(node.scalar?.string ?? "")' (expected any, in_attempt or not_in_attempt)")
            }
        }
        if let node = fields["action"] {
            if let value = node.scalar?.string, let action = BuiltInAction(rawValue: value) {
                intent.action = action
            } else {
                let known = BuiltInAction.allCases.map(\.rawValue).joined(separator: ", ")
                issue(line(node), "unknown action '\(node.scalar?.string ?? "")' (expected one of: \(known))")
            }
        }
        if let node = fields["unavailable"] {
            if let text = nonEmptyString(node) {
                intent.unavailableResponse = text
            } else {
                issue(line(node), "'unavailable' must be a non-empty text")
            }
        }
        if let node = fields["entities"] { intent.entities = readEntities(node) }

        let phraseLines: [(String, Int)]
        if let node = fields["phrases"] {
            phraseLines = readStrings(node, key: "phrases")
        } else {
            issue(line(root), "missing 'phrases'")
            phraseLines = []
        }
        let entityNames = Set(intent.entities.map(\.name))
        for (phrase, phraseLine) in phraseLines {
            if TextNormalizer().tokens(phrase).isEmpty {
                issue(phraseLine, "empty phrase")
            }
            for slot in IntentCatalog.slots(in: phrase) where !entityNames.contains(slot) {
                issue(phraseLine, "phrase uses '{\(slot)}' but the intent declares no such entity")
            }
        }
        intent.phrases = phraseLines.map(\.0)

        if let node = fields["responses"] {
            let responses = readStrings(node, key: "responses")
            let available = intent.availableSlots
            for (response, responseLine) in responses {
                if response.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    issue(responseLine, "empty response")
                }
                for slot in IntentCatalog.slots(in: response) where !available.contains(slot) {
                    let from = available.isEmpty ? "none" : available.sorted().joined(separator: ", ")
                    issue(
                        responseLine,
                        "response uses slot '{\(slot)}' that no entity or action provides (available: \(from))")
                }
            }
            intent.responses = responses.map(\.0)
        } else {
            issue(line(root), "missing 'responses'")
        }
        return (intent, nameLine)
    }

    // MARK: - Parts

    private mutating func readStrings(_ node: Node, key: String) -> [(String, Int)] {
        guard case .sequence(let sequence) = node else {
            issue(line(node), "'\(key)' must be a list")
            return []
        }
        if sequence.isEmpty { issue(line(node), "'\(key)' is empty") }
        var result: [(String, Int)] = []
        for item in sequence {
            guard let text = item.scalar?.string else {
                issue(line(item), "each item of '\(key)' must be a text")
                continue
            }
            result.append((text, line(item)))
        }
        return result
    }

    private mutating func readEntities(_ node: Node) -> [EntityDefinition] {
        guard case .sequence(let sequence) = node else {
            issue(line(node), "'entities' must be a list")
            return []
        }
        var result: [EntityDefinition] = []
        var names = Set<String>()
        for item in sequence {
            guard case .mapping(let mapping) = item else {
                issue(line(item), "each entity must be a mapping with name and type")
                continue
            }
            var fields: [String: Node] = [:]
            for (key, value) in mapping {
                let name = key.scalar?.string ?? ""
                if !Self.entityKeys.contains(name) {
                    issue(line(key), "unknown entity key '\(name)' (expected name, type, values)")
                }
                fields[name] = value
            }
            guard let name = fields["name"].flatMap(nonEmptyString), Self.isIdentifier(name) else {
                issue(line(fields["name"] ?? item), "entity needs a 'name' like question")
                continue
            }
            if !names.insert(name).inserted { issue(line(item), "duplicate entity '\(name)'") }
            let type = fields["type"]?.scalar?.string ?? (fields["values"] != nil ? "list" : "")
            let kind: EntityKind
            switch type {
            case "number": kind = .number
            case "duration": kind = .duration
            case "date": kind = .date
            case "list": kind = .list(readValues(fields["values"], entity: name, at: line(item)))
            default:
                issue(
                    line(fields["type"] ?? item),
                    "unknown entity type '\(type)' (expected list, number, duration, date)")
                continue
            }
            if type != "list", let values = fields["values"] {
                issue(line(values), "'values' is only for entities of type list")
            }
            result.append(EntityDefinition(name: name, kind: kind))
        }
        return result
    }

    private mutating func readValues(_ node: Node?, entity: String, at entityLine: Int) -> [EntityListValue] {
        guard let node, case .sequence(let sequence) = node, !sequence.isEmpty else {
            issue(node.map(line) ?? entityLine, "list entity '\(entity)' needs a non-empty 'values' list")
            return []
        }
        var values: [EntityListValue] = []
        for item in sequence {
            if let text = nonEmptyString(item) {
                values.append(EntityListValue(value: text))
                continue
            }
            guard case .mapping(let mapping) = item else {
                issue(line(item), "each value is a text or a mapping with value and synonyms")
                continue
            }
            var value: String?
            var synonyms: [String] = []
            for (key, field) in mapping {
                switch key.scalar?.string ?? "" {
                case "value": value = nonEmptyString(field)
                case "synonyms": synonyms = readStrings(field, key: "synonyms").map(\.0)
                default: issue(line(key), "unknown value key '\(key.scalar?.string ?? "")' (expected value, synonyms)")
                }
            }
            guard let value else {
                issue(line(item), "value of '\(entity)' has no 'value'")
                continue
            }
            values.append(EntityListValue(value: value, synonyms: synonyms))
        }
        return values
    }

    // MARK: - Helpers

    private func line(_ node: Node) -> Int { node.mark?.line ?? 1 }

    private func nonEmptyString(_ node: Node) -> String? {
        guard let text = node.scalar?.string.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else {
            return nil
        }
        return text
    }

    static func isIdentifier(_ text: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    static func describe(_ error: YamlError) -> (Int, String) {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return (mark.line, problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return (context.mark.line, "duplicate key \(duplicates.joined(separator: ", "))")
        case .reader(let problem, _, _, _):
            return (1, problem)
        default:
            return (1, "\(error)")
        }
    }
}
