import ExamHubDomain
import JWTKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Signs HS256 development tokens (`examhub token`, and the tokens printed by `examhub serve` in dev mode).
public struct TokenMinter: Sendable {
    private let keys: JWTKeyCollection

    /// The shortest HS256 secret accepted: the size of the hash output (RFC 7518 section 3.2).
    public static let minimumSecretBytes = 32

    /// Throws when `secret` is too short for HS256.
    public static func checkSecret(_ secret: String) throws(HubError) {
        guard secret.utf8.count >= minimumSecretBytes else {
            throw HubError(.badRequest, "EXAMHUB_JWT_SECRET must be at least \(minimumSecretBytes) bytes")
        }
    }

    public init(secret: String) async throws(HubError) {
        try Self.checkSecret(secret)
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.keys = keys
    }

    /// A signed token for `sub` in `tenant` with `role`, valid for `ttlSeconds`, optionally limited to `exams`.
    public func mint(sub: String, tenant: String, role: Role, exams: [String]? = nil, ttlSeconds: Int) async throws
        -> String
    {
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let claims = ExamHubClaims(
            sub: sub, tenant: tenant, role: role, expiresAt: now.addingTimeInterval(TimeInterval(ttlSeconds)),
            exams: exams, issuedAt: now)
        return try await keys.sign(claims)
    }
}
