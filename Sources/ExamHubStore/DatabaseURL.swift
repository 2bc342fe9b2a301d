import ExamHubDomain

/// A parsed `EXAMHUB_DATABASE_URL`: `sqlite:///abs/file.db`, `sqlite://./rel/file.db`, `sqlite://:memory:` or
/// `postgres://user:pass@host:port/db`.
public enum DatabaseURL: Sendable, Hashable, CustomStringConvertible {
    case sqlite(path: String)
    case sqliteInMemory
    case postgres(String)

    /// The default of PROTOCOL.md section 7.
    public static let defaultURL = "sqlite://./.examhub/examhub.db"

    public init(parsing raw: String) throws(HubError) {
        if raw.hasPrefix("sqlite://") {
            let rest = String(raw.dropFirst("sqlite://".count))
            if rest == ":memory:" {
                self = .sqliteInMemory
            } else if rest.isEmpty {
                throw .badRequest("EXAMHUB_DATABASE_URL: sqlite URL has no path")
            } else {
                self = .sqlite(path: rest)
            }
        } else if raw.hasPrefix("postgres://") || raw.hasPrefix("postgresql://") {
            self = .postgres(raw)
        } else {
            throw .badRequest("EXAMHUB_DATABASE_URL must start with sqlite:// or postgres://")
        }
    }

    /// The URL with any password masked, for logs.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite://\(path)"
        case .sqliteInMemory: return "sqlite://:memory:"
        case .postgres(let url):
            guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") else { return url }
            let userinfo = url[scheme.upperBound..<at]
            guard let colon = userinfo.firstIndex(of: ":") else { return url }
            return String(url[..<colon]) + ":***" + String(url[at...])
        }
    }
}
