import ExamHubDomain
import ExamHubStore
import Foundation
import Yams

/// Who hears about what: the notification worker's configuration, read from the YAML file named by
/// `EXAMHUB_NOTIFICATIONS`. Tenants are keys; `"*"` applies to every tenant.
///
/// ```yaml
/// tenants:
///   "*":
///     email:
///       - event: attempt.submitted          # a receipt to the candidate (when the candidate id is an address)
///         to: "{{candidate}}"
///         subject: "We have your answers to {{examTitle}}"
///         text: "Submitted at {{at}}. Reference {{eventId}}."
///   school-1:
///     webhooks:
///       - url: https://lms.school.example/hooks/examhub
///         secret_env: SCHOOL1_WEBHOOK_SECRET   # or `secret:`; signs X-ExamHub-Signature
///         events: [attempt.submitted, flag.raised]   # default: every event
///     email:
///       - event: flag.raised
///         when: { severity: critical }
///         to: [proctors@school.example]
///         subject: "Critical flag {{code}} for {{candidate}} in {{examTitle}}"
///         text: "Raised at {{at}} on attempt {{attemptId}}."
/// ```
///
/// Webhooks of `"*"` and of the tenant both receive the tenant's events. Email templates are chosen per event type:
/// when the tenant has any email rule for a type, its own rules are used for that type, otherwise those of `"*"`.
/// `{{name}}` placeholders take the event's fields and what the worker looks up (see ``variables(for:)``); a
/// placeholder a type does not know is an error at start.
public struct NotificationRules: Sendable, Hashable {
    /// A signed webhook.
    public struct Webhook: Sendable, Hashable {
        public var url: String
        public var secret: String
        /// Event types sent; nil means every type.
        public var events: Set<String>?

        public init(url: String, secret: String, events: Set<String>?) {
            self.url = url
            self.secret = secret
            self.events = events
        }
    }

    /// An email template for one event type.
    public struct EmailRule: Sendable, Hashable {
        public var event: String
        /// Field equality conditions, all of which must hold.
        public var when: [String: String]
        /// Recipient templates; rendered values without `@` are skipped.
        public var to: [String]
        public var subject: String
        public var text: String

        public init(event: String, when: [String: String] = [:], to: [String], subject: String, text: String) {
            self.event = event
            self.when = when
            self.to = to
            self.subject = subject
            self.text = text
        }
    }

    /// What one tenant (or `"*"`) has configured.
    public struct TenantRules: Sendable, Hashable {
        public var webhooks: [Webhook]
        public var email: [EmailRule]

        public init(webhooks: [Webhook] = [], email: [EmailRule] = []) {
            self.webhooks = webhooks
            self.email = email
        }
    }

    public var tenants: [String: TenantRules]

    public init(tenants: [String: TenantRules] = [:]) {
        self.tenants = tenants
    }

    /// True when nothing is configured (the worker then only marks events done).
    public var isEmpty: Bool { tenants.values.allSatisfy { $0.webhooks.isEmpty && $0.email.isEmpty } }

    /// True when some email rule exists (a mail API must then be configured).
    public var sendsEmail: Bool { tenants.values.contains { !$0.email.isEmpty } }

    /// The webhooks an event goes to.
    public func webhooks(for event: OutboxEvent) -> [Webhook] {
        let all = (tenants["*"]?.webhooks ?? []) + (event.tenant == "*" ? [] : tenants[event.tenant]?.webhooks ?? [])
        return all.filter { $0.events?.contains(event.type) ?? true }
    }

    /// The email rules that could apply to an event's type (conditions not yet checked).
    public func emailRules(forTenant tenant: String, type: String) -> [EmailRule] {
        let own = tenants[tenant]?.email.filter { $0.event == type } ?? []
        if !own.isEmpty { return own }
        return tenants["*"]?.email.filter { $0.event == type } ?? []
    }

    // MARK: Variables and templates

    /// The event types that exist, with the placeholders each knows besides `tenant`, `eventId`, `type` and `at`.
    public static let knownVariables: [String: Set<String>] = [
        "attempt.joined": ["attemptId", "examId", "examTitle", "candidate"],
        "answers.saved": ["attemptId", "count", "examId", "examTitle", "candidate"],
        "attempt.submitted": ["attemptId", "reason", "examId", "examTitle", "candidate"],
        "flag.raised": ["attemptId", "examId", "examTitle", "candidate", "code", "severity"],
        "proctor.action": [
            "id", "attemptId", "examId", "examTitle", "candidate", "actor", "actorRole", "action", "stateAfter",
            "deadlineAfter", "message", "reason", "minutes",
        ],
        "chat.turn": ["conversationId", "messageId", "source", "intent"],
        "llm.usage": ["conversationId", "provider", "model", "inputTokens", "outputTokens", "completed"],
    ]

