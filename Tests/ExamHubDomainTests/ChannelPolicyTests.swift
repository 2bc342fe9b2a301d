import ExamHubDomain
import Testing

@Suite struct ChannelPolicyTests {
    func principal(_ role: Role, user: String = "u1", tenant: String = "t1", exams: Set<String>? = nil) -> Principal {
        Principal(userID: user, tenant: tenant, role: role, exams: exams, expiresAt: 0)
    }

    func code(_ body: () throws(HubError) -> Void) -> HubError.Code? {
        do { try body(); return nil } catch { return error.code }
    }

    @Test func proctorChannelByRole() {
        for role in Role.allCases {
            let result = code { () throws(HubError) in
                try ChannelPolicy.authorizeSubscribe(principal(role), to: .examProctor("e1"), resource: nil)
            }
            #expect(result == (role == .candidate ? .forbidden : nil), "role \(role)")
        }
    }

    @Test func proctorChannelRespectsExamsClaim() {
        let p = principal(.proctor, exams: ["e1"])
        #expect(code { () throws(HubError) in try ChannelPolicy.authorizeSubscribe(p, to: .examProctor("e1"), resource: nil) } == nil)
        #expect(code { () throws(HubError) in try ChannelPolicy.authorizeSubscribe(p, to: .examProctor("e2"), resource: nil) } == .forbidden)
    }

    @Test func attemptChannel() {
        let mine = ChannelResource.attempt(tenant: "t1", examID: "e1", candidate: "u1")
        let theirs = ChannelResource.attempt(tenant: "t1", examID: "e1", candidate: "u2")
        let otherTenant = ChannelResource.attempt(tenant: "t2", examID: "e1", candidate: "u1")
        let ch = ChannelName.attempt("a1")
        func check(_ p: Principal, _ r: ChannelResource?) -> HubError.Code? {
            code { () throws(HubError) in try ChannelPolicy.authorizeSubscribe(p, to: ch, resource: r) }
        }
        #expect(check(principal(.candidate), mine) == nil)
        #expect(check(principal(.candidate), theirs) == .forbidden)
        #expect(check(principal(.candidate), otherTenant) == .forbidden)
        #expect(check(principal(.candidate, exams: ["e2"]), mine) == .forbidden)
        #expect(check(principal(.candidate), .missing) == .notFound)
        #expect(check(principal(.candidate), nil) == .notFound)
        #expect(check(principal(.proctor), theirs) == nil)
        #expect(check(principal(.proctor, exams: ["e2"]), theirs) == .forbidden)
        #expect(check(principal(.proctor), otherTenant) == .forbidden)
        #expect(check(principal(.admin), theirs) == nil)
        #expect(check(principal(.admin, tenant: "t2"), theirs) == .forbidden)
        #expect(check(principal(.service), theirs) == nil)
    }

    @Test func chatChannelOwnerOnly() {
        let ch = ChannelName.chat("c1")
        func check(_ p: Principal, _ r: ChannelResource?) -> HubError.Code? {
            code { () throws(HubError) in try ChannelPolicy.authorizeSubscribe(p, to: ch, resource: r) }
        }
        let conv = ChannelResource.conversation(tenant: "t1", owner: "u1")
        #expect(check(principal(.candidate), conv) == nil)
        #expect(check(principal(.candidate, user: "u2"), conv) == .forbidden)
        #expect(check(principal(.admin, user: "u2"), conv) == .forbidden)
        #expect(check(principal(.candidate, tenant: "t2"), conv) == .forbidden)
        #expect(check(principal(.candidate), .missing) == .notFound)
    }

    @Test func publishOnlyServiceAndAdmin() {
        for role in Role.allCases {
            let result = code { () throws(HubError) in
                try ChannelPolicy.authorizePublish(principal(role), to: .examProctor("e1"), resource: nil)
            }
            #expect(result == ((role == .service || role == .admin) ? nil : .forbidden))
        }
        #expect(code { () throws(HubError) in try ChannelPolicy.authorizePublish(principal(.service, exams: ["e2"]), to: .examProctor("e1"), resource: nil) } == .forbidden)
    }

    @Test func publishOnAttemptsChecksTenantAndExams() {
        let attempt = ChannelResource.attempt(tenant: "t1", examID: "e1", candidate: "u1")
        func check(_ p: Principal, _ r: ChannelResource?) -> HubError.Code? {
            code { () throws(HubError) in try ChannelPolicy.authorizePublish(p, to: .attempt("a1"), resource: r) }
        }
        #expect(check(principal(.service), attempt) == nil)
        #expect(check(principal(.service, exams: ["e2"]), attempt) == .forbidden)
        #expect(check(principal(.admin, tenant: "t2"), attempt) == .forbidden)
        #expect(check(principal(.admin), .missing) == .notFound)
        #expect(check(principal(.proctor), attempt) == .forbidden)
        let chat = ChannelResource.conversation(tenant: "t1", owner: "u1")
        #expect(code { () throws(HubError) in try ChannelPolicy.authorizePublish(principal(.service), to: .chat("c1"), resource: chat) } == nil)
        #expect(code { () throws(HubError) in try ChannelPolicy.authorizePublish(principal(.service, tenant: "t2"), to: .chat("c1"), resource: chat) } == .forbidden)
    }

    @Test func needsResource() {
        #expect(ChannelPolicy.needsResource(.attempt("a")))
        #expect(ChannelPolicy.needsResource(.chat("c")))
        #expect(!ChannelPolicy.needsResource(.examProctor("e")))
    }
}
