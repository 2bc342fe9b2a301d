import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The exams a load run creates, and creating them over the hub's HTTP API (`POST /v1/exams`) as an admin.
enum LoadExams {
    /// Text questions `q0`…`q<n-1>`; with `pasteFlags`, a proctoring override under which every `clipboard.paste`
    /// raises a flag at once (no merge window), so each one is a telemetry-to-flag latency sample.
    static func body(id: String, title: String, questions: Int, durationSec: Int, pasteFlags: Bool = false) -> String {
        let qs = (0..<max(1, questions)).map { #"{"id":"q\#($0)","type":"text","prompt":"Question \#($0)"}"# }
            .joined(separator: ",")
        let proctoring = pasteFlags
            ? #","proctoring":{"profile":"default","overrides":{"rules":[{"code":"bench_paste","severity":"info","type":"match","event":"clipboard.paste","mergeSec":0}],"disable":["paste"],"risk":{"halfLifeSec":1}}}"#
            : ""
        return #"{"id":"\#(id)","title":"\#(title)","durationSec":\#(durationSec),"graceSec":60,"questions":[\#(qs)]\#(proctoring)}"#
    }

    /// Posts `body`; 201 is success, and so is 409 when `mayExist` (a rerun on the same exam id).
    static func create(host: String, port: Int, adminToken: String, id: String, body: String, mayExist: Bool = false)
        async throws
    {
        guard let url = URL(string: "http://\(host):\(port)/v1/exams") else { throw ScenarioError("bad host \(host)") }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        request.setValue("Bearer \(adminToken)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode
        guard status == 201 || (mayExist && status == 409) else {
            throw ScenarioError("creating exam \(id) failed: \(String(decoding: data, as: UTF8.self))")
        }
    }
}
