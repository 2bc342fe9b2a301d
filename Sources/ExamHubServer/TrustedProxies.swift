import ExamHubDomain
import ExamHubWire
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as bytes. IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are read as IPv4, so a
/// client counts once whichever way a proxy writes it.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 (IPv6), network order.
    public let bytes: [UInt8]

    /// Parses `192.0.2.1` or `2001:db8::1` (no brackets, port or zone); `nil` for anything else.
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        guard !s.isEmpty, s.utf8.count <= 45 else { return nil }
        var v4 = in_addr()
        if s.utf8.contains(UInt8(ascii: ".")) && !s.utf8.contains(UInt8(ascii: ":")) {
            guard inet_pton(AF_INET, s, &v4) == 1 else { return nil }
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, s, &v6) == 1 else { return nil }
        let raw = withUnsafeBytes(of: &v6) { Array($0) }
        if raw[0..<10].allSatisfy({ $0 == 0 }) && raw[10] == 0xFF && raw[11] == 0xFF {
            bytes = Array(raw[12..<16])
        } else {
            bytes = raw
        }
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The canonical text form (`inet_ntop`), used as the key of the per-IP connection count.
    public var description: String {
        var out = [CChar](repeating: 0, count: 64)
        var copy = bytes
        let family = isIPv4 ? AF_INET : AF_INET6
        let ok = copy.withUnsafeMutableBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                inet_ntop(family, src.baseAddress, dst.baseAddress, socklen_t(dst.count)) != nil
            }
        }
        guard ok else { return "?" }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`, a /32 or /128).
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    /// Parses `address` or `address/prefix`; `nil` for anything else (a prefix out of range, host bits set are
    /// allowed and ignored, as most tools do).
    public init?(_ text: some StringProtocol) {
        let trimmed = text.trimmingSpaces
        let parts = trimmed.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        // An IPv4-mapped block written in IPv6 (::ffff:10.0.0.0/104) becomes the IPv4 block.
        let mapped = parts[0].contains(":") && address.isIPv4
        let maxPrefix = mapped ? 128 : address.bytes.count * 8
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].utf8.count <= 3, parts[1].utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let n = Int(parts[1]), n <= maxPrefix
            else { return nil }
            guard !mapped || n >= 96 else { return nil }
            prefixLength = mapped ? n - 96 : n
        } else {
            prefixLength = maxPrefix
        }
        self.address = address
    }

    /// Whether `ip` is inside the block (an IPv4 address is never inside an IPv6 block and vice versa).
    public func contains(_ ip: IPAddress) -> Bool {
        guard ip.bytes.count == address.bytes.count else { return false }
        var bits = prefixLength
        for i in 0..<ip.bytes.count {
            guard bits > 0 else { return true }
            let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
            if ip.bytes[i] & mask != address.bytes[i] & mask { return false }
            bits -= 8
        }
        return true
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

/// The proxies whose forwarding headers are believed (`EXAMHUB_TRUSTED_PROXIES`), and the rule that finds the
/// client's address behind them.
///
/// Only when the TCP peer is a trusted proxy are the headers read: `Forwarded` (RFC 7239, its `for=` values) when
/// present, else `X-Forwarded-For`. Hops are read right to left (each proxy appends the address it received from);
/// trusted proxies are skipped and the first untrusted hop is the client. A hop that cannot be read (`unknown`, an
/// obfuscated name, garbage) stops the walk: the last address that could be verified (a trusted proxy) is used.
/// From an untrusted peer both headers are ignored, whatever they say.
public struct TrustedProxies: Sendable, Equatable {
    public var networks: [IPNetwork]

    public init(_ networks: [IPNetwork] = []) {
        self.networks = networks
    }

    /// No proxy is trusted (the default): the peer is the client.
    public static let none = TrustedProxies()

    /// Parses a comma-separated list of addresses and CIDR blocks; throws naming the first bad entry.
    public init(parsing list: String) throws(HubError) {
        var out: [IPNetwork] = []
        for item in list.split(separator: ",") {
            let entry = item.trimmingSpaces
            if entry.isEmpty { continue }
            guard let network = IPNetwork(entry) else {
                throw HubError(.badRequest, "\"\(entry.prefix(64))\" is not an IP address or CIDR block")
            }
            out.append(network)
        }
        self.networks = out
    }

    public var isEmpty: Bool { networks.isEmpty }

    public func isTrusted(_ ip: IPAddress) -> Bool {
        networks.contains { $0.contains(ip) }
    }

    /// The client's address for a request that came from `peer` with `headers` (canonical text form), or the peer's
    /// own address when it is not a trusted proxy; `nil` when the peer has no IP address (a Unix socket).
    public func clientAddress(peer: String?, headers: HTTPHeaders) -> String? {
        guard let peerText = peer, let peerIP = IPAddress(peerText) else { return peer }
        guard !networks.isEmpty, isTrusted(peerIP) else { return peerIP.description }
        let hops: [IPAddress?]
        if headers.contains(name: "Forwarded") {
            guard let parsed = Self.forwardedFor(headers["Forwarded"]) else { return peerIP.description }
            hops = parsed
        } else {
            hops = Self.xForwardedFor(headers["X-Forwarded-For"])
        }
        var client = peerIP
        for hop in hops.reversed() {
            guard let hop else { break }  // unreadable: trust nothing further left
            client = hop
            if !isTrusted(hop) { break }
        }
        return client.description
    }

    /// The `for=` hops of `Forwarded` header lines, in order (`nil` for one that is not an address); `nil` when a
    /// line cannot be parsed at all.
    static func forwardedFor(_ lines: [String]) -> [IPAddress?]? {
        var hops: [IPAddress?] = []
        for line in lines {
            guard let elements = HeaderElements.parse(line) else { return nil }
            for element in elements {
                // An element without for= says nothing about that hop: it cannot be verified.
                let node = element.first { $0.name == "for" }?.value
                hops.append(node.flatMap { Self.node($0) })
            }
        }
        return hops
    }

    /// The hops of `X-Forwarded-For` header lines, in order (`nil` for one that is not an address).
    static func xForwardedFor(_ lines: [String]) -> [IPAddress?] {
        lines.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { node($0.trimmingSpaces) }
    }

    /// One node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
    static func node(_ text: some StringProtocol) -> IPAddress? {
        let s = Substring(text)
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let rest = s[s.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && Self.isPort(rest.dropFirst())) else { return nil }
            return IPAddress(s[s.index(after: s.startIndex)..<close]).flatMap { $0.isIPv4 ? nil : $0 }
        }
        if let ip = IPAddress(s) { return ip }
        // IPv4 with a port: exactly one colon.
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, Self.isPort(parts[1]), let ip = IPAddress(parts[0]), ip.isIPv4 else { return nil }
        return ip
    }

    private static func isPort(_ s: some StringProtocol) -> Bool {
        // RFC 7239 also allows an obfuscated port ("_abc"): a port carries no address, so accept it.
        if s.hasPrefix("_") { return s.count > 1 }
        guard !s.isEmpty, s.utf8.count <= 5, s.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(s) else {
            return false
        }
        return n <= 65535
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: Substring {
        let s = Substring(self)
        guard let first = s.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = s.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return s[first...last]
    }
}
