import ArgumentParser
import ExamHubCluster
import ExamHubDomain
import ExamHubPostgres
import ExamHubStore
import Logging
import ExamHubProctoring
import ExamHubServer
import Foundation

/// Reads `EXAMHUB_*` variables into a ``HubConfiguration``. Flags given on the command line win over them.
struct Environment {
    var values: [String: String]

    init(_ values: [String: String] = ProcessInfo.processInfo.environment) {
        self.values = values
    }

    subscript(_ name: String) -> String? {
        guard let v = values[name], !v.isEmpty else { return nil }
        return v
    }

    func int(_ name: String) throws -> Int? {
        guard let raw = self[name] else { return nil }
        guard let v = Int(raw) else { throw ValidationError("\(name) must be an integer, got \"\(raw)\"") }
        return v
    }

    func double(_ name: String) throws -> Double? {
        guard let raw = self[name] else { return nil }
        guard let v = Double(raw), v.isFinite else { throw ValidationError("\(name) must be a number, got \"\(raw)\"") }
        return v
    }

    func bool(_ name: String) throws -> Bool? {
        guard let raw = self[name]?.lowercased() else { return nil }
        switch raw {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ValidationError("\(name) must be 0 or 1 (or on/off), got \"\(raw)\"")
        }
    }

    /// The proctoring profiles: the built-in ones plus the JSON files under `EXAMHUB_PROFILES_DIR`
    /// (`<name>.json`, or `<tenant>/<name>.json` for one tenant). A bad file stops the start with its name.
    func profileLibrary() throws -> ProfileLibrary {
        guard let dir = self["EXAMHUB_PROFILES_DIR"] else { return ProfileLibrary() }
        let root = URL(fileURLWithPath: dir)
        var files: [String: String] = [:]
        let fm = FileManager.default
        guard let top = try? fm.contentsOfDirectory(atPath: root.path) else {
            throw ValidationError("EXAMHUB_PROFILES_DIR \(dir) is not a readable folder")
        }
        for name in top {
            var isDir: ObjCBool = false
            let path = root.appendingPathComponent(name)
            guard fm.fileExists(atPath: path.path, isDirectory: &isDir) else { continue }
            if isDir.boolValue {
                for inner in (try? fm.contentsOfDirectory(atPath: path.path)) ?? [] where inner.hasSuffix(".json") {
                    files["\(name)/\(inner)"] = try String(contentsOf: path.appendingPathComponent(inner), encoding: .utf8)
                }
            } else if name.hasSuffix(".json") {
                files[name] = try String(contentsOf: path, encoding: .utf8)
            }
        }
        do {
            return try ProfileLibrary(files: files)
        } catch {
            throw ValidationError("EXAMHUB_PROFILES_DIR: \(error.message)")
        }
    }

    /// The node's link to the other nodes on its database: with PostgreSQL, unless `EXAMHUB_CLUSTER=0`; never with
    /// SQLite (`EXAMHUB_CLUSTER=1` there is an error: one file serves one node).
    func cluster(store: any Store, hub: HubConfiguration, metrics: HubMetrics, logger: Logger) throws -> PostgresCluster? {
        let wanted = try bool("EXAMHUB_CLUSTER")
        guard let postgres = store as? PostgresStore else {
            if wanted == true { throw ValidationError("EXAMHUB_CLUSTER=1 needs a postgres:// EXAMHUB_DATABASE_URL") }
            return nil
        }
        guard wanted ?? true else { return nil }
        var c = ClusterConfiguration()
        c.historySize = hub.historySize
        c.historyAgeSeconds = hub.historyAgeSeconds
        if let v = try double("EXAMHUB_CLUSTER_HEARTBEAT_SEC") {
            guard v >= 0.2, v <= 300 else { throw ValidationError("EXAMHUB_CLUSTER_HEARTBEAT_SEC must be 0.2-300") }
            c.heartbeatSeconds = v
        }
        return PostgresCluster(store: postgres, configuration: c, metrics: metrics, logger: logger)
    }

