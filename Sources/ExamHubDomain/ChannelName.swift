/// A channel that clients may subscribe to, parsed from its wire name (PROTOCOL.md section 4).
///
/// Identifiers are 1 to 128 characters of `[A-Za-z0-9_.-]`; anything else is not a channel name.
public enum ChannelName: Hashable, Sendable, CustomStringConvertible {
    /// `attempt:<attemptId>`
    case attempt(String)
    /// `exam:<examId>:proctor`
    case examProctor(String)
    /// `chat:<conversationId>`
    case chat(String)

    /// Parses a wire name; `nil` when it is not one of the channel kinds or its identifier is invalid.
    public init?(_ raw: String) {
        let parts = raw.split(separator: ":", omittingEmptySubsequences: false)
        switch (parts.count, parts.first) {
        case (2, "attempt"):
            guard Self.isValidID(parts[1]) else { return nil }
            self = .attempt(String(parts[1]))
        case (2, "chat"):
            guard Self.isValidID(parts[1]) else { return nil }
            self = .chat(String(parts[1]))
        case (3, "exam") where parts[2] == "proctor":
            guard Self.isValidID(parts[1]) else { return nil }
            self = .examProctor(String(parts[1]))
        default:
            return nil
        }
    }

    /// The wire name.
    public var description: String {
        switch self {
        case .attempt(let id): "attempt:\(id)"
        case .examProctor(let id): "exam:\(id):proctor"
        case .chat(let id): "chat:\(id)"
        }
    }

    /// Whether `id` is a valid resource identifier (1-128 of `[A-Za-z0-9_.-]`).
    public static func isValidID<S: StringProtocol>(_ id: S) -> Bool {
        let utf8 = id.utf8
        guard !utf8.isEmpty, utf8.count <= 128 else { return false }
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }
}

/// A channel inside one tenant. Channels of different tenants never meet, even when their names are equal.
public struct ChannelKey: Hashable, Sendable, CustomStringConvertible {
    public var tenant: String
    public var name: ChannelName

    public init(tenant: String, name: ChannelName) {
        self.tenant = tenant
        self.name = name
    }

    public var description: String { "\(tenant)/\(name)" }
}
