import ExamHubDomain
import ExamHubStore
import ExamHubWire
import NIOHTTP1

/// The JSON API of PROTOCOL.md section 6 that lives in the hub: exams and attempts. Pure async functions from
/// a request to a status and a JSON body; `HTTPResponder` does the I/O.
struct HTTPAPI: Sendable {
    let services: HubServices

    /// A response: status and JSON body.
    struct Response: Sendable {
        var status: HTTPResponseStatus
        var body: JSONValue
    }

    /// Whether `method path` is one of the API's routes (so the responder collects the body and calls `handle`).
    static func matches(method: HTTPMethod, path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        switch (method, parts.count) {
        case (.POST, 3): return path == "/v1/exams"
        case (.GET, 4): return parts[1] == "v1" && (parts[2] == "exams" || parts[2] == "attempts")
        case (.GET, 5): return parts[1] == "v1" && parts[2] == "exams" && (parts[4] == "audit" || parts[4] == "report")
        default: return false
        }
    }

    func handle(
        method: HTTPMethod, path: String, query: String? = nil, authorization: String?, body: [UInt8]
    ) async -> Response {
        do throws(HubError) {
            let principal = try await authenticate(authorization)
            let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            switch (method, parts.count) {
            case (.POST, 3):
                return try await createExam(principal, body: body)
            case (.GET, 4) where parts[2] == "exams":
                return try await getExam(principal, id: parts[3])
            case (.GET, 4) where parts[2] == "attempts":
                return try await getAttempt(principal, id: parts[3])
            case (.GET, 5) where parts[4] == "audit":
                return try await getAudit(principal, examID: parts[3], query: Self.queryItems(query))
            case (.GET, 5) where parts[4] == "report":
                return try await getReport(principal, examID: parts[3])
            default:
                throw .notFound("no route for \(method) \(path.prefix(128))")
            }
        } catch {
            return Response(
                status: HTTPResponseStatus(statusCode: error.code.httpStatus),
                body: .object(["error": .object(["code": .string(error.code.rawValue), "message": .string(error.message)])]))
        }
    }

    private func authenticate(_ authorization: String?) async throws(HubError) -> Principal {
        guard let token = BearerToken.parse(authorization) else {
            throw .unauthorized("send Authorization: Bearer <token>")
        }
        return try await services.verifier.verify(token)
    }

    private func createExam(_ principal: Principal, body: [UInt8]) async throws(HubError) -> Response {
        guard principal.role == .admin else { throw .forbidden("only admins define exams") }
        let json: JSONValue
        do {
            json = try JSONParser.parse(body, limits: .init(maxDepth: 16, maxContainerCount: 10_000))
        } catch {
            throw .badRequest("invalid JSON: \(error.description)")
        }
        let exam = try ExamDefinition(json: json)
        // The profile must exist for this tenant and the exam's overrides must apply to it.
        _ = try services.proctoring.library.profile(for: exam, tenant: principal.tenant)
        guard principal.mayAccessExam(exam.id) else { throw .forbidden("this token is not valid for exam \(exam.id)") }
        try await services.store.createExam(tenant: principal.tenant, definition: exam, now: WallClock.nowMillis())
        return Response(status: .created, body: exam.json)
    }

    private func getExam(_ principal: Principal, id: String) async throws(HubError) -> Response {
        guard principal.role == .admin else { throw .forbidden("only admins read exam definitions") }
        guard ChannelName.isValidID(id) else { throw .notFound("no exam \(id.prefix(128))") }
        guard principal.mayAccessExam(id) else { throw .forbidden("this token is not valid for exam \(id)") }
        guard let exam = try await services.directory.exam(tenant: principal.tenant, id: id) else {
            throw .notFound("no exam \(id)")
        }
        return Response(status: .ok, body: exam.json)
    }

    private func getAttempt(_ principal: Principal, id: String) async throws(HubError) -> Response {
        guard principal.role == .admin || principal.role == .proctor else {
            throw .forbidden("only admins and proctors read attempts")
        }
        guard ChannelName.isValidID(id), let attempt = try await services.store.attempt(id: id) else {
            throw .notFound("no attempt \(id.prefix(128))")
        }
        guard attempt.tenant == principal.tenant else { throw .notFound("no attempt \(id)") }
        guard principal.mayAccessExam(attempt.examID) else {
            throw .forbidden("this token is not valid for exam \(attempt.examID)")
        }
        let stored = try await services.store.flags(attemptIDs: [id])[id] ?? []
        let (flags, risk) = services.proctoring.flagsAndRisk(of: id, stored: stored, now: WallClock.nowMillis())
        var body = Self.attemptJSON(attempt)
        if case .object(var o) = body {
            o["flags"] = .array(flags.map(\.summaryJSON))
            o["risk"] = .int(Int64(risk))
            body = .object(o)
        }
        return Response(status: .ok, body: body)
    }

