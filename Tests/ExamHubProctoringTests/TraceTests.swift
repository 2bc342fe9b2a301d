import ExamHubDomain
import ExamHubWire
import XCTest

@testable import ExamHubProctoring

/// Telemetry traces (JSON lines in `Traces/`) run through the `default` profile, each with the flags it must raise:
/// exactly those, at those times, with those merge counts. Traces that must raise nothing matter as much.
///
/// A trace's first line is its header: `{"about", "expect": [{"code", "severity", "at", "count"}], "clientSkewSec"?,
/// "batch"?}`; every other line is one event `{"t": seconds, "kind", "data"?}`. Each event is sent in its own
/// `telemetry` batch at server time `t` (with `batch: true`, all in one batch sent at the last event's time), its
/// `at` stamped by a client clock `clientSkewSec` ahead of the server's.
final class TraceTests: XCTestCase {
    static let base: Int64 = 1_700_000_000_000

    struct Expected: Equatable, CustomStringConvertible {
        var code: String
        var severity: String
        var atSec: Double
        var count: Int
        var description: String { "\(code)/\(severity)@\(atSec)s×\(count)" }
    }

    static var traceDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Traces")
    }

    func testEveryTraceRaisesExactlyItsFlags() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.traceDirectory.path)
            .filter { $0.hasSuffix(".jsonl") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 18, "the trace fixtures are missing")
        let profile = try XCTUnwrap(ProfileLibrary().profile(named: "default", tenant: "t"))
        for file in files {
            let (expected, seen) = try run(trace: file, profile: profile)
            XCTAssertEqual(seen, expected, "trace \(file)")
        }
    }

    /// One trace per default-profile flag and per rule kind, and some that must stay silent.
    func testTheFixturesCoverEveryDefaultFlagAndRuleKind() throws {
        let profile = try XCTUnwrap(ProfileLibrary().profile(named: "default", tenant: "t"))
        var raised = Set<String>()
        var silent = 0
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.traceDirectory.path).filter { $0.hasSuffix(".jsonl") }
        for file in files {
            let (expected, _) = try run(trace: file, profile: profile)
            raised.formUnion(expected.map(\.code))
            if expected.isEmpty { silent += 1 }
        }
        XCTAssertEqual(raised, Set(profile.rules.map(\.code)))
        XCTAssertEqual(Set(profile.rules.map(\.kind)), Set(ProctoringRule.Kind.allCases))
        XCTAssertGreaterThanOrEqual(silent, 5)
    }

    private func run(trace file: String, profile: ProctoringProfile) throws -> (expected: [Expected], seen: [Expected]) {
        let text = try String(contentsOf: Self.traceDirectory.appendingPathComponent(file), encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        let header = try JSONParser.parse(try XCTUnwrap(lines.first))
        let skew = Int64((header["clientSkewSec"].flatMap(Self.number) ?? 0) * 1000)
        let batched = header["batch"]?.boolValue ?? false
        let expected = (header["expect"]?.arrayValue ?? []).map { e in
            Expected(
                code: e["code"]?.stringValue ?? "?", severity: e["severity"]?.stringValue ?? "?",
                atSec: e["at"].flatMap(Self.number) ?? -1, count: Int(e["count"]?.intValue ?? 1))
        }
        var events: [(t: Double, json: JSONValue)] = []
        for line in lines.dropFirst() {
            let e = try JSONParser.parse(line)
            let t = try XCTUnwrap(e["t"].flatMap(Self.number), "\(file): an event without t")
            var o: [String: JSONValue] = [
                "kind": e["kind"] ?? .null,
                "at": .string(Timestamp.format(millis: Self.base + Int64(t * 1000) + skew)),
            ]
            if let data = e["data"] { o["data"] = data }
            events.append((t, .object(o)))
        }
        events = events.enumerated().sorted { a, b in
            a.element.t != b.element.t ? a.element.t < b.element.t : a.offset < b.offset
        }.map(\.element)

        var monitor = AttemptMonitor(profile: profile)
        var raisedCodes: [(code: String, first: Int64)] = []
        func send(_ group: [(t: Double, json: JSONValue)]) throws {
            guard let last = group.last else { return }
            let now = Self.base + Int64(last.t * 1000)
            let batch = try TelemetryBatch(events: .array(group.map(\.json)), now: now, clock: &monitor.clock)
            let outcome = monitor.ingest(batch.events)
            raisedCodes += outcome.raised.map { ($0.code, $0.firstMillis) }
        }
        if batched {
            try send(events)
        } else {
            for e in events { try send([e]) }
        }
        let seen = raisedCodes.compactMap { raised -> Expected? in
            guard let flag = monitor.flags.first(where: { $0.code == raised.code && $0.firstMillis == raised.first }) else {
                return nil
            }
            return Expected(
                code: flag.code, severity: flag.severity.rawValue, atSec: Double(flag.firstMillis - Self.base) / 1000,
                count: flag.count)
        }
        return (expected, seen)
    }

    static func number(_ v: JSONValue) -> Double? {
        switch v {
        case .int(let n): Double(n)
        case .double(let d): d
        default: nil
        }
    }
}
