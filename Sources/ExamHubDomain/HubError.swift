/// An error that a client sees: one of PROTOCOL.md's error codes, a message safe to show, and optional details.
///
/// `code` maps to the reply's `error.code` (and, for HTTP, to a status in one place: ``HubError/Code/httpStatus``).
/// `message` never holds secrets; put anything sensitive in `debugDetail`, which is only logged at debug level.
public struct HubError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The protocol's error codes. A struct around a string so that codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code as written on the wire.
        public let rawValue: String
        private init(_ raw: String) { self.rawValue = raw }

        public static let badRequest = Code("bad_request")
        public static let unauthorized = Code("unauthorized")
        public static let forbidden = Code("forbidden")
        public static let notFound = Code("not_found")
        public static let conflict = Code("conflict")
        public static let attemptClosed = Code("attempt_closed")
        public static let attemptPaused = Code("attempt_paused")
        public static let rateLimited = Code("rate_limited")
        public static let tooLarge = Code("too_large")
        public static let unavailable = Code("unavailable")
        public static let `internal` = Code("internal")

        /// Every code of PROTOCOL.md section 2, in its order.
        public static let all: [Code] = [
            .badRequest, .unauthorized, .forbidden, .notFound, .conflict, .attemptClosed, .attemptPaused,
            .rateLimited, .tooLarge, .unavailable, .internal,
        ]

        /// The HTTP status that carries this code on the HTTP routes.
        public var httpStatus: Int {
            switch self {
            case .badRequest: 400
            case .unauthorized: 401
            case .forbidden: 403
            case .notFound: 404
            case .conflict, .attemptClosed, .attemptPaused: 409
            case .rateLimited: 429
            case .tooLarge: 413
            case .unavailable: 503
            default: 500
            }
        }

        public var description: String { rawValue }
    }

    /// The protocol code.
    public var code: Code
    /// A human-readable message that is safe to send to the client.
    public var message: String
    /// Optional structured details (for `conflict`: the current `version` and `value`).
    public var details: JSONValue?
    /// Detail for logs at debug level only; never sent to a client.
    public var debugDetail: String?

    public init(_ code: Code, _ message: String, details: JSONValue? = nil, debugDetail: String? = nil) {
        self.code = code
        self.message = message
        self.details = details
        self.debugDetail = debugDetail
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public static func badRequest(_ message: String) -> HubError { HubError(.badRequest, message) }
    public static func forbidden(_ message: String) -> HubError { HubError(.forbidden, message) }
    public static func notFound(_ message: String) -> HubError { HubError(.notFound, message) }
    public static func unauthorized(_ message: String) -> HubError { HubError(.unauthorized, message) }
}
