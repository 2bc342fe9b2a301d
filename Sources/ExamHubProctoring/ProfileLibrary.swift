import ExamHubDomain

/// The proctoring profiles a node knows: the built-in ones, plus profile files an operator adds
/// (`EXAMHUB_PROFILES_DIR`: `<name>.json` for every tenant, `<tenant>/<name>.json` for one tenant only, which
/// wins over the shared one of the same name).
public struct ProfileLibrary: Sendable {
    private var shared: [String: ProctoringProfile]
    private var perTenant: [String: [String: ProctoringProfile]]

    /// The built-in profiles only.
    public init() {
        var shared: [String: ProctoringProfile] = [:]
        for (name, text) in BuiltinProfiles.documents {
            // The built-in documents are tested to parse; a broken one is a build defect, not input.
            guard let profile = try? ProctoringProfile(jsonText: text) else {
                preconditionFailure("built-in proctoring profile \(name) does not parse")
            }
            shared[name] = profile
        }
        self.shared = shared
        self.perTenant = [:]
    }

    /// The built-in profiles plus `files` (path relative to the profiles folder -> JSON text). A file that does not
    /// parse is an error naming it; its name must match the profile's `name`.
    public init(files: [String: String]) throws(HubError) {
        self.init()
        for (path, text) in files.sorted(by: { $0.key < $1.key }) {
            let parts = path.split(separator: "/").map(String.init)
            guard (1...2).contains(parts.count), let file = parts.last, file.hasSuffix(".json") else {
                throw .badRequest("\(path): expected <name>.json or <tenant>/<name>.json")
            }
            let profile: ProctoringProfile
            do throws(HubError) {
                profile = try ProctoringProfile(jsonText: text)
            } catch {
                throw .badRequest("\(path): \(error.message)")
            }
            guard profile.name + ".json" == file else {
                throw .badRequest("\(path): the profile is named \"\(profile.name)\"; the file must be \(profile.name).json")
            }
            if parts.count == 2 {
                perTenant[parts[0], default: [:]][profile.name] = profile
            } else {
                shared[profile.name] = profile
            }
        }
    }

    /// The profile `name` as `tenant` sees it, or `nil`.
    public func profile(named name: String, tenant: String) -> ProctoringProfile? {
        perTenant[tenant]?[name] ?? shared[name]
    }

    /// The profile an exam uses: its named profile with the exam's overrides applied. `bad_request` naming the
    /// problem when the profile is unknown or the overrides do not apply.
    public func profile(for exam: ExamDefinition, tenant: String) throws(HubError) -> ProctoringProfile {
        guard let base = profile(named: exam.proctoringProfile, tenant: tenant) else {
            throw .badRequest("proctoring.profile: no profile named \"\(exam.proctoringProfile)\"")
        }
        return try base.applying(overrides: exam.proctoringOverrides)
    }

    /// Every profile name `tenant` can use.
    public func names(tenant: String) -> [String] {
        Set(shared.keys).union(perTenant[tenant].map { Array($0.keys) } ?? []).sorted()
    }
}

/// The profiles shipped with ExamHub, as the same JSON an operator writes. `default` is exactly the table of
/// PROTOCOL.md section 4a.
public enum BuiltinProfiles {
    public static let documents: [String: String] = [
        "default": defaultProfile,
        "strict": strictProfile,
        "no_camera": noCameraProfile,
    ]

    public static let defaultProfile = """
        {
          "name": "default",
          "description": "PROTOCOL.md section 4a",
          "risk": {"weights": {"info": 5, "warning": 15, "critical": 40}, "halfLifeSec": 600, "repeatBonus": 0.25},
          "rules": [
            {"code": "multiple_faces", "severity": "critical", "type": "match", "event": "face.count",
             "where": {"field": "n", "op": ">=", "value": 2}},
            {"code": "no_face", "severity": "warning", "type": "duration", "event": "face.count",
             "where": {"field": "n", "op": "==", "value": 0}, "durationSec": 10},
            {"code": "tab_switching", "severity": "warning", "type": "count", "event": "visibility.hidden",
             "count": 3, "windowSec": 300},
            {"code": "fullscreen_exit", "severity": "warning", "type": "match", "event": "fullscreen.exit"},
            {"code": "paste", "severity": "info", "type": "match", "event": "clipboard.paste"},
            {"code": "multiple_screens", "severity": "critical", "type": "match", "event": "screen.count",
             "where": {"field": "n", "op": ">=", "value": 2}},
            {"code": "devtools", "severity": "critical", "type": "match", "event": "devtools.open"},
            {"code": "voice", "severity": "warning", "type": "total", "event": "voice.detected",
             "total": 30, "windowSec": 300}
          ]
        }
        """

    public static let strictProfile = """
        {
          "name": "strict",
          "description": "High-stakes exams: lower thresholds, focus and gaze watched, slower decay",
          "risk": {"weights": {"info": 8, "warning": 20, "critical": 50}, "halfLifeSec": 1800, "repeatBonus": 0.5},
          "rules": [
            {"code": "multiple_faces", "severity": "critical", "type": "match", "event": "face.count",
             "where": {"field": "n", "op": ">=", "value": 2}},
            {"code": "no_face", "severity": "warning", "type": "duration", "event": "face.count",
             "where": {"field": "n", "op": "==", "value": 0}, "durationSec": 5},
            {"code": "tab_switching", "severity": "warning", "type": "count", "event": "visibility.hidden",
             "count": 2, "windowSec": 600},
            {"code": "focus_lost", "severity": "info", "type": "count", "event": "focus.lost",
             "count": 3, "windowSec": 300},
            {"code": "fullscreen_exit", "severity": "critical", "type": "match", "event": "fullscreen.exit"},
            {"code": "copy", "severity": "info", "type": "match", "event": "clipboard.copy"},
            {"code": "paste", "severity": "warning", "type": "match", "event": "clipboard.paste"},
            {"code": "multiple_screens", "severity": "critical", "type": "match", "event": "screen.count",
             "where": {"field": "n", "op": ">=", "value": 2}},
            {"code": "devtools", "severity": "critical", "type": "match", "event": "devtools.open"},
            {"code": "gaze_away", "severity": "warning", "type": "total", "event": "gaze.away",
             "total": 30, "windowSec": 300},
            {"code": "voice", "severity": "warning", "type": "total", "event": "voice.detected",
             "total": 15, "windowSec": 300},
            {"code": "offline", "severity": "warning", "type": "total", "event": "network.offline",
             "total": 60, "windowSec": 600}
          ]
        }
        """

    public static let noCameraProfile = """
        {
          "name": "no_camera",
          "description": "Exams without a camera or microphone: browser signals only",
          "rules": [
            {"code": "tab_switching", "severity": "warning", "type": "count", "event": "visibility.hidden",
             "count": 3, "windowSec": 300},
            {"code": "fullscreen_exit", "severity": "warning", "type": "match", "event": "fullscreen.exit"},
            {"code": "paste", "severity": "info", "type": "match", "event": "clipboard.paste"},
            {"code": "multiple_screens", "severity": "critical", "type": "match", "event": "screen.count",
             "where": {"field": "n", "op": ">=", "value": 2}},
            {"code": "devtools", "severity": "critical", "type": "match", "event": "devtools.open"}
          ]
        }
        """
}
