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
        default: return false
        }
    }

    func handle(method: HTTPMethod, path: String, authorization: String?, body: [UInt8]) async -> Response {
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
        return Response(status: .ok, body: Self.attemptJSON(attempt))
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
