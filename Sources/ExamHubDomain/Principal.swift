/// What a connection is allowed to be: the roles of PROTOCOL.md section 1.
public enum Role: String, Sendable, Hashable, CaseIterable, Codable {
    case candidate, proctor, admin, service
}

/// An authenticated user, built from verified JWT claims.
public struct Principal: Sendable, Hashable {
    /// The `sub` claim.
    public var userID: String
    /// The `tenant` claim.
    public var tenant: String
    /// The `role` claim.
    public var role: Role
    /// The `exams` claim: the exams this token is valid for, or `nil` for every exam of the tenant.
    public var exams: Set<String>?
    /// The `exp` claim, in seconds since 1970.
    public var expiresAt: Int64

    public init(userID: String, tenant: String, role: Role, exams: Set<String>? = nil, expiresAt: Int64) {
        self.userID = userID
        self.tenant = tenant
        self.role = role
        self.exams = exams
        self.expiresAt = expiresAt
    }

    /// Whether the token's `exams` claim (if any) admits `examID`.
    public func mayAccessExam(_ examID: String) -> Bool {
        guard let exams else { return true }
        return exams.contains(examID)
    }
}
