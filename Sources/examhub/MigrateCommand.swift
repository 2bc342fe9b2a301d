import ArgumentParser
import ExamHubDomain
import ExamHubStore
import Foundation
import Logging

/// `examhub migrate`: applies the schema to the configured database and lists what is applied.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply the schema migrations to EXAMHUB_DATABASE_URL.")

    @Option(help: "Database URL (EXAMHUB_DATABASE_URL, default sqlite://./.examhub/examhub.db).") var databaseURL: String?

    func run() async throws {
        let url = try DatabaseURL(parsing: databaseURL ?? Environment()["EXAMHUB_DATABASE_URL"] ?? DatabaseURL.defaultURL)
        // A PostgreSQL store runs its connection pool from the moment it is opened until `close()`.
        let store = try StoreFactory.open(url, logger: Logger(label: "examhub.migrate"))
        do {
            try await store.migrate()
            for name in try await store.appliedMigrations() { print("applied \(name)") }
        } catch {
            await store.close()
            let detail = error.debugDetail.map { " (\($0))" } ?? ""
            FileHandle.standardError.write(Data("examhub migrate: \(url): \(error)\(detail)\n".utf8))
            throw ExitCode.failure
        }
        await store.close()
    }
}
