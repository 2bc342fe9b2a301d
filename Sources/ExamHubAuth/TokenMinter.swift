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

    public init(secret: String) async {
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
