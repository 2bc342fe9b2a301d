import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real PostgreSQL 15 server for the tests: `initdb` and `pg_ctl` from `/usr/lib/postgresql/15/bin` (or
/// `EXAMHUB_TEST_PG_BIN`) into a new folder under `/tmp`, listening on 127.0.0.1 only, on a free port, with
/// password (SCRAM) authentication. When the tests run as root, the server runs as the `postgres` user and its
/// folder belongs to that user. `fsync=off` trades durability against a machine crash for speed (these servers are
/// thrown away); commits stay synchronous, so a killed server (`pg_ctl stop -m immediate`) keeps every commit.
///
/// Missing binaries are an error, never a skip: the PostgreSQL cases fail and say what to install.
/// Every server started is stopped and deleted when the test process exits (an `atexit` handler), and a server
/// left behind by a crashed run is stopped by the next run.
final class PostgresServer: Sendable {
    static let user = "examhub"
    /// Has characters that must be percent-encoded in a URL, so that every run checks the decoding.
    static let password = "s3cret/p@ss:w%rd"
    static let encodedPassword = "s3cret%2Fp%40ss%3Aw%25rd"

    let binDir: String
    let baseDir: String
    let port: Int
    let asPostgresUser: Bool

    var dataDir: String { baseDir + "/data" }
    var logPath: String { baseDir + "/server.log" }

    /// The one server that most tests share; started on first use.
    static let shared = Task<PostgresServer, any Error> { try await PostgresServer.start() }

    private init(binDir: String, baseDir: String, port: Int, asPostgresUser: Bool) {
        self.binDir = binDir
        self.baseDir = baseDir
        self.port = port
        self.asPostgresUser = asPostgresUser
    }

    /// Creates a cluster in a new folder and starts it.
    static func start() async throws -> PostgresServer {
        let bin = ProcessInfo.processInfo.environment["EXAMHUB_TEST_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
        for tool in ["initdb", "pg_ctl", "postgres", "createdb"] where !FileManager.default.isExecutableFile(atPath: "\(bin)/\(tool)") {
            throw HarnessError(
                "PostgreSQL 15 server binaries are missing: no \(bin)/\(tool). Install the Debian package postgresql-15 "
                    + "(`.ci/run` does), or set EXAMHUB_TEST_PG_BIN to a folder holding initdb, pg_ctl, postgres and createdb.")
        }
        registerCleanupOnce()
        let asRoot = geteuid() == 0
        var owner: (uid: uid_t, gid: gid_t)?
        if asRoot {
            guard let pw = getpwnam("postgres") else {
                throw HarnessError(
                    "the tests run as root, so PostgreSQL must run as the postgres user, and there is none "
                        + "(the postgresql-15 package creates it)")
            }
            owner = (pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        let base = "/tmp/examhub-pg-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: false)
        try "\(getpid())".write(toFile: base + "/owner.pid", atomically: true, encoding: .utf8)
        try password.write(toFile: base + "/pwfile", atomically: true, encoding: .utf8)
        if let owner {
            for path in [base, base + "/pwfile", base + "/owner.pid"] where chown(path, owner.uid, owner.gid) != 0 {
                throw HarnessError("cannot give \(path) to the postgres user (errno \(errno))")
            }
        }
        chmod(base, 0o700)
        let initdb = await runTool(
            [
                "\(bin)/initdb", "-D", base + "/data", "-U", user, "--pwfile=\(base)/pwfile", "-A", "scram-sha-256",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ], asPostgresUser: asRoot, in: base, log: base + "/initdb.log")
        guard initdb == 0 else {
            let log = (try? String(contentsOfFile: base + "/initdb.log", encoding: .utf8)) ?? ""
            throw HarnessError("initdb failed (exit \(initdb)): \(log.suffix(2000))")
        }
        var lastError: (any Error)?
        for _ in 0..<5 {
            let server = PostgresServer(binDir: bin, baseDir: base, port: try freePort(), asPostgresUser: asRoot)
            do {
                try await server.startServer()
                return server
            } catch {
                lastError = error  // most likely the port was taken meanwhile: try another
            }
        }
        throw lastError ?? HarnessError("PostgreSQL did not start")
    }

    /// Starts (again) the server on its port and waits until it accepts connections.
    func startServer() async throws {
        let options = [
            "-p \(port)", "-k \(baseDir)", "-c listen_addresses=127.0.0.1", "-c fsync=off",
            "-c full_page_writes=off", "-c max_connections=400",
            "-c shared_buffers=32MB",
        ].joined(separator: " ")
        let rc = await Self.runTool(
            ["\(binDir)/pg_ctl", "-D", dataDir, "-l", logPath, "-w", "-t", "60", "-o", options, "start"],
            asPostgresUser: asPostgresUser, in: baseDir, log: baseDir + "/pg_ctl.log")
        guard rc == 0 else {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw HarnessError("pg_ctl start failed (exit \(rc)) on port \(port): \(log.suffix(2000))")
        }
        Self.running.insert(self)
    }

    /// Stops the server: `immediate` is a crash (no checkpoint, connections dropped), `fast` a clean shutdown.
    func stopServer(mode: String = "fast") async throws {
        let rc = await Self.runTool(
            ["\(binDir)/pg_ctl", "-D", dataDir, "-m", mode, "-w", "-t", "60", "stop"],
            asPostgresUser: asPostgresUser, in: baseDir, log: baseDir + "/pg_ctl.log")
        guard rc == 0 else { throw HarnessError("pg_ctl stop failed (exit \(rc))") }
        Self.running.remove(self)
    }

    /// Stops the server for good and deletes its folder.
    func destroy() async {
        try? await stopServer(mode: "immediate")
        try? FileManager.default.removeItem(atPath: baseDir)
    }

    /// Creates a new, empty database and returns its URL (with the percent-encoded password).
    func createDatabase() async throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let rc = await Self.runTool(
            ["\(binDir)/createdb", "-h", "127.0.0.1", "-p", "\(port)", "-U", Self.user, name],
            asPostgresUser: false, in: "/tmp", log: baseDir + "/createdb.log", environment: ["PGPASSWORD": Self.password])
        guard rc == 0 else {
            let log = (try? String(contentsOfFile: baseDir + "/createdb.log", encoding: .utf8)) ?? ""
            throw HarnessError("createdb failed (exit \(rc)): \(log.suffix(1000))")
        }
        return url(database: name)
    }

    func url(database: String) -> String {
        "postgres://\(Self.user):\(Self.encodedPassword)@127.0.0.1:\(port)/\(database)"
    }

    /// Runs SQL with `psql` and returns its unaligned, tuples-only output.
    func psql(database: String, _ sql: String) async throws -> String {
        let out = baseDir + "/psql-\(UUID().uuidString.prefix(8)).out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let rc = await Self.runTool(
            ["\(binDir)/psql", "-X", "-q", "-A", "-t", "-F", "|", "-h", "127.0.0.1", "-p", "\(port)", "-U", Self.user,
             "-d", database, "-c", sql],
            asPostgresUser: false, in: "/tmp", log: out, environment: ["PGPASSWORD": Self.password])
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard rc == 0 else { throw HarnessError("psql failed (exit \(rc)): \(text)") }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: Processes

    /// Runs a program to completion on a thread of its own (never blocking the test's executor), with its working
    /// folder `dir`, output appended to `log`, and as the postgres user when asked.
    static func runTool(
        _ argv: [String], asPostgresUser: Bool, in dir: String, log: String?, environment: [String: String] = [:]
    ) async -> Int32 {
        // `sh -c 'cd DIR && exec "$@"'`: the tools refuse to start in a folder their user cannot read.
        var full = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", dir] + argv
        if asPostgresUser { full = ["runuser", "-u", "postgres", "--"] + full }
        if asPostgresUser, let log, !FileManager.default.fileExists(atPath: log) {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            if let pw = getpwnam("postgres") { chown(log, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let finalEnv = env
        let finalArgs = full
        return await withCheckedContinuation { continuation in
            Thread {
                continuation.resume(returning: spawnAndWait(finalArgs, environment: finalEnv, log: log))
            }.start()
        }
    }

    /// posix_spawn and wait; stdin is /dev/null, stdout and stderr go to `log`, and no other descriptor of the test
    /// process is inherited (a daemonized postmaster must not hold the test runner's pipes open).
    static func spawnAndWait(_ argv: [String], environment: [String: String], log: String?) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        markDescriptorsCloseOnExec()
        let cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        let cEnv: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let spawned = cArgs.withUnsafeBufferPointer { args in
            cEnv.withUnsafeBufferPointer { env in
                guard let argsBase = args.baseAddress, let envBase = env.baseAddress else { return Int32(-1) }
                return posix_spawnp(&pid, argv[0], &actions, nil, argsBase, envBase)
            }
        }
        guard spawned == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return -1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Sets close-on-exec on every descriptor above 2 of this process, so that no spawned program inherits one.
    private static func markDescriptorsCloseOnExec() {
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for name in fds {
            guard let fd = Int32(name), fd > 2 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// A TCP port on 127.0.0.1 that nothing listens on right now.
    static func freePort() throws -> Int {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw HarnessError("socket() failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        guard bound == 0 else { throw HarnessError("bind() failed") }
        let named = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard named == 0 else { throw HarnessError("getsockname() failed") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    // MARK: Cleanup

    /// The servers running now, stopped by the exit handler.
    static let running = ServerSet()

    private static let cleanupRegistered = ServerSet.Flag()

    private static func registerCleanupOnce() {
        guard cleanupRegistered.setOnce() else { return }
        removeLeftovers()
        atexit { PostgresServer.stopAllAtExit() }
    }

    private static func stopAllAtExit() {
        for server in running.all() {
            _ = spawnAndWait(
                wrapped(server, ["\(server.binDir)/pg_ctl", "-D", server.dataDir, "-m", "immediate", "-w", "stop"]),
                environment: ProcessInfo.processInfo.environment, log: nil)
            _ = spawnAndWait(["rm", "-rf", server.baseDir], environment: ProcessInfo.processInfo.environment, log: nil)
        }
    }

    private static func wrapped(_ server: PostgresServer, _ argv: [String]) -> [String] {
        let inDir = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", server.baseDir] + argv
        return server.asPostgresUser ? ["runuser", "-u", "postgres", "--"] + inDir : inDir
    }

    /// Stops and deletes servers whose test process is gone (a run that crashed before its exit handler).
    private static func removeLeftovers() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        let bin = ProcessInfo.processInfo.environment["EXAMHUB_TEST_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
        for name in names where name.hasPrefix("examhub-pg-") {
            let base = "/tmp/" + name
            guard let text = try? String(contentsOfFile: base + "/owner.pid", encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }  // its owner still runs
            let leftover = PostgresServer(binDir: bin, baseDir: base, port: 0, asPostgresUser: geteuid() == 0)
            if FileManager.default.fileExists(atPath: leftover.dataDir + "/postmaster.pid") {
                _ = spawnAndWait(
                    wrapped(leftover, ["\(bin)/pg_ctl", "-D", leftover.dataDir, "-m", "immediate", "-w", "stop"]),
                    environment: ProcessInfo.processInfo.environment, log: nil)
            }
            try? FileManager.default.removeItem(atPath: base)
        }
    }
}

/// A lock-protected set of servers (the exit handler reads it).
final class ServerSet: @unchecked Sendable {
    private let lock = NSLock()
    private var servers: [ObjectIdentifier: PostgresServer] = [:]

    func insert(_ s: PostgresServer) { lock.withLock { servers[ObjectIdentifier(s)] = s } }
    func remove(_ s: PostgresServer) { lock.withLock { _ = servers.removeValue(forKey: ObjectIdentifier(s)) } }
    func all() -> [PostgresServer] { lock.withLock { Array(servers.values) } }

    /// A flag set once.
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var set = false
        /// True the first time only.
        func setOnce() -> Bool {
            lock.withLock {
                defer { set = true }
                return !set
            }
        }
    }
}

/// A harness failure, with what to do about it.
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
