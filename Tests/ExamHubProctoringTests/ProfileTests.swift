import ExamHubDomain
import ExamHubWire
import XCTest

@testable import ExamHubProctoring

final class ProfileTests: XCTestCase {
    /// The `default` profile is exactly PROTOCOL.md's table, row by row.
    func testDefaultProfileIsTheProtocolTable() throws {
        let p = try XCTUnwrap(ProfileLibrary().profile(named: "default", tenant: "any"))
        func rule(_ code: String) throws -> ProctoringRule { try XCTUnwrap(p.rules.first { $0.code == code }, code) }
        XCTAssertEqual(p.rules.count, 8)
        var r = try rule("multiple_faces")
        XCTAssertEqual([r.severity, r.kind, r.event, r.condition] as [AnyHashable], [FlagSeverity.critical, ProctoringRule.Kind.match, TelemetryKind.faceCount, Optional(EventCondition(.ge, 2))])
        r = try rule("no_face")
        XCTAssertEqual([r.severity, r.kind, r.event, r.condition] as [AnyHashable], [FlagSeverity.warning, ProctoringRule.Kind.duration, TelemetryKind.faceCount, Optional(EventCondition(.eq, 0))])
        XCTAssertEqual(r.durationMillis, 10_000)
        r = try rule("tab_switching")
        XCTAssertEqual([r.severity, r.kind, r.event] as [AnyHashable], [FlagSeverity.warning, ProctoringRule.Kind.count, TelemetryKind.visibilityHidden])
        XCTAssertEqual(r.count, 3)
        XCTAssertEqual(r.windowMillis, 300_000)
        r = try rule("fullscreen_exit")
        XCTAssertEqual([r.severity, r.kind, r.event] as [AnyHashable], [FlagSeverity.warning, ProctoringRule.Kind.match, TelemetryKind.fullscreenExit])
        r = try rule("paste")
        XCTAssertEqual([r.severity, r.kind, r.event] as [AnyHashable], [FlagSeverity.info, ProctoringRule.Kind.match, TelemetryKind.clipboardPaste])
        r = try rule("multiple_screens")
        XCTAssertEqual([r.severity, r.kind, r.event, r.condition] as [AnyHashable], [FlagSeverity.critical, ProctoringRule.Kind.match, TelemetryKind.screenCount, Optional(EventCondition(.ge, 2))])
        r = try rule("devtools")
        XCTAssertEqual([r.severity, r.kind, r.event] as [AnyHashable], [FlagSeverity.critical, ProctoringRule.Kind.match, TelemetryKind.devtoolsOpen])
        r = try rule("voice")
        XCTAssertEqual([r.severity, r.kind, r.event] as [AnyHashable], [FlagSeverity.warning, ProctoringRule.Kind.total, TelemetryKind.voiceDetected])
        XCTAssertEqual(r.total, 30)
        XCTAssertEqual(r.windowMillis, 300_000)
    }

    func testEveryBuiltInProfileParses() throws {
        let library = ProfileLibrary()
        XCTAssertEqual(library.names(tenant: "t"), ["default", "no_camera", "strict"])
        for name in BuiltinProfiles.documents.keys {
            XCTAssertNotNil(library.profile(named: name, tenant: "t"), name)
        }
    }

