import ExamHubDomain
import Foundation
import PostgresNIO

/// Where and how to connect to PostgreSQL, parsed from `postgres://user:pass@host:port/db?sslmode=...`.
///
/// User, password and database are percent-decoded; the port defaults to 5432 and the database to the user name.
/// `sslmode` follows libpq: `disable`, `allow` and `prefer` (TLS when the server offers it), `require` (TLS, the
/// certificate is not checked, as in libpq), `verify-ca` (certificate chain checked) and `verify-full` (chain and
/// host name). Without `sslmode`, loopback hosts (`localhost`, `127.0.0.1`, `::1`) use `disable` and every other
/// host `prefer`. `connect_timeout` (seconds) is the only other parameter accepted.
public struct PostgresSettings: Sendable, Hashable, CustomStringConvertible {
    /// libpq's TLS modes.
    public enum SSLMode: String, Sendable, Hashable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    /// From `connect_timeout`, when given.
    public var connectTimeoutSeconds: Int?

    public init(
        host: String, port: Int = 5432, username: String, password: String?, database: String, sslMode: SSLMode,
        connectTimeoutSeconds: Int? = nil
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.sslMode = sslMode
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    /// Parses a `postgres://` or `postgresql://` URL; every problem is a `bad_request` naming what is wrong.
    public init(parsing raw: String) throws(HubError) {
        let prefix: String
        if raw.hasPrefix("postgres://") {
            prefix = "postgres://"
        } else if raw.hasPrefix("postgresql://") {
            prefix = "postgresql://"
        } else {
            throw .badRequest("a PostgreSQL URL starts with postgres:// or postgresql://")
        }
        var rest = Substring(raw.dropFirst(prefix.count))
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        let authority = rest
        guard let at = authority.lastIndex(of: "@") else {
            throw .badRequest("the PostgreSQL URL has no user (postgres://user:password@host:port/db)")
        }
        let userinfo = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]

        let rawUser: Substring
        var rawPassword: Substring?
        if let colon = userinfo.firstIndex(of: ":") {
            rawUser = userinfo[..<colon]
            rawPassword = userinfo[userinfo.index(after: colon)...]
        } else {
            rawUser = userinfo
        }
        let user = try Self.decode(rawUser, what: "user")
        guard !user.isEmpty else { throw .badRequest("the PostgreSQL URL has an empty user") }
        let password = try rawPassword.map { part throws(HubError) in try Self.decode(part, what: "password") }

        var host: String
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw .badRequest("the PostgreSQL URL has an unclosed [ in its host")
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .badRequest("the PostgreSQL URL has text after its host") }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = String(hostPort)
        }
        host = try Self.decode(Substring(host), what: "host")
        guard !host.isEmpty else { throw .badRequest("the PostgreSQL URL has no host") }
        var port = 5432
        if let portText {
            guard let p = Int(portText), (1...65_535).contains(p) else {
                throw .badRequest("the PostgreSQL URL's port must be 1-65535")
            }
            port = p
        }
        var database = try Self.decode(path, what: "database")
        if database.isEmpty { database = user }
        guard !database.contains("/") else { throw .badRequest("the PostgreSQL URL's database name may not contain /") }

        var sslMode: SSLMode?
        var connectTimeout: Int?
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try Self.decode(parts[0], what: "parameter name")
            let value = parts.count > 1 ? try Self.decode(parts[1], what: "parameter \(key)") : ""
            switch key {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    throw .badRequest(
                        "sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                sslMode = mode
            case "connect_timeout":
                guard let seconds = Int(value), (1...300).contains(seconds) else {
                    throw .badRequest("connect_timeout must be 1-300 seconds")
                }
                connectTimeout = seconds
            default:
                throw .badRequest("the PostgreSQL URL parameter \(key) is not supported (sslmode, connect_timeout)")
            }
        }
        self.init(
            host: host, port: port, username: user, password: password, database: database,
            sslMode: sslMode ?? (Self.isLoopback(host) ? .disable : .prefer), connectTimeoutSeconds: connectTimeout)
    }

    /// Whether `host` names this machine.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    private static func decode(_ part: Substring, what: String) throws(HubError) -> String {
        guard let decoded = String(part).removingPercentEncoding else {
            throw .badRequest("the PostgreSQL URL's \(what) has a bad percent escape")
        }
        return decoded
    }

    /// The URL with the password masked, for logs.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "postgres://\(username)\(password == nil ? "" : ":***")@\(h):\(port)/\(database)?sslmode=\(sslMode.rawValue)"
    }

    /// postgres-nio's TLS setting for ``sslMode``.
    var tls: PostgresClient.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case .disable:
            return .disable
        case .allow, .prefer:
            tls.certificateVerification = .none
            return .prefer(tls)
        case .require:
            tls.certificateVerification = .none
            return .require(tls)
        case .verifyCA:
            tls.certificateVerification = .noHostnameVerification
            return .require(tls)
        case .verifyFull:
            tls.certificateVerification = .fullVerification
            return .require(tls)
        }
    }
}