    /// `GET /v1/exams/{id}/audit[?attemptId=…&limit=…]` (admin): the proctor actions on the exam, newest first.
    private func getAudit(_ principal: Principal, examID: String, query: [String: String]) async throws(HubError)
        -> Response
    {
        guard principal.role == .admin else { throw .forbidden("only admins read the audit log") }
        guard ChannelName.isValidID(examID) else { throw .notFound("no exam \(examID.prefix(128))") }
        guard principal.mayAccessExam(examID) else { throw .forbidden("this token is not valid for exam \(examID)") }
        guard try await services.directory.exam(tenant: principal.tenant, id: examID) != nil else {
            throw .notFound("no exam \(examID)")
        }
        var limit = 100
        if let raw = query["limit"] {
            guard let n = Int(raw), (1...1000).contains(n) else { throw .badRequest("limit must be an integer in 1...1000") }
            limit = n
        }
        let attemptID = query["attemptId"]
        if let attemptID, !ChannelName.isValidID(attemptID) { throw .badRequest("attemptId is not a valid attempt id") }
        let entries = try await services.store.auditLog(
            tenant: principal.tenant, examID: examID, attemptID: attemptID, limit: limit)
        return Response(
            status: .ok, body: .object(["entries": .array(entries.map { .object(StoreCoding.auditPayload($0)) })]))
    }

    /// `GET /v1/exams/{id}/report` (admin): the analytics worker's roll-ups for the exam (attempts by outcome,
    /// time to submit, saves, flags, interventions, assistant turns, LLM tokens) and how far behind they are.
    private func getReport(_ principal: Principal, examID: String) async throws(HubError) -> Response {
        guard principal.role == .admin else { throw .forbidden("only admins read exam reports") }
        guard ChannelName.isValidID(examID) else { throw .notFound("no exam \(examID.prefix(128))") }
        guard principal.mayAccessExam(examID) else { throw .forbidden("this token is not valid for exam \(examID)") }
        guard try await services.directory.exam(tenant: principal.tenant, id: examID) != nil else {
            throw .notFound("no exam \(examID)")
        }
        let stats = try await services.store.examStats(tenant: principal.tenant, examID: examID)
        let backlog = try? await services.store.outboxBacklog(.analytics)
        let now = WallClock.nowMillis()
        return Response(status: .ok, body: ExamReport(examID: examID, stats: stats).json(generatedAtMillis: now, backlog: backlog))
    }

    /// `a=1&b=x%20y` as a dictionary (percent-decoded; the last of a repeated key wins).
    static func queryItems(_ query: String?) -> [String: String] {
        guard let query, !query.isEmpty else { return [:] }
        var out: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let k = kv.first.map(String.init).flatMap(percentDecoded), !k.isEmpty else { continue }
            out[k] = kv.count > 1 ? percentDecoded(String(kv[1])) ?? "" : ""
        }
        return out
    }

    static func percentDecoded(_ s: String) -> String? {
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else {
                    return nil
                }
                bytes.append(v)
                it = it.dropFirst(2)
            } else {
                bytes.append(b == UInt8(ascii: "+") ? 0x20 : b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func attemptJSON(_ a: AttemptSnapshot) -> JSONValue {
        var answers: [String: JSONValue] = [:]
        for (qid, answer) in a.answers {
            answers[qid] = .object([
                "value": answer.value, "version": .int(answer.version),
                "savedAt": .string(Timestamp.format(millis: answer.savedAtMillis)),
            ])
        }
        var o: [String: JSONValue] = [
            "id": .string(a.id), "examId": .string(a.examID), "tenant": .string(a.tenant),
            "candidate": .string(a.candidate), "state": .string(a.clock.state.rawValue),
            "deadline": .string(Timestamp.format(millis: a.clock.deadlineMillis)),
            "startedAt": .string(Timestamp.format(millis: a.startedMillis)), "answers": .object(answers),
            "flags": .array([]), "risk": .int(0),
        ]
        if let reason = a.clock.reason { o["reason"] = .string(reason.rawValue) }
        if let closed = a.clock.closedAtMillis { o["submittedAt"] = .string(Timestamp.format(millis: closed)) }
        return .object(o)
    }
}
