/// How the outbox workers run. Every field has a documented default and an `EXAMHUB_*` variable (README).
public struct WorkerConfiguration: Sendable, Hashable {
    /// Events claimed at once (`EXAMHUB_OUTBOX_BATCH`, 100).
    public var batchSize: Int = 100
    /// How long an idle worker waits before looking again, in milliseconds (`EXAMHUB_OUTBOX_POLL_MS`, 200).
    public var pollMillis: Int64 = 200
    /// How long a claim holds before another worker may take the event over, in milliseconds
    /// (`EXAMHUB_OUTBOX_LEASE_SEC`, 60 s). Longer than the slowest batch: a webhook timeout times its tries.
    public var leaseMillis: Int64 = 60_000
    /// Retries and dead letters.
    public var retry = RetryPolicy()
    /// Deliveries in flight at once in the notification worker (`EXAMHUB_NOTIFY_CONCURRENCY`, 16).
    public var deliveryConcurrency: Int = 16
    /// Seconds a webhook or mail request may take (`EXAMHUB_WEBHOOK_TIMEOUT_SEC`, 10).
    public var requestTimeoutSeconds: Int64 = 10
    /// Days events done by every worker are kept before they are purged (`EXAMHUB_OUTBOX_RETENTION_DAYS`, 7).
    public var retentionDays: Int = 7
    /// How often the backlog gauges are refreshed, in milliseconds.
    public var backlogRefreshMillis: Int64 = 2000

    public init() {}
}

/// Where mail goes: an HTTP mail API in SendGrid's v3 `/v3/mail/send` format.
public struct MailSettings: Sendable, Hashable {
    /// Base URL, `https://api.sendgrid.com` or a compatible service (`EXAMHUB_MAIL_URL`).
    public var baseURL: String
    /// Bearer key (`EXAMHUB_MAIL_API_KEY`); never logged.
    public var apiKey: String
    /// Sender address (`EXAMHUB_MAIL_FROM`, `no-reply@examhub.invalid`).
    public var from: String

    public init(baseURL: String, apiKey: String, from: String) {
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.from = from
    }

    /// The send endpoint.
    public var sendURL: String {
        (baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL) + "/v3/mail/send"
    }
}
