import ExamHubAuth
import ExamHubDomain
import Foundation
import Testing

@Suite struct TokenVerifierTests {
    let secret = "test-secret-0123456789-0123456789-abcdef"

    func b64(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    @Test func acceptsMintedToken() async throws {
        let minter = try await TokenMinter(secret: secret)
        let token = try await minter.mint(sub: "u1", tenant: "t1", role: .proctor, exams: ["e1"], ttlSeconds: 60)
        let verifier = try await TokenVerifier(configuration: .init(hmacSecret: secret))
        let p = try await verifier.verify(token)
        #expect(p.userID == "u1")
        #expect(p.tenant == "t1")
        #expect(p.role == .proctor)
        #expect(p.exams == ["e1"])
        #expect(abs(p.expiresAt - Int64(Date().timeIntervalSince1970) - 60) <= 2)
    }

    @Test func refusesWrongKeyExpiredAndNone() async throws {
        let verifier = try await TokenVerifier(configuration: .init(hmacSecret: secret))
        let other = try await TokenMinter(secret: "another-secret-0123456789-0123456789")
        let wrongKey = try await other.mint(sub: "u1", tenant: "t1", role: .admin, ttlSeconds: 60)
        await #expect(throws: HubError.self) { _ = try await verifier.verify(wrongKey) }

        let minter = try await TokenMinter(secret: secret)
        let good = try await minter.mint(sub: "u1", tenant: "t1", role: .admin, ttlSeconds: 60)
        let parts = good.split(separator: ".")
        let noneHeader = b64(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
        await #expect(throws: HubError.self) { _ = try await verifier.verify("\(noneHeader).\(parts[1]).") }
        await #expect(throws: HubError.self) { _ = try await verifier.verify("\(noneHeader).\(parts[1])") }

        let expiredPayload = b64(Data(#"{"sub":"u1","tenant":"t1","role":"admin","exp":1000}"#.utf8))
        let header = b64(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        // Signed correctly but expired: sign by hand with the same key via the minter's algorithm is not exposed, so
        // tamper instead: a modified payload must fail the signature check.
        await #expect(throws: HubError.self) { _ = try await verifier.verify("\(header).\(expiredPayload).\(parts[2])") }
        await #expect(throws: HubError.self) { _ = try await verifier.verify("garbage") }
        await #expect(throws: HubError.self) { _ = try await verifier.verify("") }
    }

    @Test func refusesExpiredToken() async throws {
        let minter = try await TokenMinter(secret: secret)
        // Expiry is in whole seconds (issued-at is rounded down): a 3 s token lives 2 to 3 s.
        let token = try await minter.mint(sub: "u1", tenant: "t1", role: .candidate, ttlSeconds: 3)
        let verifier = try await TokenVerifier(configuration: .init(hmacSecret: secret))
        _ = try await verifier.verify(token)
        try await Task.sleep(for: .milliseconds(3200))
        do {
            _ = try await verifier.verify(token)
            Issue.record("expired token accepted")
        } catch {
            #expect(error.code == .unauthorized)
        }
    }

    @Test func refusesUnknownRoleAndBadTenant() async throws {
        // Tokens are checked after the signature: build them with the minter's key by signing claims of our own.
        let verifier = try await TokenVerifier(configuration: .init(hmacSecret: secret))
        let minter = try await TokenMinter(secret: secret)
        let bad = try await minter.mint(sub: "u1", tenant: "bad tenant", role: .candidate, ttlSeconds: 60)
        await #expect(throws: HubError.self) { _ = try await verifier.verify(bad) }
    }

    @Test func noKeysConfiguredRefusesEverything() async throws {
        let verifier = try await TokenVerifier(configuration: .init())
        let minter = try await TokenMinter(secret: secret)
        let token = try await minter.mint(sub: "u1", tenant: "t1", role: .candidate, ttlSeconds: 60)
        await #expect(throws: HubError.self) { _ = try await verifier.verify(token) }
    }

    @Test func issuerAndAudienceWhenConfigured() async throws {
        let verifier = try await TokenVerifier(configuration: .init(hmacSecret: secret, issuer: "https://idp"))
        let minter = try await TokenMinter(secret: secret)
        let token = try await minter.mint(sub: "u1", tenant: "t1", role: .candidate, ttlSeconds: 60)
        await #expect(throws: HubError.self) { _ = try await verifier.verify(token) }  // no iss claim
    }

    @Test func badJWKSIsAnError() async {
        await #expect(throws: (any Error).self) {
            _ = try await TokenVerifier(configuration: .init(jwksJSON: "{not json"))
        }
    }
}

@Suite struct SecretLengthTests {
    @Test func shortSecretsAreRefused() async {
        await #expect(throws: HubError.self) { _ = try await TokenMinter(secret: "short") }
        await #expect(throws: (any Error).self) { _ = try await TokenVerifier(configuration: .init(hmacSecret: "short")) }
    }
}
