import AsyncHTTPClient
import ExamHubDomain
import ExamHubStore
import ExamHubWire
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Tracing

/// The notification worker: for each event, the signed webhooks and the emails its tenant's rules ask for.
///
/// An event succeeds when every delivery it needs succeeds (a 2xx answer); otherwise it is retried as a whole, so
/// a receiver may see an event more than once, always with the same `X-ExamHub-Event-Id` (at least once).
/// Requests are not redirected, time out after ``WorkerConfiguration/requestTimeoutSeconds``, and carry no
/// answer values: payloads hold ids and counts (schemas in `Protocols/schemas/outbox/`).
public final class NotificationProcessor: OutboxProcessor {
    public let worker = OutboxWorker.notifications
    let rules: NotificationRules
    let mail: MailSettings?
    let store: any Store
    let client: HTTPClient
    let configuration: WorkerConfiguration
    let logger: Logger

    /// `mail` is required when `rules` send email.
    public init(
        rules: NotificationRules, mail: MailSettings?, store: any Store, client: HTTPClient,
        configuration: WorkerConfiguration, logger: Logger
    ) {
        self.rules = rules
        self.mail = mail
        self.store = store
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    /// An HTTP client for deliveries: no redirects, bounded connect time.
    public static func makeClient(configuration: WorkerConfiguration) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow
        config.timeout = .init(connect: .seconds(min(5, configuration.requestTimeoutSeconds)))
        config.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(8, configuration.deliveryConcurrency)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    public func process(_ events: [OutboxEvent], owner: String, now: Int64) async -> OutboxBatchOutcome {
        if rules.isEmpty { return OutboxBatchOutcome(succeeded: events.map(\.id)) }
        var outcome = OutboxBatchOutcome()
        let context = LookupCache(store: store)
        await withTaskGroup(of: (String, String?).self) { group in
            var inFlight = 0
            for event in events {
                if inFlight >= configuration.deliveryConcurrency, let (id, error) = await group.next() {
                    inFlight -= 1
                    record(&outcome, id, error)
                }
                group.addTask { (event.id, await self.deliver(event, context: context)) }
                inFlight += 1
            }
            for await (id, error) in group { record(&outcome, id, error) }
        }
        return outcome
    }

    private func record(_ outcome: inout OutboxBatchOutcome, _ id: String, _ error: String?) {
        if let error { outcome.failed[id] = error } else { outcome.succeeded.append(id) }
    }

    /// Delivers one event everywhere it goes, in an `examhub.outbox.deliver` span; returns why it failed, or nil.
    func deliver(_ event: OutboxEvent, context: LookupCache) async -> String? {
        await withSpan("examhub.outbox.deliver", ofKind: .producer) { span in
            span.attributes["examhub.event.id"] = event.id
            span.attributes["examhub.event.type"] = event.type
            span.attributes["examhub.event.attempt"] = event.attempts
            let error = await deliverTraced(event, context: context)
            if let error { span.setStatus(SpanStatus(code: .error, message: error)) }
            return error
        }
    }

    private func deliverTraced(_ event: OutboxEvent, context: LookupCache) async -> String? {
        var errors: [String] = []
        let hooks = rules.webhooks(for: event)
        if !hooks.isEmpty {
            let body = Self.webhookBody(event)
            for hook in hooks {
                if let error = await postWebhook(hook, event: event, body: body) { errors.append(error) }
            }
        }
        let candidates = rules.emailRules(forTenant: event.tenant, type: event.type)
        if !candidates.isEmpty {
            let values = await variables(for: event, context: context)
            for rule in candidates where rule.when.allSatisfy({ values[$0.key] == $0.value }) {
                if let error = await sendMail(rule, event: event, values: values) { errors.append(error) }
            }
        }
        return errors.isEmpty ? nil : errors.joined(separator: "; ")
    }

    // MARK: Webhooks

    /// The webhook body: `{"id","type","version","tenant","at","data"}` (schema `Protocols/schemas/outbox/webhook.json`).
    static func webhookBody(_ event: OutboxEvent) -> [UInt8] {
        let body: JSONValue = .object([
            "id": .string(event.id), "type": .string(event.type), "version": .int(1), "tenant": .string(event.tenant),
            "at": .string(Timestamp.format(millis: event.atMillis)), "data": event.payload,
        ])
        return Array(body.jsonText.utf8)
    }

    func postWebhook(_ hook: NotificationRules.Webhook, event: OutboxEvent, body: [UInt8]) async -> String? {
        var request = HTTPClientRequest(url: hook.url)
        request.method = .POST
        let timestamp = Int64(Date().timeIntervalSince1970)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "ExamHub-Webhooks/1")
        request.headers.add(name: "X-ExamHub-Event-Id", value: event.id)
        request.headers.add(name: "X-ExamHub-Event-Type", value: event.type)
        request.headers.add(name: "X-ExamHub-Timestamp", value: String(timestamp))
        request.headers.add(
            name: "X-ExamHub-Signature", value: WebhookSignature.header(secret: hook.secret, timestamp: timestamp, body: body))
        request.body = .bytes(ByteBuffer(bytes: body))
        // W3C trace context (`traceparent`) of the delivery span, when tracing is on.
        InstrumentationSystem.instrument.inject(
            ServiceContext.current ?? .topLevel, into: &request.headers, using: HTTPHeadersInjector())
        return await send(request, what: "webhook \(Self.describe(hook.url))")
    }

