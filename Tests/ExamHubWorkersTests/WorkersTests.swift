import ExamHubDomain
import ExamHubStore
import ExamHubWorkers
import Testing

/// The pure parts of the workers: backoff, signatures, notification rules and templates, roll-ups and the report.
@Suite struct WorkersTests {
    @Test func backoffDoublesUpToItsCapWithJitterAndParksAfterTheLimit() {
        let policy = RetryPolicy(baseMillis: 1000, maxDelayMillis: 60_000, maxAttempts: 5)
        #expect(policy.cap(afterAttempts: 1) == 1000)
        #expect(policy.cap(afterAttempts: 2) == 2000)
        #expect(policy.cap(afterAttempts: 4) == 8000)
        #expect(policy.cap(afterAttempts: 30) == 60_000)
        #expect(policy.cap(afterAttempts: 1000) == 60_000, "no overflow")
        var rng = SystemRandomNumberGenerator()
        for attempts in 1...4 {
            let t = policy.nextTry(afterAttempts: attempts, now: 0, using: &rng)
            let cap = policy.cap(afterAttempts: attempts)
            #expect(t.map { $0 >= cap / 2 && $0 <= cap } == true)
        }
        let draws = (0..<200).compactMap { _ in policy.nextTry(afterAttempts: 3, now: 10, using: &rng) }
        #expect(draws.allSatisfy { $0 >= 2010 && $0 <= 4010 }, "at least half the cap after the start, at most the cap")
        #expect(Set(draws).count > 20, "jittered")
        #expect(policy.nextTry(afterAttempts: 5, now: 0) == nil)
    }

    @Test func signaturesVerifyOnlyTheExactBodySecretAndFreshTime() {
        let body = Array(#"{"id":"ev_1"}"#.utf8)
        let header = WebhookSignature.header(secret: "s3cret-0123456789", timestamp: 1_700_000_000, body: body)
        #expect(header.hasPrefix("t=1700000000,v1="))
        // HMAC-SHA256 keyed "s3cret-0123456789" over `1700000000.{"id":"ev_1"}`, computed independently with Python's hmac.
        #expect(header == "t=1700000000,v1=54d968567572379bd86c01995a3a94c7b41311e8058fb1b8e1e8c18391a65e4f")
        #expect(WebhookSignature.hex(secret: "key", timestamp: 1, body: Array("x".utf8))
            == "fc4913c41a7bf793267e2a384f3261c9436ec2cd097bd745e7b0d99113f510ec")
        #expect(WebhookSignature.verify(header: header, secret: "s3cret-0123456789", body: body, now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: header, secret: "other-secret-000000", body: body, now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: header, secret: "s3cret-0123456789", body: body + [32], now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: header, secret: "s3cret-0123456789", body: body, now: 1_700_001_000))
        #expect(!WebhookSignature.verify(header: "garbage", secret: "s3cret-0123456789", body: body, now: 1_700_000_000))
    }

    @Test func rulesPickWebhooksAndTheTenantsOwnTemplatesFirst() throws {
        let yaml = """
            tenants:
              "*":
                webhooks:
                  - url: https://platform.example/hook
                    secret: platform-secret-0001
                email:
                  - event: attempt.submitted
                    to: "{{candidate}}"
                    subject: "Default receipt {{examTitle}}"
                    text: "t"
              t1:
                webhooks:
                  - url: http://lms.t1.example/hook
                    secret_env: T1_SECRET
                    events: [flag.raised]
                email:
                  - event: attempt.submitted
                    to: [office@t1.example, "{{candidate}}"]
                    subject: "T1 receipt for {{ candidate }}"
                    text: "Exam {{examTitle}} at {{at}}"
                  - event: flag.raised
                    when: {severity: critical}
                    to: proctors@t1.example
                    subject: "{{code}}"
                    text: "x"
            """
        let rules = try NotificationRules.parse(yaml, file: "n.yaml", environment: ["T1_SECRET": "t1-secret-0123456789"])
        let flag = OutboxEvent(id: "ev1", tenant: "t1", type: "flag.raised", atMillis: 0, payload: .object([:]))
        #expect(rules.webhooks(for: flag).map(\.url) == ["https://platform.example/hook", "http://lms.t1.example/hook"])
        var join = flag
        join.type = "attempt.joined"
        #expect(rules.webhooks(for: join).map(\.url) == ["https://platform.example/hook"])
        #expect(rules.emailRules(forTenant: "t1", type: "attempt.submitted").map(\.subject) == ["T1 receipt for {{ candidate }}"])
        #expect(rules.emailRules(forTenant: "t2", type: "attempt.submitted").map(\.subject) == ["Default receipt {{examTitle}}"])
        #expect(rules.emailRules(forTenant: "t1", type: "flag.raised")[0].when == ["severity": "critical"])
        #expect(rules.sendsEmail && !rules.isEmpty)
        #expect(NotificationRules.render("Hi {{ candidate }}, {{missing}}!", ["candidate": "Ann"]) == "Hi Ann, !")
        #expect(NotificationRules.render("unclosed {{x", ["x": "1"]) == "unclosed {{x")
        #expect(NotificationRules.isAddress("a@b.example") && !NotificationRules.isAddress("u1") && !NotificationRules.isAddress("a b@c.d"))
    }