    func testProfileErrorsNameTheirPlace() {
        let cases: [(String, String)] = [
            (#"[]"#, "a profile must be a JSON object"),
            (#"{"name": "x"}"#, "rules must be an array"),
            (#"{"name": "x", "rules": [], "extra": 1}"#, "extra is not a known field"),
            (#"{"name": "x y", "rules": []}"#, "name must be"),
            (#"{"name": "x", "rules": [{"code": "A", "severity": "info", "type": "match", "event": "devtools.open"}]}"#, "rules[0].code must be"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "bad", "type": "match", "event": "devtools.open"}]}"#, "rules[0].severity"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "often", "event": "devtools.open"}]}"#, "rules[0].type"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "match", "event": "mouse.move"}]}"#, "rules[0].event must be a telemetry kind"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "count", "event": "focus.lost", "windowSec": 60}]}"#, "rules[0].count must be an integer"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "count", "event": "focus.lost", "count": 2}]}"#, "rules[0].windowSec is required"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "duration", "event": "face.count"}]}"#, "rules[0].durationSec is required"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "total", "event": "face.count", "total": 3, "windowSec": 9}]}"#, "a total rule adds up seconds"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "match", "event": "devtools.open", "where": {"field": "n", "op": ">", "value": 1}}]}"#, "carry no number"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "match", "event": "face.count", "where": {"field": "seconds", "op": ">", "value": 1}}]}"#, "where.field must be \"n\""),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "match", "event": "face.count", "where": {"field": "n", "op": "~", "value": 1}}]}"#, "where.op"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "match", "event": "devtools.open"}, {"code": "a", "severity": "info", "type": "match", "event": "devtools.open"}]}"#, "rules[1].code \"a\" is used twice"),
            (#"{"name": "x", "rules": [], "risk": {"halfLifeSec": -1}}"#, "risk.halfLifeSec"),
            (#"{"name": "x", "rules": [], "risk": {"weights": {"fatal": 1}}}"#, "risk.weights.fatal is not a known field"),
            (#"{"name": "x", "rules": [{"code": "a", "severity": "info", "type": "count", "event": "focus.lost", "count": 2.5, "windowSec": 9}]}"#, "rules[0].count must be an integer"),
            ("{not json", "invalid JSON"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try ProctoringProfile(jsonText: text), text) { error in
                let e = error as? HubError
                XCTAssertEqual(e?.code, .badRequest, text)
                XCTAssertTrue(e?.message.contains(message) ?? false, "\(text): \(e?.message ?? "?") lacks \(message)")
            }
        }
    }

    func testExamOverridesReplaceAddAndDisableRules() throws {
        let library = ProfileLibrary()
        let overrides = try JSONParser.parse(#"""
            {"disable": ["paste"],
             "rules": [{"code": "tab_switching", "severity": "critical", "type": "count", "event": "visibility.hidden", "count": 1, "windowSec": 60},
                       {"code": "copy", "severity": "info", "type": "match", "event": "clipboard.copy"}],
             "risk": {"halfLifeSec": 60}}
            """#)
        let exam = ExamDefinition(
            id: "e1", title: "t", durationSec: 60, questions: [.init(id: "q", type: .text, prompt: "p")],
            proctoringOverrides: overrides)
        let p = try library.profile(for: exam, tenant: "t1")
        XCTAssertNil(p.rules.first { $0.code == "paste" })
        XCTAssertEqual(p.rules.first { $0.code == "tab_switching" }?.severity, .critical)
        XCTAssertEqual(p.rules.first { $0.code == "tab_switching" }?.count, 1)
        XCTAssertNotNil(p.rules.first { $0.code == "copy" })
        XCTAssertEqual(p.risk.halfLifeMillis, 60_000)
        XCTAssertEqual(p.rules.count, 8)

        var bad = exam
        bad.proctoringOverrides = try JSONParser.parse(#"{"disable": ["nothing_like_it"]}"#)
        XCTAssertThrowsError(try library.profile(for: bad, tenant: "t1")) { error in
            XCTAssertTrue((error as? HubError)?.message.contains("no rule \"nothing_like_it\"") ?? false)
        }
        bad.proctoringOverrides = nil
        bad.proctoringProfile = "unheard_of"
        XCTAssertThrowsError(try library.profile(for: bad, tenant: "t1")) { error in
            XCTAssertTrue((error as? HubError)?.message.contains("no profile named") ?? false)
        }
    }

    func testTenantProfilesWinOverSharedOnesForThatTenantOnly() throws {
        let custom = #"{"name": "default", "rules": [{"code": "paste", "severity": "critical", "type": "match", "event": "clipboard.paste"}]}"#
        let library = try ProfileLibrary(files: ["acme/default.json": custom])
        XCTAssertEqual(library.profile(named: "default", tenant: "acme")?.rules.count, 1)
        XCTAssertEqual(library.profile(named: "default", tenant: "other")?.rules.count, 8)
        XCTAssertThrowsError(try ProfileLibrary(files: ["acme/wrong.json": custom])) { error in
            XCTAssertTrue((error as? HubError)?.message.contains("acme/wrong.json") ?? false)
        }
        XCTAssertThrowsError(try ProfileLibrary(files: ["x.json": "{"]))
    }

    func testRiskGrowsWithSeverityAndRepeatsAndDecays() {
        let model = RiskModel()
        let now: Int64 = 1_000_000_000
        let critical = Flag(code: "devtools", severity: .critical, firstMillis: now, lastMillis: now)
        let warning = Flag(code: "tab_switching", severity: .warning, firstMillis: now, lastMillis: now)
        XCTAssertEqual(model.risk(of: [Flag](), at: now), 0)
        XCTAssertEqual(model.risk(of: [warning], at: now), 15)
        XCTAssertEqual(model.risk(of: [critical], at: now), 40)
        XCTAssertEqual(model.risk(of: [critical, warning], at: now), 55)
        var repeated = warning
        repeated.count = 3
        XCTAssertEqual(model.risk(of: [repeated], at: now), 23)  // 15 × 1.5
        XCTAssertEqual(model.risk(of: [critical], at: now + 600_000), 20)  // one half-life
        XCTAssertEqual(model.risk(of: [critical], at: now + 1_200_000), 10)
        XCTAssertEqual(model.risk(of: [critical, critical, critical], at: now), 100)  // capped
        XCTAssertEqual(_pow2(-1), 0.5, accuracy: 1e-9)
        XCTAssertEqual(_pow2(-2.5), 0.1767766952966369, accuracy: 1e-9)
    }
}

final class TelemetryTests: XCTestCase {
    let now: Int64 = 1_700_000_000_000

    private func batch(_ text: String, clock: inout TelemetryClock) throws -> TelemetryBatch {
        try TelemetryBatch(events: try JSONParser.parse(text), now: now, clock: &clock)
    }

    func testBadEventsAreRefusedNamingTheEvent() {
        let at = Timestamp.format(millis: now)
        let cases: [(String, String)] = [
            ("{}", "\"events\" must be an array"),
            ("[]", "must not be empty"),
            (#"[{"kind": "mouse.move", "at": "\#(at)"}]"#, "events[0].kind \"mouse.move\" is not a telemetry kind"),
            (#"[{"kind": "focus.lost"}]"#, "events[0].at must be an RFC 3339 time"),
            (#"[{"kind": "focus.lost", "at": "yesterday"}]"#, "events[0].at"),
            (#"[{"kind": "focus.lost", "at": "\#(at)"}, {"kind": "face.count", "at": "\#(at)"}]"#, "events[1].data.n must be an integer"),
            (#"[{"kind": "face.count", "at": "\#(at)", "data": {"n": 1.5}}]"#, "events[0].data.n must be an integer"),
            (#"[{"kind": "face.count", "at": "\#(at)", "data": {"n": -1}}]"#, "events[0].data.n must be in 0...64"),
            (#"[{"kind": "voice.detected", "at": "\#(at)", "data": {"seconds": "5"}}]"#, "events[0].data.seconds must be a number"),
            (#"[{"kind": "voice.detected", "at": "\#(at)", "data": {"seconds": 1e9}}]"#, "data.seconds must be in"),
            (#"[{"kind": "focus.lost", "at": "\#(at)", "data": []}]"#, "events[0].data must be an object"),
            (#"[{"kind": "focus.lost", "at": "\#(at)", "who": 1}]"#, "unknown field \"who\""),
            (#"[1]"#, "events[0] must be an object"),
        ]
        for (text, message) in cases {
            var clock = TelemetryClock()
            XCTAssertThrowsError(try batch(text, clock: &clock), text) { error in
                let e = error as? HubError
                XCTAssertEqual(e?.code, .badRequest, text)
                XCTAssertTrue(e?.message.contains(message) ?? false, "\(text): \(e?.message ?? "?") lacks \(message)")
            }
        }
        var clock = TelemetryClock()
        let tooMany = "[" + Array(repeating: #"{"kind": "focus.lost", "at": "\#(at)"}"#, count: 257).joined(separator: ",") + "]"
        XCTAssertThrowsError(try batch(tooMany, clock: &clock)) { error in
            XCTAssertEqual((error as? HubError)?.code, .tooLarge)
        }
    }

    func testClientClockOffsetIsMeasuredAndCorrected() throws {
        var clock = TelemetryClock()
        // The client's clock is 1 hour behind; its batch holds events from 20 s and 5 s before sending.
        let behind = now - 3_600_000
        let text = #"[{"kind": "focus.gained", "at": "\#(Timestamp.format(millis: behind - 5_000))"}, {"kind": "focus.lost", "at": "\#(Timestamp.format(millis: behind - 20_000))"}]"#
        let b = try batch(text, clock: &clock)
        XCTAssertEqual(b.skewMillis, 3_600_000 + 5_000)
        XCTAssertEqual(b.events.map(\.kind), [.focusLost, .focusGained], "sorted by time")
        XCTAssertEqual(b.events.map(\.atMillis), [now - 15_000, now])
    }

    func testFutureAndAncientTimesAreClampedAndTimeNeverRunsBackwards() throws {
        var clock = TelemetryClock(maxBacklogMillis: 60_000)
        _ = clock.observe(latestClientMillis: now, now: now)  // clocks agree
        XCTAssertEqual(clock.serverTime(of: now + 3_600_000, now: now), now, "no post-dating")
        var later = clock
        XCTAssertEqual(later.serverTime(of: now - 3_600_000, now: now + 1), now, "never before the previous event")
        var fresh = TelemetryClock(maxBacklogMillis: 60_000)
        _ = fresh.observe(latestClientMillis: now, now: now)
        XCTAssertEqual(fresh.serverTime(of: now - 3_600_000, now: now), now - 60_000, "at most the backlog")
        // A delayed batch does not make the estimate worse; a clock that jumps is re-learned.
        var c = TelemetryClock()
        XCTAssertEqual(c.observe(latestClientMillis: now - 100, now: now), 100)
        _ = c.observe(latestClientMillis: now - 2_000, now: now)
        XCTAssertEqual(c.offsetMillis, 100)
        _ = c.observe(latestClientMillis: now - 60_000, now: now)
        XCTAssertEqual(c.offsetMillis, 60_000)
        XCTAssertEqual(c.observe(latestClientMillis: Int64.min, now: now), 0, "overflow is not trusted")
    }

    func testEvidenceCarriesServerAndClientTimeAndData() throws {
        var clock = TelemetryClock()
        let b = try batch(#"[{"kind": "face.count", "at": "\#(Timestamp.format(millis: now))", "data": {"n": 2}}]"#, clock: &clock)
        XCTAssertEqual(b.events[0].json["data"]?["n"], .int(2))
        XCTAssertEqual(b.events[0].json["kind"], .string("face.count"))
    }
}

final class EvidenceEncodingTests: XCTestCase {
    func testCompactEvidenceIsValidJSONWithEveryField() throws {
        let events = [
            TelemetryEvent(kind: .faceCount, clientMillis: 1_700_000_000_000, atMillis: 1_700_000_000_100, value: 2),
            TelemetryEvent(kind: .voiceDetected, clientMillis: 5, atMillis: 6, value: 2.5),
            TelemetryEvent(kind: .focusLost, clientMillis: 7, atMillis: 8),
        ]
        let text = events.compactJSON
        XCTAssertEqual(text, #"[["face.count",1700000000100,1700000000000,2],["voice.detected",6,5,2.5],["focus.lost",8,7,null]]"#)
        XCTAssertEqual(try JSONParser.parse(text).arrayValue?.count, 3)
        XCTAssertEqual([TelemetryEvent]().compactJSON, "[]")
    }
}
