import NIOCore

/// RFC 3339 timestamps in UTC with milliseconds (`2026-11-23T10:38:31.123Z`), formatted and parsed without
/// Foundation so that the per-frame path allocates nothing but the string.
public enum Timestamp {
    /// Formats milliseconds since 1970 as RFC 3339 UTC.
    public static func format(millis: Int64) -> String {
        var buffer = ByteBufferAllocator().buffer(capacity: 24)
        buffer.writeTimestamp(millis: millis)
        return String(buffer: buffer)
    }

    /// The calendar fields of a time: (year, month, day, hour, minute, second, millisecond).
    static func fields(millis: Int64) -> (Int64, Int64, Int64, Int64, Int64, Int64, Int64) {
        let (days, msOfDay) = floorDivMod(millis, 86_400_000)
        let (y, m, d) = civil(fromDays: days)
        return (y, m, d, msOfDay / 3_600_000, (msOfDay / 60_000) % 60, (msOfDay / 1000) % 60, msOfDay % 1000)
    }

    /// Parses an RFC 3339 timestamp (any offset, optional fraction) into milliseconds since 1970.
    public static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        guard b.count >= 20 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int64? {
            guard from + len <= b.count else { return nil }
            var v: Int64 = 0
            for i in from..<(from + len) {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) else { return nil }
                v = v * 10 + Int64(b[i] - UInt8(ascii: "0"))
            }
            return v
        }
        guard let y = num(0, 4), b[4] == UInt8(ascii: "-"), let mo = num(5, 2), b[7] == UInt8(ascii: "-"),
            let d = num(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == 0x20,
            let h = num(11, 2), b[13] == UInt8(ascii: ":"), let mi = num(14, 2), b[16] == UInt8(ascii: ":"),
            let s = num(17, 2), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61
        else { return nil }
        var i = 19
        var ms: Int64 = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale: Int64 = 100
            let start = i
            while i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) {
                ms += Int64(b[i] - UInt8(ascii: "0")) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        var offsetMinutes: Int64 = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign: Int64 = b[i] == UInt8(ascii: "+") ? 1 : -1
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2)
            else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = days(fromCivil: y, mo, d)
        return ((days * 86_400 + h * 3600 + mi * 60 + min(s, 59)) - offsetMinutes * 60) * 1000 + ms
    }

    private static func floorDivMod(_ a: Int64, _ b: Int64) -> (Int64, Int64) {
        let q = a / b
        let r = a % b
        return r < 0 ? (q - 1, r + b) : (q, r)
    }

    // Howard Hinnant's civil-from-days and days-from-civil.
    private static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    private static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = m > 2 ? m - 3 : m + 9
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

extension ByteBuffer {
    /// Writes `millis` as RFC 3339 UTC with milliseconds (24 bytes, no quotes), allocating nothing.
    public mutating func writeTimestamp(millis: Int64) {
        let (y, mo, d, h, mi, s, ms) = Timestamp.fields(millis: millis)
        writeDigits(y, 4); writeInteger(UInt8(ascii: "-")); writeDigits(mo, 2); writeInteger(UInt8(ascii: "-"))
        writeDigits(d, 2); writeInteger(UInt8(ascii: "T")); writeDigits(h, 2); writeInteger(UInt8(ascii: ":"))
        writeDigits(mi, 2); writeInteger(UInt8(ascii: ":")); writeDigits(s, 2); writeInteger(UInt8(ascii: "."))
        writeDigits(ms, 3); writeInteger(UInt8(ascii: "Z"))
    }

    /// Writes `millis` as a JSON string holding an RFC 3339 timestamp.
    public mutating func writeJSONTimestamp(millis: Int64) {
        writeInteger(UInt8(ascii: "\""))
        writeTimestamp(millis: millis)
        writeInteger(UInt8(ascii: "\""))
    }

    private mutating func writeDigits(_ value: Int64, _ width: Int) {
        var divisor: Int64 = 1
        for _ in 1..<width { divisor *= 10 }
        var v = value < 0 ? 0 : value
        if v >= divisor * 10 { v %= divisor * 10 }
        while divisor > 0 {
            writeInteger(UInt8(ascii: "0") + UInt8(v / divisor))
            v %= divisor
            divisor /= 10
        }
    }
}
