/// A parser for the HTTP header shape shared by `Sec-WebSocket-Extensions` (RFC 6455 section 9.1) and `Forwarded`
/// (RFC 7239 section 4): a comma-separated list of elements, each a semicolon-separated list of `name` or
/// `name=value` parameters, where a value is a token or a quoted-string (`"..."` with `\` escapes). Commas and
/// semicolons inside quotes belong to the value.
///
/// `HeaderElements.parse("permessage-deflate; client_max_window_bits, x-foo")` is
/// `[[("permessage-deflate", nil), ("client_max_window_bits", nil)], [("x-foo", nil)]]`. Names are lower-cased;
/// values are unquoted. An unterminated quote, or a name that is empty or holds a character outside the token set,
/// makes the whole header value unparseable (`nil`): callers then ignore the header.
public enum HeaderElements {
    /// One parameter: its lower-cased name and its value (unquoted), `nil` when it had no `=`.
    public struct Parameter: Equatable, Sendable {
        public var name: String
        public var value: String?
        /// Whether the value was written as a quoted-string.
        public var quoted: Bool

        public init(name: String, value: String? = nil, quoted: Bool = false) {
            self.name = name
            self.value = value
            self.quoted = quoted
        }
    }

    /// Parses one header value (several header lines: parse each, then concatenate the results).
    public static func parse(_ header: String) -> [[Parameter]]? {
        var elements: [[Parameter]] = []
        var element: [Parameter] = []
        var name: [UInt8] = []
        var value: [UInt8] = []
        var sawEquals = false
        var quoted = false
        var bytes = Array(header.utf8)[...]

        func endParameter() -> Bool {
            let trimmedName = trim(name)
            if trimmedName.isEmpty && !sawEquals && value.isEmpty { return true }  // empty item: "a;;b", "a, ,b"
            guard !trimmedName.isEmpty, trimmedName.allSatisfy(isTokenByte) else { return false }
            var v: String?
            if sawEquals {
                let raw = quoted ? value[...] : trim(value)
                guard quoted || (!raw.isEmpty && raw.allSatisfy(isTokenByte)) else { return false }
                v = String(decoding: raw, as: UTF8.self)
            }
            element.append(
                Parameter(name: String(decoding: trimmedName, as: UTF8.self).lowercased(), value: v, quoted: quoted))
            name.removeAll()
            value.removeAll()
            sawEquals = false
            quoted = false
            return true
        }

        while let byte = bytes.popFirst() {
            switch byte {
            case UInt8(ascii: "\""):
                // A quoted-string is a whole value: `name="..."`, nothing but spaces around it.
                guard sawEquals, !quoted, trim(value).isEmpty else { return nil }
                value.removeAll()
                quoted = true
                var closed = false
                while let c = bytes.popFirst() {
                    if c == UInt8(ascii: "\\") {
                        guard let escaped = bytes.popFirst() else { return nil }
                        value.append(escaped)
                    } else if c == UInt8(ascii: "\"") {
                        closed = true
                        break
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { return nil }
                // Only spaces may follow, up to the next separator.
                while let next = bytes.first, next == UInt8(ascii: " ") || next == UInt8(ascii: "\t") {
                    bytes.removeFirst()
                }
                if let next = bytes.first, next != UInt8(ascii: ";"), next != UInt8(ascii: ",") { return nil }
            case UInt8(ascii: "="):
                guard !sawEquals else { return nil }
                sawEquals = true
            case UInt8(ascii: ";"):
                guard endParameter() else { return nil }
            case UInt8(ascii: ","):
                guard endParameter() else { return nil }
                if !element.isEmpty { elements.append(element) }
                element = []
            default:
                if quoted { return nil }
                if sawEquals { value.append(byte) } else { name.append(byte) }
            }
        }
        guard endParameter() else { return nil }
        if !element.isEmpty { elements.append(element) }
        return elements
    }

    private static func trim(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        var s = bytes[...]
        while let f = s.first, f == UInt8(ascii: " ") || f == UInt8(ascii: "\t") { s.removeFirst() }
        while let l = s.last, l == UInt8(ascii: " ") || l == UInt8(ascii: "\t") { s.removeLast() }
        return s
    }

    /// RFC 7230 `tchar`.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
