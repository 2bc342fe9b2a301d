/// The WebSocket close codes of PROTOCOL.md section 2, each with the reason text the hub sends.
public struct CloseCode: Hashable, Sendable {
    /// The numeric close code sent in the close frame.
    public let code: UInt16
    /// A short reason, at most 123 bytes, safe to show.
    public let reason: String

    public init(code: UInt16, reason: String) {
        self.code = code
        self.reason = reason
    }

    public static let normal = CloseCode(code: 1000, reason: "normal closure")
    public static let draining = CloseCode(code: 1001, reason: "server draining, reconnect elsewhere")
    public static let protocolError = CloseCode(code: 1002, reason: "protocol error")
    public static let binaryRefused = CloseCode(code: 1003, reason: "binary frames are not accepted")
    public static let invalidPayload = CloseCode(code: 1007, reason: "invalid UTF-8 in text message")
    public static let policy = CloseCode(code: 1008, reason: "policy violation")
    public static let tooBig = CloseCode(code: 1009, reason: "message too big")
    public static let internalError = CloseCode(code: 1011, reason: "internal error")
    public static let unauthenticated = CloseCode(code: 4001, reason: "unauthenticated or token expired")
    public static let forbidden = CloseCode(code: 4003, reason: "forbidden")
    public static let rateLimited = CloseCode(code: 4008, reason: "rate limited too often")
    public static let replaced = CloseCode(code: 4009, reason: "replaced by a newer connection")
}
