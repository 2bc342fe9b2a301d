import ExamHubDomain
import JWTKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Verifies bearer tokens into ``Principal``s: HS256 with a shared secret, and RS256/ES256 keys from a JWKS.
///
/// `alg: none`, unknown algorithms, wrong keys, expired and not-yet-valid tokens, malformed claims and (when
/// configured) a wrong issuer or audience are all refused with `unauthorized`. The reason is in `debugDetail`.
public final class TokenVerifier: Sendable {
    /// What to trust.
    public struct Configuration: Sendable {
        /// The HS256 secret, if HS256 tokens are accepted.
        public var hmacSecret: String?
        /// A JWKS document (JSON text) whose RS256/ES256 keys are accepted.
        public var jwksJSON: String?
        /// When set, the `iss` claim must equal it.
        public var issuer: String?
        /// When set, the `aud` claim must contain it.
        public var audience: String?

        public init(hmacSecret: String? = nil, jwksJSON: String? = nil, issuer: String? = nil, audience: String? = nil) {
            self.hmacSecret = hmacSecret
            self.jwksJSON = jwksJSON
            self.issuer = issuer
            self.audience = audience
        }
    }

    private let hmacKeys: JWTKeyCollection?
    private let jwksKeys: JWTKeyCollection?
    /// The `kid`s of the JWKS: a token naming another `kid` is refused, never tried against a default key.
    private let jwksKeyIDs: Set<String>
    private let configuration: Configuration

    /// Builds the key collections; throws when the JWKS cannot be read.
    public init(configuration: Configuration) async throws {
        self.configuration = configuration
        if let secret = configuration.hmacSecret {
            try TokenMinter.checkSecret(secret)
            let keys = JWTKeyCollection()
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            self.hmacKeys = keys
        } else {
            self.hmacKeys = nil
        }
        if let jwks = configuration.jwksJSON {
            let keys = JWTKeyCollection()
            try await keys.add(jwksJSON: jwks)
            self.jwksKeys = keys
            let parsed = try JSONDecoder().decode(JWKS.self, from: Data(jwks.utf8))
            self.jwksKeyIDs = Set(parsed.keys.compactMap { $0.keyIdentifier?.string })
        } else {
            self.jwksKeys = nil
            self.jwksKeyIDs = []
        }
    }

    /// Verifies `token` and returns who it is for.
    public func verify(_ token: String) async throws(HubError) -> Principal {
        guard token.utf8.count <= 8192 else { throw HubError(.unauthorized, "token too long") }
        let header = Self.header(token)
        let alg = header?.alg
        let keys: JWTKeyCollection?
        switch alg {
        case "HS256": keys = hmacKeys
        case "RS256", "RS384", "RS512", "ES256", "ES384", "ES512":
            if let kid = header?.kid, !jwksKeyIDs.contains(kid) {
                throw HubError(.unauthorized, "invalid token", debugDetail: "unknown kid")
            }
            keys = jwksKeys
        default: keys = nil
        }
        guard let keys else {
            throw HubError(.unauthorized, "invalid token", debugDetail: "algorithm \(alg ?? "?") not accepted")
        }
        let claims: ExamHubClaims
        do {
            claims = try await keys.verify(token, as: ExamHubClaims.self)
        } catch let error as JWTError where error.errorType == .claimVerificationFailure {
            throw HubError(.unauthorized, "token expired or not yet valid", debugDetail: "\(error)")
        } catch {
            throw HubError(.unauthorized, "invalid token", debugDetail: "\(error)")
        }
        if let issuer = configuration.issuer, claims.iss?.value != issuer {
            throw HubError(.unauthorized, "invalid token", debugDetail: "wrong issuer")
        }
        if let audience = configuration.audience, !(claims.aud?.value.contains(audience) ?? false) {
            throw HubError(.unauthorized, "invalid token", debugDetail: "wrong audience")
        }
        guard let role = Role(rawValue: claims.role) else {
            throw HubError(.unauthorized, "invalid token", debugDetail: "unknown role")
        }
        guard !claims.sub.value.isEmpty, !claims.tenant.isEmpty, claims.sub.value.utf8.count <= 256,
            ChannelName.isValidID(claims.tenant)
        else {
            throw HubError(.unauthorized, "invalid token", debugDetail: "empty or invalid sub or tenant")
        }
        return Principal(
            userID: claims.sub.value, tenant: claims.tenant, role: role,
            exams: claims.exams.map(Set.init),
            expiresAt: Int64(claims.exp.value.timeIntervalSince1970.rounded(.down)))
    }

    /// A token's header, read without trusting it (only to pick the key set).
    static func header(_ token: String) -> JWTHeader? {
        guard let dot = token.firstIndex(of: ".") else { return nil }
        var b64 = String(String(token[..<dot]).map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while b64.count % 4 != 0 { b64.append("=") }
        guard let data = Data(base64Encoded: b64),
            let header = try? JSONDecoder().decode(JWTHeader.self, from: data)
        else { return nil }
        return header
    }
}
