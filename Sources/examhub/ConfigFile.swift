import ArgumentParser
import Foundation
import Yams

/// The configuration file: YAML mirroring every `EXAMHUB_*` variable, one key per variable, named as the variable
/// without its prefix, in lower case (`EXAMHUB_MAX_MESSAGE_BYTES` is `max_message_bytes`). Lists are allowed where
/// the variable is comma-separated (`allowed_origins`). Given by `--config` or `EXAMHUB_CONFIG`; variables set in the
/// environment win over the file, and flags win over both.
///
/// ```yaml
/// host: 0.0.0.0
/// port: 8080
/// database_url: postgres://examhub:secret@db:5432/examhub
/// allowed_origins: [https://exams.example.edu]
/// telemetry_retention_days: 90
/// ```
enum ConfigFile {
    /// One setting: its variable, whether it is a secret (masked when printed) and what it means.
    struct Setting {
        var name: String
        var secret: Bool = false
        var help: String

        var key: String { String(name.dropFirst("EXAMHUB_".count)).lowercased() }
    }

    /// Every setting the hub reads, in the order `config check` prints them.
    static let settings: [Setting] = [
        .init(name: "EXAMHUB_HOST", help: "listen host"),
        .init(name: "EXAMHUB_PORT", help: "listen port (0: any free port)"),
        .init(name: "EXAMHUB_DATABASE_URL", secret: true, help: "sqlite:// or postgres:// URL"),
        .init(name: "EXAMHUB_DEV", help: "1: dev mode"),
        .init(name: "EXAMHUB_JWT_SECRET", secret: true, help: "HS256 secret"),
        .init(name: "EXAMHUB_JWKS", help: "JWKS file"),
        .init(name: "EXAMHUB_JWT_ISSUER", help: "required iss"),
        .init(name: "EXAMHUB_JWT_AUDIENCE", help: "required aud"),
        .init(name: "EXAMHUB_ALLOWED_ORIGINS", help: "allowed Origins, comma-separated"),
        .init(name: "EXAMHUB_MAX_MESSAGE_BYTES", help: "largest message"),
        .init(name: "EXAMHUB_AUTH_TIMEOUT", help: "seconds to authenticate"),
        .init(name: "EXAMHUB_HEARTBEAT_SEC", help: "seconds between pings"),
        .init(name: "EXAMHUB_RATE_LIMIT", help: "messages per second per socket"),
        .init(name: "EXAMHUB_RATE_BURST", help: "burst of the rate limit"),
        .init(name: "EXAMHUB_RATE_CLOSE_AFTER", help: "strikes before close 4008"),
        .init(name: "EXAMHUB_MAX_CONNECTIONS", help: "open sockets per node"),
        .init(name: "EXAMHUB_MAX_CONNECTIONS_PER_IP", help: "open sockets per IP (0: no limit)"),
        .init(name: "EXAMHUB_MAX_SUBSCRIPTIONS", help: "channels per socket"),
        .init(name: "EXAMHUB_HISTORY_SIZE", help: "events kept per channel"),
        .init(name: "EXAMHUB_HISTORY_AGE_SEC", help: "seconds events are kept"),
        .init(name: "EXAMHUB_WRITE_LOW", help: "outbound low water mark"),
        .init(name: "EXAMHUB_WRITE_HIGH", help: "outbound high water mark"),
        .init(name: "EXAMHUB_MAX_OUTBOUND", help: "unsent bytes before close 1008"),
        .init(name: "EXAMHUB_SLOW_CONSUMER_SEC", help: "seconds above the high mark before close 1008"),
        .init(name: "EXAMHUB_HEADER_TIMEOUT", help: "seconds to send a complete HTTP request"),
        .init(name: "EXAMHUB_DRAIN_SEC", help: "seconds the drain waits after the last 1001"),
        .init(name: "EXAMHUB_DRAIN_SPREAD_SEC", help: "seconds the 1001 closes are spread over (0: all at once)"),
        .init(name: "EXAMHUB_THREADS", help: "event loop threads"),
        .init(name: "EXAMHUB_MALLOC_TRIM_SEC", help: "seconds between returns of freed heap memory to the system (0: never)"),
        .init(name: "EXAMHUB_COMMIT_MAX_BATCH", help: "saves per group commit"),
        .init(name: "EXAMHUB_COMMIT_WINDOW_MS", help: "extra wait before a commit"),
        .init(name: "EXAMHUB_TELEMETRY_RATE", help: "telemetry frames per second per attempt"),
        .init(name: "EXAMHUB_TELEMETRY_BURST", help: "burst of the telemetry limit"),
        .init(name: "EXAMHUB_TELEMETRY_FLUSH_MS", help: "evidence write interval"),
        .init(name: "EXAMHUB_TELEMETRY_RETENTION_DAYS", help: "days evidence is kept"),
        .init(name: "EXAMHUB_CLUSTER", help: "1: share channels with other nodes (PostgreSQL only)"),
        .init(name: "EXAMHUB_CLUSTER_HEARTBEAT_SEC", help: "seconds between a node's heartbeats"),
        .init(name: "EXAMHUB_TLS_CERT", help: "TLS certificate chain (PEM)"),
        .init(name: "EXAMHUB_TLS_KEY", help: "TLS private key (PEM)"),
        .init(name: "EXAMHUB_TRUSTED_PROXIES", help: "proxies whose Forwarded/X-Forwarded-For is believed"),
        .init(name: "EXAMHUB_COMPRESSION", help: "on/off: permessage-deflate"),
        .init(name: "EXAMHUB_COMPRESSION_WINDOW_BITS", help: "largest deflate window (9-15)"),
        .init(name: "EXAMHUB_COMPRESSION_MIN_BYTES", help: "smallest message compressed"),
        .init(name: "EXAMHUB_COMPRESSION_MEMORY_MB", help: "memory for clients' compression contexts"),
        .init(name: "EXAMHUB_COMPRESSION_CHANNELS", help: "channel kinds whose events are compressed"),
        .init(name: "EXAMHUB_PROFILES_DIR", help: "extra proctoring profiles"),
        .init(name: "EXAMHUB_INTENTS_DIR", help: "the assistant's intent files"),
        .init(name: "EXAMHUB_LLM_CONFIG", help: "LLM provider chain (YAML)"),
        .init(name: "EXAMHUB_LLM_URL", help: "first LLM provider URL"),
        .init(name: "EXAMHUB_LLM_MODEL", help: "first LLM provider model"),
        .init(name: "EXAMHUB_LLM_API_KEY", secret: true, help: "first LLM provider key"),
        .init(name: "EXAMHUB_WORKERS", help: "outbox workers run by serve: all, none, or a list"),
        .init(name: "EXAMHUB_NOTIFICATIONS", help: "webhooks and email templates per tenant (YAML)"),
        .init(name: "EXAMHUB_MAIL_URL", help: "mail API base URL (SendGrid v3 format)"),
        .init(name: "EXAMHUB_MAIL_API_KEY", secret: true, help: "mail API key"),
        .init(name: "EXAMHUB_MAIL_FROM", help: "sender address of notification mail"),
        .init(name: "EXAMHUB_OUTBOX_BATCH", help: "events a worker claims at once"),
        .init(name: "EXAMHUB_OUTBOX_POLL_MS", help: "idle worker poll interval"),
        .init(name: "EXAMHUB_OUTBOX_LEASE_SEC", help: "seconds a claim holds"),
        .init(name: "EXAMHUB_OUTBOX_MAX_ATTEMPTS", help: "tries before an event is parked as dead"),
        .init(name: "EXAMHUB_OUTBOX_RETRY_BASE_MS", help: "first retry wait"),
        .init(name: "EXAMHUB_OUTBOX_RETENTION_DAYS", help: "days finished events are kept"),
        .init(name: "EXAMHUB_NOTIFY_CONCURRENCY", help: "deliveries in flight per notification worker"),
        .init(name: "EXAMHUB_WEBHOOK_TIMEOUT_SEC", help: "seconds per webhook or mail request"),
        .init(name: "EXAMHUB_WORKER_METRICS_PORT", help: "examhub worker: port of /metrics and /healthz"),
        .init(name: "EXAMHUB_OTLP_ENDPOINT", help: "OTLP/HTTP collector URL: turns tracing on"),
        .init(name: "EXAMHUB_OTLP_PROTOCOL", help: "http/protobuf or http/json"),
        .init(name: "EXAMHUB_OTLP_SERVICE_NAME", help: "service.name of the spans"),
        .init(name: "EXAMHUB_OTLP_EXPORT_MS", help: "span batch export interval"),
        .init(name: "EXAMHUB_LOG_LEVEL", help: "log level"),
        .init(name: "EXAMHUB_LOG_JSON", help: "1: JSON log lines"),
    ]

