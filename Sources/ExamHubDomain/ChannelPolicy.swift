/// What the store knows about the resource behind a channel, looked up before a subscription is allowed.
public enum ChannelResource: Sendable, Hashable {
    /// An attempt: its tenant, exam and candidate.
    case attempt(tenant: String, examID: String, candidate: String)
    /// A chat conversation: its tenant and owner.
    case conversation(tenant: String, owner: String)
    /// Nothing by that identifier exists.
    case missing
}

/// Who may subscribe to or publish on which channel (PROTOCOL.md sections 1 and 4). Pure: no I/O.
public enum ChannelPolicy {
    /// Whether subscribing needs a store lookup first (`attempt` and `chat` channels do).
    public static func needsResource(_ channel: ChannelName) -> Bool {
        switch channel {
        case .attempt, .chat: true
        case .examProctor: false
        }
    }

    /// Decides whether `principal` may subscribe to `channel`, given the looked-up resource (ignored for
    /// `exam:<id>:proctor`, whose key is scoped to the principal's tenant). Throws `forbidden` or `not_found`.
    public static func authorizeSubscribe(
        _ principal: Principal, to channel: ChannelName, resource: ChannelResource?
    ) throws(HubError) {
        switch channel {
        case .examProctor(let examID):
            switch principal.role {
            case .proctor, .admin, .service:
                guard principal.mayAccessExam(examID) else {
                    throw .forbidden("this token is not valid for exam \(examID)")
                }
            case .candidate:
                throw .forbidden("candidates may not watch proctor channels")
            }
        case .attempt:
            guard case .attempt(let tenant, let examID, let candidate)? = resource else {
                throw .notFound("no such attempt")
            }
            guard tenant == principal.tenant else { throw .forbidden("attempt belongs to another tenant") }
            switch principal.role {
            case .candidate:
                guard candidate == principal.userID else { throw .forbidden("not your attempt") }
                guard principal.mayAccessExam(examID) else {
                    throw .forbidden("this token is not valid for exam \(examID)")
                }
            case .proctor, .admin, .service:
                guard principal.mayAccessExam(examID) else {
                    throw .forbidden("this token is not valid for exam \(examID)")
                }
            }
        case .chat:
            guard case .conversation(let tenant, let owner)? = resource else {
                throw .notFound("no such conversation")
            }
            guard tenant == principal.tenant else { throw .forbidden("conversation belongs to another tenant") }
            guard owner == principal.userID else { throw .forbidden("not your conversation") }
        }
    }

    /// Decides whether `principal` may publish an arbitrary event with the `publish` op (an addition to v1 for
    /// back-office services): only `service` and `admin` tokens, only in their tenant, and only on exams their
    /// token admits. Call it once with `resource: nil` before any lookup (role and exam-channel checks), and again
    /// with the looked-up resource for `attempt:` and `chat:` channels.
    public static func authorizePublish(_ principal: Principal, to channel: ChannelName, resource: ChannelResource?)
        throws(HubError)
    {
        switch principal.role {
        case .service, .admin:
            break
        case .candidate, .proctor:
            throw .forbidden("only service and admin tokens may publish")
        }
        switch channel {
        case .examProctor(let examID):
            guard principal.mayAccessExam(examID) else { throw .forbidden("this token is not valid for exam \(examID)") }
        case .attempt:
            guard let resource else { return }
            guard case .attempt(let tenant, let examID, _) = resource else { throw .notFound("no such attempt") }
            guard tenant == principal.tenant else { throw .forbidden("attempt belongs to another tenant") }
            guard principal.mayAccessExam(examID) else { throw .forbidden("this token is not valid for exam \(examID)") }
        case .chat:
            guard let resource else { return }
            guard case .conversation(let tenant, _) = resource else { throw .notFound("no such conversation") }
            guard tenant == principal.tenant else { throw .forbidden("conversation belongs to another tenant") }
        }
    }
}
