/// Checks that bytes are well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
///
/// NIOWebSocket does not validate text frames; the hub does, incrementally, so that a sequence split across
/// fragments is judged as a whole (RFC 6455 section 8.1).
public struct UTF8Validator: Sendable {
    private var needed = 0  // continuation bytes still expected
    private var lower: UInt8 = 0x80  // bounds for the next continuation byte
    private var upper: UInt8 = 0xBF

    public init() {}

    /// Whether every byte fed so far is a valid prefix of UTF-8.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            if needed == 0 {
                // ASCII fast path, 8 bytes at a time.
                while i + 8 <= n {
                    let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    if word & 0x8080_8080_8080_8080 != 0 { break }
                    i += 8
                }
                guard i < n else { break }
                let b = bytes[i]
                i += 1
                switch b {
                case 0x00...0x7F: continue
                case 0xC2...0xDF: needed = 1; lower = 0x80; upper = 0xBF
                case 0xE0: needed = 2; lower = 0xA0; upper = 0xBF
                case 0xE1...0xEC, 0xEE...0xEF: needed = 2; lower = 0x80; upper = 0xBF
                case 0xED: needed = 2; lower = 0x80; upper = 0x9F
                case 0xF0: needed = 3; lower = 0x90; upper = 0xBF
                case 0xF1...0xF3: needed = 3; lower = 0x80; upper = 0xBF
                case 0xF4: needed = 3; lower = 0x80; upper = 0x8F
                default: return false
                }
            } else {
                let b = bytes[i]
                i += 1
                guard b >= lower, b <= upper else { return false }
                lower = 0x80
                upper = 0xBF
                needed -= 1
            }
        }
        return true
    }

    /// Whether the input ended on a character boundary (call after the last fragment).
    public var isComplete: Bool { needed == 0 }

    /// Validates a complete message in one call.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var v = UTF8Validator()
        return v.feed(bytes) && v.isComplete
    }
}