    /// Settings that are comma-separated lists, which the file may also write as YAML lists.
    static let listSettings: Set<String> = [
        "EXAMHUB_ALLOWED_ORIGINS", "EXAMHUB_TRUSTED_PROXIES", "EXAMHUB_COMPRESSION_CHANNELS",
    ]

    /// A problem in the file, with its line.
    struct Problem: Error, CustomStringConvertible {
        var file: String
        var line: Int
        var message: String
        var description: String { "\(file):\(line): \(message)" }
    }

    /// The file's settings as `EXAMHUB_*` variables. Throws every problem found, each with its line.
    static func load(path: String) throws -> [String: String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read the configuration file \(path)")
        }
        return try parse(text, file: path)
    }

    static func parse(_ text: String, file: String) throws -> [String: String] {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ProblemList([Problem(file: file, line: Self.line(of: error), message: "not valid YAML: \(error)")])
        }
        guard let node else { return [:] }  // an empty file sets nothing
        guard let mapping = node.mapping else {
            throw ProblemList([Problem(file: file, line: node.mark?.line ?? 1, message: "expected key: value lines")])
        }
        let byKey = Dictionary(uniqueKeysWithValues: settings.map { ($0.key, $0) })
        var out: [String: String] = [:]
        var problems: [Problem] = []
        for (keyNode, valueNode) in mapping {
            let line = keyNode.mark?.line ?? 1
            guard let key = keyNode.scalar?.string else {
                problems.append(Problem(file: file, line: line, message: "a key must be a plain name"))
                continue
            }
            guard let setting = byKey[key] else {
                problems.append(Problem(file: file, line: line, message: "unknown setting \"\(key)\""))
                continue
            }
            guard out[setting.name] == nil else {
                problems.append(Problem(file: file, line: line, message: "\"\(key)\" is set twice"))
                continue
            }
            switch valueNode {
            case .scalar(let scalar):
                out[setting.name] = scalar.string
            case .sequence(let items) where Self.listSettings.contains(setting.name):
                let values = items.compactMap { $0.scalar?.string }
                guard values.count == items.count else {
                    problems.append(Problem(file: file, line: line, message: "\"\(key)\" must be a list of strings"))
                    continue
                }
                out[setting.name] = values.joined(separator: ",")
            default:
                problems.append(Problem(file: file, line: line, message: "\"\(key)\" must be a single value"))
            }
        }
        guard problems.isEmpty else { throw ProblemList(problems) }
        return out
    }

    static func line(of error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return 1
        }
    }

    /// Several problems at once.
    struct ProblemList: Error, CustomStringConvertible {
        var problems: [Problem]
        init(_ problems: [Problem]) { self.problems = problems }
        var description: String { problems.map(\.description).joined(separator: "\n") }
    }

    /// `value` for printing: secrets masked, a database URL's password masked.
    static func shown(_ value: String, for setting: Setting) -> String {
        guard setting.secret else { return value }
        if setting.name == "EXAMHUB_DATABASE_URL" {
            // postgres://user:password@host/db -> postgres://user:****@host/db
            guard let scheme = value.range(of: "://"), let at = value.range(of: "@", range: scheme.upperBound..<value.endIndex),
                let colon = value.range(of: ":", range: scheme.upperBound..<at.lowerBound)
            else { return value }
            return String(value[..<colon.upperBound]) + "****" + String(value[at.lowerBound...])
        }
        return value.isEmpty ? "" : "****"
    }
}

extension Environment {
    /// The process environment on top of the configuration file (`path`, else `EXAMHUB_CONFIG`, if any).
    static func resolved(configFile path: String? = nil) throws -> Environment {
        let process = ProcessInfo.processInfo.environment
        guard let file = path ?? process["EXAMHUB_CONFIG"].flatMap({ $0.isEmpty ? nil : $0 }) else {
            return Environment(process)
        }
        let fromFile: [String: String]
        do {
            fromFile = try ConfigFile.load(path: file)
        } catch let problems as ConfigFile.ProblemList {
            throw ValidationError("the configuration file has problems:\n\(problems.description)")
        }
        return Environment(fromFile.merging(process.filter { !$0.value.isEmpty }) { _, env in env })
    }
}