    // MARK: Mail

    func sendMail(_ rule: NotificationRules.EmailRule, event: OutboxEvent, values: [String: String]) async -> String? {
        let recipients = rule.to.map { NotificationRules.render($0, values).trimmingCharacters(in: .whitespaces) }
            .filter(NotificationRules.isAddress)
        guard !recipients.isEmpty else {
            logger.debug("notification: no address to mail", metadata: ["examhub.event": "\(event.id)"])
            return nil
        }
        guard let mail else { return "mail: no mail API is configured (EXAMHUB_MAIL_URL)" }
        let body: JSONValue = .object([
            "personalizations": .array([
                .object(["to": .array(Array(Set(recipients)).sorted().map { .object(["email": .string($0)]) })])
            ]),
            "from": .object(["email": .string(mail.from)]),
            "subject": .string(NotificationRules.render(rule.subject, values)),
            "content": .array([
                .object(["type": .string("text/plain"), "value": .string(NotificationRules.render(rule.text, values))])
            ]),
            "custom_args": .object(["examhub_event_id": .string(event.id), "examhub_event_type": .string(event.type)]),
            "headers": .object(["X-ExamHub-Event-Id": .string(event.id)]),
        ])
        var request = HTTPClientRequest(url: mail.sendURL)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(mail.apiKey)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "ExamHub-Mail/1")
        request.body = .bytes(ByteBuffer(string: body.jsonText))
        return await send(request, what: "mail")
    }

    // MARK: Plumbing

    /// Sends a request; nil on a 2xx answer, otherwise a short reason (status or transport error, never headers).
    func send(_ request: HTTPClientRequest, what: String) async -> String? {
        do {
            let response = try await client.execute(request, timeout: .seconds(configuration.requestTimeoutSeconds))
            // Read (and drop) a bounded body so the connection can be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            if (200..<300).contains(response.status.code) { return nil }
            return "\(what): HTTP \(response.status.code)"
        } catch {
            return "\(what): \(Self.transportError(error))"
        }
    }

    static func transportError(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            if e == .deadlineExceeded || e == .readTimeout { return "timed out" }
            if e == .connectTimeout { return "connect timed out" }
            return "\(e)"
        }
        return String(describing: error).prefix(200).description
    }

    /// A URL for logs and errors: scheme, host and port only (paths may hold tokens).
    static func describe(_ url: String) -> String {
        guard let u = URL(string: url), let host = u.host else { return "(bad url)" }
        return "\(u.scheme ?? "http")://\(host)\(u.port.map { ":\($0)" } ?? "")"
    }

    /// The template variables of an event: its scalar fields, the common ones, and what the store says about its
    /// attempt and exam.
    func variables(for event: OutboxEvent, context: LookupCache) async -> [String: String] {
        var values: [String: String] = [
            "tenant": event.tenant, "eventId": event.id, "type": event.type,
            "at": Timestamp.format(millis: event.atMillis),
        ]
        for (key, value) in event.payload.objectValue ?? [:] {
            switch value {
            case .string(let s): values[key] = s
            case .int(let i): values[key] = String(i)
            case .double(let d): values[key] = String(d)
            case .bool(let b): values[key] = String(b)
            default: break
            }
        }
        if let attemptID = values["attemptId"], let attempt = await context.attempt(attemptID),
            attempt.tenant == event.tenant
        {
            values["candidate"] = attempt.candidate
            values["examId"] = attempt.examID
            if let exam = await context.exam(tenant: attempt.tenant, id: attempt.examID) {
                values["examTitle"] = exam.title
            }
        }
        return values
    }
}

/// Attempts and exams looked up once per batch.
actor LookupCache {
    let store: any Store
    private var attempts: [String: AttemptSnapshot?] = [:]
    private var exams: [String: ExamDefinition?] = [:]

    init(store: any Store) { self.store = store }

    func attempt(_ id: String) async -> AttemptSnapshot? {
        if let cached = attempts[id] { return cached }
        let found = try? await store.attempt(id: id)
        attempts.updateValue(found, forKey: id)
        return found
    }

    func exam(tenant: String, id: String) async -> ExamDefinition? {
        let key = tenant + "\u{1}" + id
        if let cached = exams[key] { return cached }
        let found = try? await store.exam(tenant: tenant, id: id)
        exams.updateValue(found, forKey: key)
        return found
    }
}

/// Writes trace context (`traceparent`, `tracestate`) into outgoing request headers.
struct HTTPHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into headers: inout HTTPHeaders) {
        headers.replaceOrAdd(name: key, value: value)
    }
}
