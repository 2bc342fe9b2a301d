import ExamHubDomain
import NIOCore

/// Builders for the frames the server sends: replies and events (PROTOCOL.md section 2), written straight into
/// a `ByteBuffer` so a broadcast is encoded once and shared by every subscriber.
public enum ServerFrame {
    /// `{"op":"reply","id":N,"ok":true,"data":{...}}` where `data` is written by `writeData` (an object's body
    /// members, without braces).
    @inlinable
    public static func writeOK(
        into buffer: inout ByteBuffer, id: Int64, _ writeData: (inout ByteBuffer) -> Void
    ) {
        buffer.writeStaticString("{\"op\":\"reply\",\"id\":")
        buffer.writeJSONInt(id)
        buffer.writeStaticString(",\"ok\":true,\"data\":{")
        writeData(&buffer)
        buffer.writeStaticString("}}")
    }

    /// `{"op":"reply","id":N,"ok":false,"error":{"code","message","details"?}}`
    public static func writeError(into buffer: inout ByteBuffer, id: Int64, error: HubError) {
        buffer.writeStaticString("{\"op\":\"reply\",\"id\":")
        buffer.writeJSONInt(id)
        buffer.writeStaticString(",\"ok\":false,\"error\":")
        writeErrorObject(into: &buffer, error)
        buffer.writeStaticString("}")
    }

    /// `{"code":…,"message":…,"details":…}`
    public static func writeErrorObject(into buffer: inout ByteBuffer, _ error: HubError) {
        buffer.writeStaticString("{\"code\":")
        buffer.writeJSONString(error.code.rawValue)
        buffer.writeStaticString(",\"message\":")
        buffer.writeJSONString(error.message)
        if let details = error.details {
            buffer.writeStaticString(",\"details\":")
            buffer.writeJSONValue(details)
        }
        buffer.writeStaticString("}")
    }

    /// `{"op":"event","ch":…,"seq":N,"type":…,"ts":…,"data":<data>}`
    public static func writeEvent(
        into buffer: inout ByteBuffer, channel: String, seq: UInt64, type: String, tsMillis: Int64, data: JSONValue
    ) {
        writeEventHead(into: &buffer, channel: channel, seq: seq, type: type, tsMillis: tsMillis)
        buffer.writeJSONValue(data)
        buffer.writeStaticString("}")
    }

    /// Everything of an event frame before its `data` value: `{"op":"event","ch":…,"seq":N,"type":…,"ts":…,"data":`.
    private static func writeEventHead(
        into buffer: inout ByteBuffer, channel: String, seq: UInt64, type: String, tsMillis: Int64
    ) {
        buffer.writeStaticString("{\"op\":\"event\",\"ch\":")
        buffer.writeJSONString(channel)
        buffer.writeStaticString(",\"seq\":")
        buffer.writeJSONInt(seq)
        buffer.writeStaticString(",\"type\":")
        buffer.writeJSONString(type)
        buffer.writeStaticString(",\"ts\":")
        buffer.writeJSONTimestamp(millis: tsMillis)
        buffer.writeStaticString(",\"data\":")
    }

    /// The same event frame with `data` given as JSON text that is already valid (an event another node
    /// published and encoded): copied as it is, neither parsed nor re-encoded.
    public static func writeEvent<Bytes: Sequence>(
        into buffer: inout ByteBuffer, channel: String, seq: UInt64, type: String, tsMillis: Int64, rawData: Bytes
    ) where Bytes.Element == UInt8 {
        writeEventHead(into: &buffer, channel: channel, seq: seq, type: type, tsMillis: tsMillis)
        buffer.writeBytes(rawData)
        buffer.writeStaticString("}")
    }

    /// Writes `"key":` (with a leading comma unless `first`).
    @inlinable
    public static func writeKey(into buffer: inout ByteBuffer, _ key: StaticString, first: Bool = false) {
        if !first { buffer.writeInteger(UInt8(ascii: ",")) }
        buffer.writeInteger(UInt8(ascii: "\""))
        buffer.writeStaticString(key)
        buffer.writeStaticString("\":")
    }
}