    /// Placeholders every event type knows.
    public static let commonVariables: Set<String> = ["tenant", "eventId", "type", "at"]

    /// The placeholders an event type knows.
    public static func variables(for type: String) -> Set<String> {
        commonVariables.union(knownVariables[type] ?? [])
    }

    /// The `{{name}}` placeholders of a template.
    public static func placeholders(in template: String) -> [String] {
        var out: [String] = []
        var rest = template[...]
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            out.append(rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces))
            rest = rest[close.upperBound...]
        }
        return out
    }

    /// Fills a template's placeholders; unknown or missing values become empty text.
    public static func render(_ template: String, _ values: [String: String]) -> String {
        var out = ""
        var rest = template[...]
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            out += rest[..<open.lowerBound]
            out += values[rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)] ?? ""
            rest = rest[close.upperBound...]
        }
        out += rest
        return out
    }

    /// True when a rendered recipient looks like an address (one `@`, something on each side, no spaces).
    public static func isAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && !text.contains(where: \.isWhitespace)
            && text.utf8.count <= 254
    }
}

/// A problem in the notifications file, with its line.
public struct NotificationRulesIssue: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public var description: String { "\(file):\(line): \(message)" }
}

/// Every problem found in a notifications file (loading stops the start and prints them all).
public struct NotificationRulesError: Error, Sendable, CustomStringConvertible {
    public var issues: [NotificationRulesIssue]
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

extension NotificationRules {
    /// Reads and checks the file at `path`. `environment` resolves `secret_env`.
    public static func load(path: String, environment: [String: String]) throws(NotificationRulesError) -> NotificationRules {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw NotificationRulesError(issues: [.init(file: path, line: 1, message: "cannot read the file")])
        }
        return try parse(text, file: path, environment: environment)
    }

    /// Parses and checks a notifications file's text.
    public static func parse(_ text: String, file: String, environment: [String: String]) throws(NotificationRulesError)
        -> NotificationRules
    {
        var reader = RulesReader(file: file, environment: environment)
        let rules = reader.read(text)
        if !reader.issues.isEmpty { throw NotificationRulesError(issues: reader.issues) }
        return rules
    }
}

/// Walks the YAML nodes, collecting every problem with its line.
private struct RulesReader {
    let file: String
    let environment: [String: String]
    var issues: [NotificationRulesIssue] = []

    mutating func issue(_ node: Node?, _ message: String) {
        issues.append(.init(file: file, line: node?.mark?.line ?? 1, message: message))
    }

