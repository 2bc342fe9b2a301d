import ExamHubWire

/// RFC 3339 text of server times, for event payloads built as ``JSONValue``.
enum TimestampText {
    static func format(_ millis: Int64) -> String { Timestamp.format(millis: millis) }
}
