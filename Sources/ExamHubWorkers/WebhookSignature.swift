import Crypto
import Foundation

/// The signature on every webhook request, so a receiver can tell the request came from this hub and is fresh.
///
/// Headers: `X-ExamHub-Timestamp: <unix seconds>` and `X-ExamHub-Signature: t=<unix seconds>,v1=<hex>`, where
/// `<hex>` is HMAC-SHA256, keyed with the webhook's secret, over `<unix seconds>.<raw body>`. A receiver recomputes
/// it over the bytes it received, compares in constant time, and refuses timestamps older than a few minutes.
/// Each retry is signed again with its own time; `X-ExamHub-Event-Id` stays the same (the idempotency key).
public enum WebhookSignature {
    /// The hex HMAC-SHA256 of `timestamp.body` under `secret`.
    public static func hex(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(timestamp).".utf8)
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(secret.utf8)))
        return mac.map { byte in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]], as: UTF8.self)
        }.joined()
    }

    /// The `X-ExamHub-Signature` header value.
    public static func header(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        "t=\(timestamp),v1=\(hex(secret: secret, timestamp: timestamp, body: body))"
    }

    /// Checks a header against a body (what a receiver written in Swift would do).
    public static func verify(header: String, secret: String, body: [UInt8], now: Int64, tolerance: Int64 = 300) -> Bool {
        var timestamp: Int64?
        var given: String?
        for part in header.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            if kv[0] == "t" { timestamp = Int64(kv[1]) }
            if kv[0] == "v1" { given = kv[1] }
        }
        guard let timestamp, let given, abs(now - timestamp) <= tolerance else { return false }
        let expected = Array(hex(secret: secret, timestamp: timestamp, body: body).utf8)
        let actual = Array(given.utf8)
        guard expected.count == actual.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<expected.count { diff |= expected[i] ^ actual[i] }
        return diff == 0
    }
}