    mutating func read(_ text: String) -> NotificationRules {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else { return NotificationRules() }
            root = node
        } catch let error as YamlError {
            issues.append(.init(file: file, line: Self.line(of: error), message: "YAML syntax: \(error)"))
            return NotificationRules()
        } catch {
            issues.append(.init(file: file, line: 1, message: "YAML syntax: \(error)"))
            return NotificationRules()
        }
        guard let top = mapping(root, "the file", keys: ["tenants"]) else { return NotificationRules() }
        guard let tenantsNode = top["tenants"] else {
            issue(root, "missing 'tenants' (a mapping from tenant, or \"*\", to its webhooks and email)")
            return NotificationRules()
        }
        var rules = NotificationRules()
        guard case .mapping(let tenants) = tenantsNode else {
            issue(tenantsNode, "'tenants' must be a mapping from tenant to rules")
            return rules
        }
        for (key, value) in tenants {
            guard let tenant = key.scalar?.string, !tenant.isEmpty else {
                issue(key, "a tenant must be a name or \"*\"")
                continue
            }
            guard let fields = mapping(value, "tenant \(tenant)", keys: ["webhooks", "email"]) else { continue }
            var tenantRules = NotificationRules.TenantRules()
            if let hooks = fields["webhooks"] {
                for item in sequence(hooks, "webhooks") {
                    if let hook = webhook(item, tenant: tenant) { tenantRules.webhooks.append(hook) }
                }
            }
            if let email = fields["email"] {
                for item in sequence(email, "email") {
                    if let rule = emailRule(item) { tenantRules.email.append(rule) }
                }
            }
            rules.tenants[tenant] = tenantRules
        }
        return rules
    }

    mutating func webhook(_ node: Node, tenant: String) -> NotificationRules.Webhook? {
        guard let f = mapping(node, "a webhook", keys: ["url", "secret", "secret_env", "events"]) else { return nil }
        guard let url = f["url"]?.scalar?.string, let parsed = URL(string: url),
            ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil
        else {
            issue(f["url"] ?? node, "a webhook needs 'url': an http:// or https:// address")
            return nil
        }
        var secret = f["secret"]?.scalar?.string
        if let name = f["secret_env"]?.scalar?.string {
            guard let value = environment[name], !value.isEmpty else {
                issue(f["secret_env"], "secret_env: the variable \(name) is not set")
                return nil
            }
            secret = value
        }
        guard let secret, secret.utf8.count >= 16 else {
            issue(f["secret"] ?? f["secret_env"] ?? node, "a webhook needs 'secret' (or 'secret_env') of 16 characters or more")
            return nil
        }
        var events: Set<String>?
        if let list = f["events"] {
            var set = Set<String>()
            for item in sequence(list, "events") {
                guard let type = item.scalar?.string, NotificationRules.knownVariables[type] != nil else {
                    issue(item, "unknown event type '\(item.scalar?.string ?? "")' (expected one of: \(Self.types))")
                    continue
                }
                set.insert(type)
            }
            events = set
        }
        return .init(url: url, secret: secret, events: events)
    }

    mutating func emailRule(_ node: Node) -> NotificationRules.EmailRule? {
        guard let f = mapping(node, "an email rule", keys: ["event", "when", "to", "subject", "text"]) else { return nil }
        guard let event = f["event"]?.scalar?.string, NotificationRules.knownVariables[event] != nil else {
            issue(f["event"] ?? node, "an email rule needs 'event', one of: \(Self.types)")
            return nil
        }
        let known = NotificationRules.variables(for: event)
        var when: [String: String] = [:]
        if let whenNode = f["when"] {
            if case .mapping(let m) = whenNode {
                for (k, v) in m {
                    guard let name = k.scalar?.string, known.contains(name), let value = v.scalar?.string else {
                        issue(k, "'when' tests a field of \(event) for equality: \(k.scalar?.string ?? "?") is not one")
                        continue
                    }
                    when[name] = value
                }
            } else {
                issue(whenNode, "'when' must be a mapping of field: value")
            }
        }
        var to: [String] = []
        switch f["to"] {
        case .some(.scalar(let s)): to = [s.string]
        case .some(.sequence(let seq)): to = seq.compactMap { $0.scalar?.string }
        default: issue(f["to"] ?? node, "an email rule needs 'to': an address, a placeholder, or a list of them")
        }
        guard let subject = f["subject"]?.scalar?.string, !subject.isEmpty else {
            issue(f["subject"] ?? node, "an email rule needs 'subject'")
            return nil
        }
        guard let text = f["text"]?.scalar?.string, !text.isEmpty else {
            issue(f["text"] ?? node, "an email rule needs 'text'")
            return nil
        }
        for (field, template) in [("to", to.joined(separator: " ")), ("subject", subject), ("text", text)] {
            for name in NotificationRules.placeholders(in: template) where !known.contains(name) {
                issue(
                    f[field], "\(field): {{\(name)}} is not a field of \(event) (known: \(known.sorted().joined(separator: ", ")))")
            }
        }
        guard !to.isEmpty else { return nil }
        return .init(event: event, when: when, to: to, subject: subject, text: text)
    }

    static var types: String { NotificationRules.knownVariables.keys.sorted().joined(separator: ", ") }

    mutating func mapping(_ node: Node, _ what: String, keys: Set<String>) -> [String: Node]? {
        guard case .mapping(let m) = node else {
            issue(node, "\(what) must be a mapping")
            return nil
        }
        var out: [String: Node] = [:]
        for (k, v) in m {
            guard let name = k.scalar?.string, keys.contains(name) else {
                issue(k, "unknown key '\(k.scalar?.string ?? "?")' in \(what) (expected: \(keys.sorted().joined(separator: ", ")))")
                continue
            }
            out[name] = v
        }
        return out
    }

    mutating func sequence(_ node: Node, _ what: String) -> [Node] {
        guard case .sequence(let s) = node else {
            issue(node, "'\(what)' must be a list")
            return []
        }
        return Array(s)
    }

    static func line(of error: YamlError) -> Int {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        case .duplicatedKeysInMapping(_, let context): context.mark.line
        default: 1
        }
    }
}
