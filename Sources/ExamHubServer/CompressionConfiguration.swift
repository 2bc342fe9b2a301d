import ExamHubDomain
import ExamHubWire

/// permessage-deflate (RFC 7692) on `/v1/socket`: whether it is negotiated, and what it may cost.
///
/// The server compresses without context takeover, with one deflate stream per event loop, so compression keeps
/// no memory per socket on the sending side, and a channel event is compressed once per loop whatever the number
/// of subscribers. Clients may keep their context (much better ratios on autosave frames, which repeat the previous
/// text) while the inflate windows that costs fit in `memoryBudgetBytes`; past it, new sockets are asked for
/// `client_no_context_takeover` and share their loop's inflater.
public struct CompressionConfiguration: Sendable, Equatable {
    /// Channel kinds whose events are compressed.
    public struct Channels: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let attempt = Channels(rawValue: 1)
        public static let examProctor = Channels(rawValue: 2)
        public static let chat = Channels(rawValue: 4)
        public static let all: Channels = [.attempt, .examProctor, .chat]

        /// Parses `attempt,exam,chat` (any of them, or `all`, or `none`).
        public init(parsing list: String) throws(HubError) {
            var out: Channels = []
            for item in list.split(separator: ",") {
                switch item.trimmingSpaces.lowercased() {
                case "attempt": out.insert(.attempt)
                case "exam": out.insert(.examProctor)
                case "chat": out.insert(.chat)
                case "all": out.formUnion(.all)
                case "none", "": break
                default:
                    throw HubError(
                        .badRequest, "EXAMHUB_COMPRESSION_CHANNELS: unknown channel kind \"\(item.prefix(32))\" "
                            + "(attempt, exam, chat, all or none)")
                }
            }
            self = out
        }

        /// Whether events of `name` are compressed.
        public func contains(_ name: ChannelName) -> Bool {
            switch name {
            case .attempt: contains(Channels.attempt)
            case .examProctor: contains(Channels.examProctor)
            case .chat: contains(Channels.chat)
            }
        }
    }

    /// Negotiate permessage-deflate when a client offers it (`EXAMHUB_COMPRESSION`, `on`; `off` never does).
    public var enabled: Bool = true
    /// Largest LZ77 window, 9-15 (`EXAMHUB_COMPRESSION_WINDOW_BITS`, 12: 4 KiB). Both directions: the server
    /// compresses with it and asks clients (that accept a limit) for it.
    public var maxWindowBits: Int = 12
    /// Messages shorter than this are sent uncompressed (`EXAMHUB_COMPRESSION_MIN_BYTES`, 256).
    public var minBytes: Int = 256
    /// zlib level, 1-9 (1: on the hub's JSON frames it compresses as well as zlib's default 6 at half the CPU,
    /// measured with 1.4 KB `answer.saved` events: 24% of the size either way, 13 against 28-34 µs).
    public var level: Int = 1
    /// Memory for the inflate windows of clients that keep their compression context
    /// (`EXAMHUB_COMPRESSION_MEMORY_MB`, 64 MiB); 0 asks every client for `client_no_context_takeover`.
    public var memoryBudgetBytes: Int = 64 * 1_048_576
    /// Channel kinds whose events are compressed (`EXAMHUB_COMPRESSION_CHANNELS`, `attempt,chat`). Replies are
    /// always compressed (above `minBytes`).
    public var channels: Channels = [.attempt, .chat]

    public init() {}

    /// The server's negotiation policy while `inflateBytesInUse` of the budget is taken.
    func policy(inflateBytesInUse: Int) -> PerMessageDeflate.Policy {
        PerMessageDeflate.Policy(
            maxWindowBits: maxWindowBits, allowClientContextTakeover: inflateBytesInUse < memoryBudgetBytes)
    }

    /// What one socket's own inflater costs: zlib's inflate state (about 7 KiB) and its window.
    static func inflaterCost(windowBits: Int) -> Int {
        7 * 1024 + (1 << max(9, windowBits))
    }

    func validate() throws(HubError) {
        guard PerMessageDeflate.compressWindowBits.contains(maxWindowBits) else {
            throw HubError(.badRequest, "EXAMHUB_COMPRESSION_WINDOW_BITS must be 9-15")
        }
        guard minBytes >= 0 else { throw HubError(.badRequest, "EXAMHUB_COMPRESSION_MIN_BYTES must be >= 0") }
        guard (1...9).contains(level) else { throw HubError(.badRequest, "compression level must be 1-9") }
        guard memoryBudgetBytes >= 0 else {
            throw HubError(.badRequest, "EXAMHUB_COMPRESSION_MEMORY_MB must be >= 0")
        }
    }
}
