import ExamHubDomain
import ExamHubPostgres
import ExamHubStore
import Foundation
import Logging
import Testing

/// The two stores the contract suite runs every case against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

/// A store opened for one test, with what the test needs to look under it.
struct OpenedStore: Sendable {
    let backend: Backend
    let store: any Store
    /// The SQLite file, for `sqlite3`.
    let sqlitePath: String?
    /// The PostgreSQL server and database, for `psql` and for opening a second node.
    let server: PostgresServer?
    let database: String?

    /// Runs a query with the backend's command-line client; rows are `|`-separated lines.
    func sql(_ query: String) async throws -> String {
        switch backend {
        case .sqlite:
            guard let sqlitePath else { throw HarnessError("no SQLite file") }
            let out = sqlitePath + ".\(UUID().uuidString.prefix(8)).out"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let rc = await PostgresServer.runTool(
                ["sqlite3", "-batch", sqlitePath, query], asPostgresUser: false, in: "/tmp", log: out)
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            guard rc == 0 else { throw HarnessError("sqlite3 failed (exit \(rc)): \(text)") }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        case .postgres:
            guard let server, let database else { throw HarnessError("no PostgreSQL database") }
            return try await server.psql(database: database, query)
        }
    }

    /// The outbox as `type|count` lines, sorted by type.
    func outboxCounts() async throws -> [String: Int] {
        let text = try await sql("SELECT type, count(*) FROM outbox GROUP BY type ORDER BY type")
        var counts: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "|")
            if parts.count == 2, let n = Int(parts[1]) { counts[String(parts[0])] = n }
        }
        return counts
    }

    /// Another store on the same database: a second hub node (PostgreSQL only).
    func secondNode(options: PostgresStore.Options = .init()) throws -> PostgresStore {
        guard let server, let database else { throw HarnessError("a second node needs PostgreSQL") }
        return try PostgresStore(url: .postgres(server.url(database: database)), options: options, logger: testLogger)
    }
}

let testLogger: Logger = {
    var logger = Logger(label: "examhub.store-tests")
    // EXAMHUB_TEST_LOG=warning (or debug, trace) shows what the stores log, the SQL errors behind `internal` included.
    logger.logLevel = ProcessInfo.processInfo.environment["EXAMHUB_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

/// Opens a fresh, empty store of `backend` (migrated unless asked not to), runs `body`, and closes it whatever
/// happens. PostgreSQL stores get a new database on the shared test server.
func withStore(
    _ backend: Backend, migrated: Bool = true, options: PostgresStore.Options = .init(),
    _ body: (OpenedStore) async throws -> Void
) async throws {
    let opened: OpenedStore
    var cleanup: String?
    switch backend {
    case .sqlite:
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("examhub-contract-\(UUID().uuidString)")
        let path = dir.path + "/store.db"
        cleanup = dir.path
        opened = OpenedStore(
            backend: backend, store: try SQLiteStore(url: .sqlite(path: path), logger: testLogger), sqlitePath: path,
            server: nil, database: nil)
    case .postgres:
        let server = try await PostgresServer.shared.value
        let url = try await server.createDatabase()
        let name = String(url[url.index(after: url.lastIndex(of: "/") ?? url.startIndex)...])
        opened = OpenedStore(
            backend: backend, store: try PostgresStore(url: .postgres(url), options: options, logger: testLogger),
            sqlitePath: nil, server: server, database: name)
    }
    do {
        if migrated { try await opened.store.migrate() }
        try await body(opened)
    } catch {
        await opened.store.close()
        if let cleanup { try? FileManager.default.removeItem(atPath: cleanup) }
        throw error
    }
    await opened.store.close()
    if let cleanup { try? FileManager.default.removeItem(atPath: cleanup) }
}

/// Fixtures.
enum Fixture {
    static let t0: Int64 = 1_700_000_000_000

    static func exam(id: String = "e1", durationSec: Int = 600, graceSec: Int = 0) -> ExamDefinition {
        ExamDefinition(
            id: id, title: "Exam \(id)", durationSec: durationSec, graceSec: graceSec,
            questions: [
                .init(id: "q1", type: .text, prompt: "Explain."),
                .init(id: "q2", type: .single, prompt: "Pick one.", options: ["a", "b"]),
                .init(id: "q3", type: .number, prompt: "How many?"),
            ])
    }

    static func save(
        _ attempt: AttemptSnapshot, _ qid: String, _ value: JSONValue, op: String, base: Int64? = nil,
        candidate: String? = nil, tenant: String? = nil
    ) -> SaveCommand {
        SaveCommand(
            attemptID: attempt.id, tenant: tenant ?? attempt.tenant, candidate: candidate ?? attempt.candidate, qid: qid,
            value: value, opID: op, baseVersion: base)
    }
}

/// Expects `body` to throw a `HubError` with `code`, and returns it.
@discardableResult
func expectHubError<T>(
    _ code: HubError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async -> HubError? {
    do {
        _ = try await body()
        Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as HubError {
        #expect(error.code == code, "\(error) \(error.debugDetail ?? "")", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected HubError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

extension Result where Failure == HubError {
    /// The error code of a failure, nil for a success.
    var code: HubError.Code? {
        if case .failure(let e) = self { return e.code }
        return nil
    }

    var outcome: Success? {
        if case .success(let s) = self { return s }
        return nil
    }
}

/// Runs `body` with a second PostgreSQL store on the same database (another hub node), closed afterwards.
func withSecondNode(
    _ db: OpenedStore, options: PostgresStore.Options = .init(), _ body: (PostgresStore) async throws -> Void
) async throws {
    let other = try db.secondNode(options: options)
    do {
        try await body(other)
    } catch {
        await other.close()
        throw error
    }
    await other.close()
}