    /// The hub configuration from the environment, on top of the defaults.
    func hubConfiguration() throws -> HubConfiguration {
        var c = HubConfiguration()
        if let v = self["EXAMHUB_HOST"] { c.host = v }
        if let v = try int("EXAMHUB_PORT") { c.port = v }
        let hasSecret = self["EXAMHUB_JWT_SECRET"] != nil || self["EXAMHUB_JWKS"] != nil
        c.devMode = try bool("EXAMHUB_DEV") ?? !hasSecret
        if let v = self["EXAMHUB_ALLOWED_ORIGINS"] {
            c.allowedOrigins = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        } else {
            c.allowedOrigins = c.devMode ? ["*"] : []
        }
        if let v = try int("EXAMHUB_MAX_MESSAGE_BYTES") { c.maxMessageBytes = v }
        if let v = try double("EXAMHUB_AUTH_TIMEOUT") { c.authTimeoutSeconds = v }
        if let v = try int("EXAMHUB_HEARTBEAT_SEC") { c.heartbeatSeconds = v }
        if let v = try double("EXAMHUB_RATE_LIMIT") { c.ratePerSecond = v }
        if let v = try double("EXAMHUB_RATE_BURST") { c.rateBurst = v }
        if let v = try int("EXAMHUB_RATE_CLOSE_AFTER") { c.rateCloseAfter = v }
        if let v = try int("EXAMHUB_MAX_CONNECTIONS") { c.maxConnections = v }
        if let v = try int("EXAMHUB_MAX_CONNECTIONS_PER_IP") { c.maxConnectionsPerIP = v }
        if let v = try int("EXAMHUB_MAX_SUBSCRIPTIONS") { c.maxSubscriptionsPerConnection = v }
        if let v = try int("EXAMHUB_HISTORY_SIZE") { c.historySize = v }
        if let v = try int("EXAMHUB_HISTORY_AGE_SEC") { c.historyAgeSeconds = v }
        if let v = try int("EXAMHUB_WRITE_LOW") { c.writeBufferLow = v }
        if let v = try int("EXAMHUB_WRITE_HIGH") { c.writeBufferHigh = v }
        if let v = try int("EXAMHUB_MAX_OUTBOUND") { c.maxOutboundBytes = v }
        if let v = try double("EXAMHUB_SLOW_CONSUMER_SEC") { c.slowConsumerSeconds = v }
        if let v = try double("EXAMHUB_HEADER_TIMEOUT") { c.headerTimeoutSeconds = v }
        if let v = try double("EXAMHUB_DRAIN_SEC") { c.drainSeconds = v }
        if let v = try double("EXAMHUB_DRAIN_SPREAD_SEC") { c.drainSpreadSeconds = v }
        if let v = try int("EXAMHUB_THREADS") { c.eventLoopThreads = v }
        if let v = try double("EXAMHUB_MALLOC_TRIM_SEC") { c.mallocTrimSeconds = v }
        if let v = try int("EXAMHUB_COMMIT_MAX_BATCH") { c.commitMaxBatch = v }
        if let v = try int("EXAMHUB_COMMIT_WINDOW_MS") { c.commitWindowMillis = v }
        if let v = try double("EXAMHUB_TELEMETRY_RATE") { c.telemetryRatePerSecond = v }
        if let v = try double("EXAMHUB_TELEMETRY_BURST") { c.telemetryBurst = v }
        if let v = try double("EXAMHUB_TELEMETRY_RETENTION_DAYS") { c.telemetryRetentionDays = v }
        if let v = try int("EXAMHUB_TELEMETRY_FLUSH_MS") { c.telemetryFlushMillis = v }
        c.tlsCertificatePath = self["EXAMHUB_TLS_CERT"]
        c.tlsKeyPath = self["EXAMHUB_TLS_KEY"]
        if let v = self["EXAMHUB_TRUSTED_PROXIES"] {
            do { c.trustedProxies = try TrustedProxies(parsing: v) } catch {
                throw ValidationError("EXAMHUB_TRUSTED_PROXIES: \(error.message)")
            }
        }
        if let v = try bool("EXAMHUB_COMPRESSION") { c.compression.enabled = v }
        if let v = try int("EXAMHUB_COMPRESSION_WINDOW_BITS") { c.compression.maxWindowBits = v }
        if let v = try int("EXAMHUB_COMPRESSION_MIN_BYTES") { c.compression.minBytes = v }
        if let v = try double("EXAMHUB_COMPRESSION_MEMORY_MB") { c.compression.memoryBudgetBytes = Int(v * 1_048_576) }
        if let v = self["EXAMHUB_COMPRESSION_CHANNELS"] {
            do { c.compression.channels = try .init(parsing: v) } catch { throw ValidationError(error.message) }
        }
        return c
    }
}
