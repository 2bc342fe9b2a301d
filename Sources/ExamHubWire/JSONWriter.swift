import ExamHubDomain
import NIOCore

/// Writes JSON straight into a `ByteBuffer`, with no intermediate strings or dictionaries.
extension ByteBuffer {
    /// Appends `s` as a JSON string literal, escaping what RFC 8259 requires.
    @inlinable
    public mutating func writeJSONString(_ s: String) {
        writeInteger(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var runStart = 0
            for i in 0..<utf8.count {
                let b = utf8[i]
                if b >= 0x20 && b != 0x22 && b != 0x5C { continue }
                if i > runStart { writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[runStart..<i]))) }
                switch b {
                case 0x22: writeStaticString("\\\"")
                case 0x5C: writeStaticString("\\\\")
                case 0x0A: writeStaticString("\\n")
                case 0x0D: writeStaticString("\\r")
                case 0x09: writeStaticString("\\t")
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    writeStaticString("\\u00")
                    writeInteger(hex[Int(b >> 4)])
                    writeInteger(hex[Int(b & 0x0F)])
                }
                runStart = i + 1
            }
            if runStart < utf8.count { writeBytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))) }
        }
        writeInteger(UInt8(ascii: "\""))
    }

    /// Appends an integer in decimal.
    @inlinable
    public mutating func writeJSONInt<I: BinaryInteger>(_ value: I) {
        if let v = Int64(exactly: value) {
            writeJSONInt(v)
        } else if let v = UInt64(exactly: value) {
            writeDecimal(v, negative: false)
        } else {
            writeString(String(value))
        }
    }

    /// Every reply's `id` and every event's `seq` goes through here: digits straight into the buffer, without the
    /// generic `String(value)` (which formats through `BinaryInteger` and makes a String first).
    public mutating func writeJSONInt(_ value: Int64) {
        writeDecimal(value.magnitude, negative: value < 0)
    }

    public mutating func writeJSONInt(_ value: UInt64) {
        writeDecimal(value, negative: false)
    }

    @usableFromInline
    internal mutating func writeDecimal(_ magnitude: UInt64, negative: Bool) {
        var count = 1
        var t = magnitude
        while t >= 10 {
            t /= 10
            count += 1
        }
        let total = count + (negative ? 1 : 0)
        writeWithUnsafeMutableBytes(minimumWritableBytes: total) { p in
            var m = magnitude
            var i = total - 1
            repeat {
                p[i] = UInt8(truncatingIfNeeded: m % 10) &+ 48
                m /= 10
                i -= 1
            } while m > 0
            if negative { p[0] = UInt8(ascii: "-") }
            return total
        }
    }

    /// Appends any ``JSONValue``. Object members are written with sorted keys, so output is deterministic.
    public mutating func writeJSONValue(_ value: JSONValue) {
        switch value {
        case .null: writeStaticString("null")
        case .bool(let b): writeStaticString(b ? "true" : "false")
        case .int(let i): writeJSONInt(i)
        case .double(let d):
            if d.isFinite {
                if d.rounded() == d && abs(d) < 1e15 {
                    writeJSONInt(Int64(d))
                } else {
                    writeString(d.description)
                }
            } else {
                writeStaticString("null")
            }
        case .string(let s): writeJSONString(s)
        case .array(let elements):
            writeInteger(UInt8(ascii: "["))
            for (i, e) in elements.enumerated() {
                if i > 0 { writeInteger(UInt8(ascii: ",")) }
                writeJSONValue(e)
            }
            writeInteger(UInt8(ascii: "]"))
        case .object(let members):
            writeInteger(UInt8(ascii: "{"))
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { writeInteger(UInt8(ascii: ",")) }
                writeJSONString(key)
                writeInteger(UInt8(ascii: ":"))
                writeJSONValue(members[key] ?? .null)
            }
            writeInteger(UInt8(ascii: "}"))
        }
    }
}

extension JSONValue {
    /// The compact JSON text of this value.
    public var jsonText: String {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        buffer.writeJSONValue(self)
        return String(buffer: buffer)
    }
}