    @Test func badRulesReportEveryProblemWithItsLine() {
        let yaml = """
            tenants:
              t1:
                webhooks:
                  - url: ftp://x
                    secret: short
                  - url: https://ok.example
                    secret_env: NOT_SET
                surprise: 1
                email:
                  - event: nope
                    to: a@b.c
                    subject: s
                    text: t
                  - event: llm.usage
                    to: a@b.c
                    subject: "{{candidate}}"
                    text: t
            """
        do {
            _ = try NotificationRules.parse(yaml, file: "n.yaml", environment: [:])
            Issue.record("expected problems")
        } catch {
            let lines = error.issues.map(\.description)
            #expect(lines.contains { $0.hasPrefix("n.yaml:4: a webhook needs 'url'") })
            #expect(lines.contains { $0.hasPrefix("n.yaml:7: secret_env: the variable NOT_SET is not set") })
            #expect(lines.contains { $0.hasPrefix("n.yaml:8: unknown key 'surprise'") })
            #expect(lines.contains { $0.hasPrefix("n.yaml:10: an email rule needs 'event'") })
            #expect(lines.contains { $0.hasPrefix("n.yaml:16: subject: {{candidate}} is not a field of llm.usage") })
        }
        do {
            _ = try NotificationRules.parse("tenants: [1, 2", file: "b.yaml", environment: [:])
            Issue.record("expected a syntax error")
        } catch {
            #expect(error.issues.first?.message.hasPrefix("YAML syntax") == true)
        }
    }

    @Test func rollupsAndTheReport() {
        let attempts = ["a1": RollupAttempt(examID: "e1", startedMillis: 0, submittedMillis: 1_000_000)]
        func ev(_ type: String, _ payload: [String: JSONValue]) -> OutboxEvent {
            OutboxEvent(id: type, tenant: "t1", type: type, atMillis: 1_000_000, payload: .object(payload))
        }
        let events = [
            ev("attempt.joined", ["attemptId": .string("a1"), "examId": .string("e1"), "candidate": .string("u1")]),
            ev("answers.saved", ["attemptId": .string("a1"), "count": .int(4)]),
            ev("answers.saved", ["attemptId": .string("a-unknown"), "count": .int(4)]),
            ev("attempt.submitted", ["attemptId": .string("a1"), "reason": .string("candidate")]),
            ev("flag.raised", ["attemptId": .string("a1"), "examId": .string("e1"), "code": .string("gaze_away"), "severity": .string("warning")]),
            ev("flag.raised", ["attemptId": .string("a1"), "examId": .string("e1"), "code": .string("gaze_away"), "severity": .string("warning")]),
            ev("proctor.action", ["examId": .string("e1"), "attemptId": .string("a1"), "action": .string("terminate")]),
            ev("chat.turn", ["conversationId": .string("cv1"), "source": .string("llm")]),
            ev("llm.usage", ["conversationId": .string("cv1"), "provider": .string("p"), "inputTokens": .int(10), "outputTokens": .int(3)]),
            ev("something.else", [:]),
        ]
        let stats = ExamRollup.merged(events.flatMap {
            ExamRollup.increments(for: $0, attempts: attempts, conversations: ["cv1": "e1"])
        })
        #expect(stats.first { $0.metric == "flags" }?.value == 2)
        #expect(stats.first { $0.metric == "saves" }?.value == 4, "an unknown attempt adds nothing")
        #expect(ExamRollup.bucketKey(seconds: 1000) == "1200" && ExamRollup.bucketKey(seconds: 99_999) == "inf")
        let report = ExamReport(examID: "e1", stats: stats).json(generatedAtMillis: 0, backlog: nil)
        // One attempt both submitted and then terminated (events are counted as they come): in_progress stays at 0.
        #expect(report["attempts"] == .object([
            "total": .int(1), "in_progress": .int(0), "submitted": .int(1), "terminated": .int(1),
            "submitted_by_candidate": .int(1), "timed_out": .int(0),
        ]))
        #expect(report["flags"] == .object(["gaze_away": .int(2)]))
        #expect(report["flagsBySeverity"] == .object(["warning": .int(2)]))
        #expect(report["interventions"] == .object(["terminate": .int(1)]))
        #expect(report["timeToSubmit"]?["p50Sec"] == .int(1200))
        #expect(report["assistant"]?["bySource"] == .object(["llm": .int(1)]))
        #expect(report["llm"]?["providers"] == .array([.object([
            "provider": .string("p"), "calls": .int(1), "inputTokens": .int(10), "outputTokens": .int(3),
        ])]))
    }
}
