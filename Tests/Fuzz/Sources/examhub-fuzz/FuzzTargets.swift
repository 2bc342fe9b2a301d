import ExamHubDomain
import ExamHubIntents
import ExamHubProctoring
import ExamHubWire

/// The inputs the hub parses from strangers, as fuzz targets: the frame envelope decoder (every socket message),
/// the intent file parser and the proctoring-profile parser (files an operator may get from anyone). Each must
/// return or throw its typed error for any bytes, never crash or hang.
enum FuzzTargets {
    static let names = ["envelope", "intents", "profile", "telemetry"]

    static func run(_ target: String, _ bytes: UnsafeRawBufferPointer) {
        switch target {
        case "envelope":
            _ = try? Envelope.decode(bytes, limits: .init(maxDepth: 32))
        case "intents":
            let text = String(decoding: bytes, as: UTF8.self)
            _ = try? IntentCatalog.parse([IntentSource(file: "fuzz.yaml", text: text)])
        case "profile":
            let text = String(decoding: bytes, as: UTF8.self)
            if let profile = try? ProctoringProfile(jsonText: text) {
                // A profile that parses must also run: feed it a small trace.
                var monitor = AttemptMonitor(profile: profile)
                let events = TelemetryKind.allCases.enumerated().map { i, kind in
                    TelemetryEvent(kind: kind, clientMillis: Int64(i) * 1000, atMillis: Int64(i) * 1000, value: Double(i % 3))
                }
                _ = monitor.ingest(events)
                _ = monitor.risk(at: 100_000)
            }
        case "telemetry":
            guard let json = try? JSONParser.parse(bytes, limits: .init(maxDepth: 16)) else { return }
            var clock = TelemetryClock()
            if let batch = try? TelemetryBatch(events: json, now: 1_700_000_000_000, clock: &clock) {
                var monitor = AttemptMonitor(profile: ProfileLibrary().profile(named: "default", tenant: "t")
                    ?? ProctoringProfile(name: "default", rules: []))
                _ = monitor.ingest(batch.events)
                _ = batch.events.compactJSON
            }
        default:
            break
        }
    }
}
