import ExamHubDomain
import JWTKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The JWT claims ExamHub reads (PROTOCOL.md section 1): `sub`, `tenant`, `role`, `exp`, optional `exams`,
/// and the standard `nbf`, `iss` and `aud` when present.
public struct ExamHubClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var tenant: String
    public var role: String
    public var exp: ExpirationClaim
    public var exams: [String]?
    public var nbf: NotBeforeClaim?
    public var iss: IssuerClaim?
    public var aud: AudienceClaim?
    public var iat: IssuedAtClaim?

    public init(
        sub: String, tenant: String, role: Role, expiresAt: Date, exams: [String]? = nil, issuedAt: Date? = nil
    ) {
        self.sub = SubjectClaim(value: sub)
        self.tenant = tenant
        self.role = role.rawValue
        self.exp = ExpirationClaim(value: expiresAt)
        self.exams = exams
        self.iat = issuedAt.map { IssuedAtClaim(value: $0) }
    }

    /// Checks the time claims; the key collection has already checked the signature.
    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        try nbf?.verifyNotBefore()
    }
}
