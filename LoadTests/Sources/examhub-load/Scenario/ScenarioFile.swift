import Foundation
import Yams

/// A scenario as data: a YAML file in `LoadTests/scenarios/` naming its `kind` and its parameters, each of which the
/// command line may override with `--set key=value`. Unknown kinds and keys are refused with the list of known ones,
/// so a typo never silently runs the default.
struct ScenarioFile: Sendable {
    /// The workloads the runner knows, with each one's parameters and their defaults.
    enum Kind: String, CaseIterable, Sendable {
        case echo
        case broadcast
        case examWave = "exam-wave"
        case proctorRoom = "proctor-room"
        case reconnectStorm = "reconnect-storm"
        case idle

        var defaults: [String: String] {
            switch self {
            case .echo:
                ["connections": "64", "inFlight": "16", "payloadBytes": "32", "op": "echo", "warmup": "2", "duration": "10"]
            case .broadcast:
                ["subscribers": "2000", "rate": "200", "payloadBytes": "64", "questions": "10", "warmup": "2",
                 "duration": "10", "drain": "3"]
            case .examWave:
                ["candidates": "10000", "ramp": "30", "duration": "60", "saveEvery": "5", "telemetryEvery": "1",
                 "telemetryFrameEvery": "2", "chatEvery": "300", "questions": "10", "submitWindow": "5", "flagRatio": "0"]
            case .proctorRoom:
                ["proctors": "20", "roomSize": "100", "telemetryEvery": "1", "saveEvery": "0", "flagRatio": "0.05",
                 "warmup": "3", "duration": "20"]
            case .reconnectStorm:
                ["candidates": "2000", "saveEvery": "2", "questions": "10", "storms": "3", "stormEvery": "10",
                 "jitter": "2", "warnings": "1", "warmup": "3"]
            case .idle:
                ["connections": "10000", "duration": "10"]
            }
        }
    }

    let kind: Kind
    let name: String
    private let values: [String: String]

    init(kind: Kind, name: String, values: [String: String]) {
        self.kind = kind
        self.name = name
        self.values = values
    }

    /// Reads `path` and applies `overrides` (`key=value`).
    static func load(path: String, overrides: [String]) throws -> ScenarioFile {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ScenarioError("cannot read scenario file \(path)")
        }
        let node: Any?
        do { node = try Yams.load(yaml: text) } catch { throw ScenarioError("\(path): not valid YAML: \(error)") }
        guard let map = node as? [String: Any] else { throw ScenarioError("\(path): expected a mapping of keys to values") }
        return try parse(map, name: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, source: path,
                         overrides: overrides)
    }

    static func parse(_ map: [String: Any], name: String, source: String, overrides: [String]) throws -> ScenarioFile {
        guard let kindName = map["kind"] as? String else {
            throw ScenarioError("\(source): missing `kind` (one of \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let kind = Kind(rawValue: kindName) else {
            throw ScenarioError("\(source): unknown kind `\(kindName)` (one of \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var values = kind.defaults
        func set(_ key: String, _ value: String, from: String) throws {
            guard values[key] != nil else {
                throw ScenarioError("\(from): unknown key `\(key)` for \(kind.rawValue) (known: \(kind.defaults.keys.sorted().joined(separator: ", ")))")
            }
            values[key] = value
        }
        for (key, value) in map where key != "kind" && key != "description" {
            switch value {
            case let s as String: try set(key, s, from: source)
            case let b as Bool: try set(key, b ? "true" : "false", from: source)
            case let i as Int: try set(key, String(i), from: source)
            case let d as Double: try set(key, String(d), from: source)
            default: throw ScenarioError("\(source): `\(key)` must be a number or a word")
            }
        }
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw ScenarioError("--set \(o): expected key=value") }
            try set(String(o[..<eq]), String(o[o.index(after: eq)...]), from: "--set")
        }
        let file = ScenarioFile(kind: kind, name: name, values: values)
        for key in values.keys where key != "op" { _ = try file.double(key) }
        return file
    }

    func string(_ key: String) -> String { values[key] ?? "" }

    func double(_ key: String) throws -> Double {
        guard let v = values[key], let d = Double(v), d.isFinite, d >= 0 else {
            throw ScenarioError("`\(key)` must be a number >= 0 (got \(values[key] ?? "nothing"))")
        }
        return d
    }

    func int(_ key: String) throws -> Int {
        let d = try double(key)
        guard d <= 10_000_000, d == d.rounded() else { throw ScenarioError("`\(key)` must be a whole number") }
        return Int(d)
    }

    /// A duration in seconds, or `nil` when 0 (the activity is off).
    func interval(_ key: String) throws -> Double? {
        let d = try double(key)
        return d > 0 ? d : nil
    }

    /// Every parameter, for the JSON summary.
    var parameters: [String: String] { values }
}

/// A scenario file or override that cannot run, with what to fix.
struct ScenarioError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
