import ArgumentParser
import ExamHubAuth
import ExamHubDomain
import Foundation

/// `examhub token`: prints an HS256 JWT signed with `EXAMHUB_JWT_SECRET`.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Print a JWT signed with EXAMHUB_JWT_SECRET.")

    @Option(help: "candidate, proctor, admin or service.") var role: String
    @Option(help: "The user id (sub claim).") var sub: String
    @Option(help: "The tenant claim.") var tenant: String
    @Option(name: .customLong("exam"), help: "Limit the token to this exam (repeatable).") var exams: [String] = []
    @Option(help: "Seconds until the token expires.") var ttl: Int = 3600
    @Option(help: "The HS256 secret (default: EXAMHUB_JWT_SECRET).") var secret: String?

    func run() async throws {
        guard let role = Role(rawValue: role) else {
            throw ValidationError("--role must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard ttl > 0 else { throw ValidationError("--ttl must be positive") }
        guard ChannelName.isValidID(tenant) else { throw ValidationError("--tenant must be 1-128 of [A-Za-z0-9_.-]") }
        guard let key = secret ?? Environment()["EXAMHUB_JWT_SECRET"] else {
            throw ValidationError("set EXAMHUB_JWT_SECRET (or pass --secret)")
        }
        let minter = try await TokenMinter(secret: key)
        let token = try await minter.mint(
            sub: sub, tenant: tenant, role: role, exams: exams.isEmpty ? nil : exams, ttlSeconds: ttl)
        print(token)
    }
}
