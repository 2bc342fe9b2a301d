/// permessage-deflate (RFC 7692) negotiation, as values: a client's offers parsed from `Sec-WebSocket-Extensions`,
/// and the server's choice.
///
/// The server always answers `server_no_context_takeover`: it compresses each message on its own, so a node keeps
/// no compression state per socket (one stream per event loop) and a channel event is compressed once per loop
/// for every subscriber. Whether the client keeps its context (better ratio for the repetitive frames a client
/// sends, at the cost of an inflate window per socket on the server) is the caller's `Policy`.
///
/// Offers are tried in the client's order; one the server cannot honour (an unknown or repeated parameter, a bad
/// value, or `server_max_window_bits=8`, which zlib cannot produce for raw deflate) is skipped, and with none left
/// the handshake goes on without compression: an offer never fails the handshake.
public enum PerMessageDeflate {
    public static let extensionName = "permessage-deflate"

    /// The window sizes zlib can compress with (raw deflate refuses 8).
    public static let compressWindowBits = 9...15

    /// One `permessage-deflate` offer.
    public struct Offer: Equatable, Sendable {
        /// `client_max_window_bits`: absent, present with no value (the client accepts a limit), or a value.
        public enum ClientWindow: Equatable, Sendable {
            case absent
            case any
            case bits(Int)
        }

        public var serverNoContextTakeover = false
        public var clientNoContextTakeover = false
        public var serverMaxWindowBits: Int?
        public var clientMaxWindowBits: ClientWindow = .absent

        public init(
            serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false,
            serverMaxWindowBits: Int? = nil, clientMaxWindowBits: ClientWindow = .absent
        ) {
            self.serverNoContextTakeover = serverNoContextTakeover
            self.clientNoContextTakeover = clientNoContextTakeover
            self.serverMaxWindowBits = serverMaxWindowBits
            self.clientMaxWindowBits = clientMaxWindowBits
        }

        /// Reads one extension element's parameters (after the name); `nil` for an offer RFC 7692 section 7 says
        /// to decline: an unknown parameter, a repeated one, or a value out of range or of the wrong form.
        public init?(parameters: ArraySlice<HeaderElements.Parameter>) {
            var seen: Set<String> = []
            for p in parameters {
                guard seen.insert(p.name).inserted else { return nil }
                switch p.name {
                case "server_no_context_takeover":
                    guard p.value == nil else { return nil }
                    serverNoContextTakeover = true
                case "client_no_context_takeover":
                    guard p.value == nil else { return nil }
                    clientNoContextTakeover = true
                case "server_max_window_bits":
                    guard let bits = Self.windowBits(p.value) else { return nil }
                    serverMaxWindowBits = bits
                case "client_max_window_bits":
                    if p.value == nil {
                        clientMaxWindowBits = .any
                    } else {
                        guard let bits = Self.windowBits(p.value) else { return nil }
                        clientMaxWindowBits = .bits(bits)
                    }
                default:
                    return nil
                }
            }
        }

        /// 8 to 15, written as 1*DIGIT with no leading zero (RFC 7692 section 7.1.2).
        static func windowBits(_ value: String?) -> Int? {
            guard let value, !value.isEmpty, value.count <= 2, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                value.first != "0", let n = Int(value), (8...15).contains(n)
            else { return nil }
            return n
        }
    }

    /// Every `permessage-deflate` offer in the `Sec-WebSocket-Extensions` header lines, in order; an offer to
    /// decline is `nil` (kept, so tests can see it was read). A header line that cannot be parsed adds nothing.
    public static func offers(in headerLines: [String]) -> [Offer?] {
        var out: [Offer?] = []
        for line in headerLines {
            guard let elements = HeaderElements.parse(line) else { continue }
            for element in elements {
                guard let first = element.first, first.name == extensionName, first.value == nil else { continue }
                out.append(Offer(parameters: element.dropFirst()))
            }
        }
        return out
    }

    /// What the server will do.
    public struct Policy: Equatable, Sendable {
        /// The largest window (9-15) the server compresses with and asks the client to compress with.
        public var maxWindowBits: Int
        /// Whether the client may keep its compression context between messages (the server then keeps an
        /// inflate window for the socket).
        public var allowClientContextTakeover: Bool

        public init(maxWindowBits: Int = 15, allowClientContextTakeover: Bool = true) {
            self.maxWindowBits = maxWindowBits
            self.allowClientContextTakeover = allowClientContextTakeover
        }
    }

    /// The agreement: what each side does, and the response header that says so.
    public struct Agreement: Equatable, Sendable {
        /// The window the server compresses with (no context takeover, always).
        public var serverWindowBits: Int
        /// The window the server must inflate with: the client's limit, or 15 when the client set none.
        public var clientWindowBits: Int
        /// Whether the client resets its context after every message (the server can then share one inflater).
        public var clientNoContextTakeover: Bool
        /// The `Sec-WebSocket-Extensions` response value.
        public var responseHeader: String

        public init(
            serverWindowBits: Int, clientWindowBits: Int, clientNoContextTakeover: Bool, responseHeader: String
        ) {
            self.serverWindowBits = serverWindowBits
            self.clientWindowBits = clientWindowBits
            self.clientNoContextTakeover = clientNoContextTakeover
            self.responseHeader = responseHeader
        }
    }

    /// The first offer the server can honour under `policy`, or `nil` (no compression).
    public static func negotiate(_ offers: [Offer?], policy: Policy) -> Agreement? {
        let cap = min(max(policy.maxWindowBits, compressWindowBits.lowerBound), compressWindowBits.upperBound)
        for case let offer? in offers {
            var serverBits = cap
            if let limit = offer.serverMaxWindowBits {
                // zlib's raw deflate cannot honour a 256-byte window: decline and try the next offer.
                guard compressWindowBits.contains(limit) else { continue }
                serverBits = min(limit, cap)
            }
            var header = extensionName + "; server_no_context_takeover"
            let clientNoTakeover = offer.clientNoContextTakeover || !policy.allowClientContextTakeover
            if clientNoTakeover { header += "; client_no_context_takeover" }
            // A server may always name server_max_window_bits; say it when it is below the default.
            if serverBits < 15 || offer.serverMaxWindowBits != nil { header += "; server_max_window_bits=\(serverBits)" }
            let clientBits: Int
            switch offer.clientMaxWindowBits {
            case .absent:
                // The server may not limit a client that did not offer the parameter.
                clientBits = 15
            case .any:
                clientBits = cap
                header += "; client_max_window_bits=\(clientBits)"
            case .bits(let offered):
                clientBits = min(offered, cap)
                header += "; client_max_window_bits=\(clientBits)"
            }
            return Agreement(
                serverWindowBits: serverBits, clientWindowBits: clientBits, clientNoContextTakeover: clientNoTakeover,
                responseHeader: header)
        }
        return nil
    }

    /// A client's reading of the server's response (the load tester's side): `nil` when the response has no
    /// `permessage-deflate` or one a client must refuse.
    public static func clientAgreement(responseLines: [String]) -> Agreement? {
        for line in responseLines {
            guard let elements = HeaderElements.parse(line) else { continue }
            for element in elements {
                guard let first = element.first, first.name == extensionName,
                    let offer = Offer(parameters: element.dropFirst())
                else { continue }
                let clientBits: Int
                switch offer.clientMaxWindowBits {
                case .absent, .any: clientBits = 15
                case .bits(let n): clientBits = max(n, compressWindowBits.lowerBound)
                }
                return Agreement(
                    serverWindowBits: offer.serverMaxWindowBits ?? 15, clientWindowBits: clientBits,
                    clientNoContextTakeover: offer.clientNoContextTakeover, responseHeader: line)
            }
        }
        return nil
    }
}
