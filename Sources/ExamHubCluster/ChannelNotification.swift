import ExamHubWire

/// A notification of the shared channel log, as `examhub_publish_one` sends it (see `CrossNodeSchema`): a JSON
/// array `[node, tenant, channel, epoch, seq, ts_ms, type]`, then a newline and the event's data, or nothing more
/// when the data did not fit in PostgreSQL's 8,000-byte payload (then it is read from the log).
struct ChannelNotification: Sendable, Equatable {
    var node: String
    var tenant: String
    var channel: String
    var epoch: String
    var seq: UInt64
    var tsMillis: Int64
    var type: String
    /// The event's data as JSON text, or `nil` when it must be read from the log.
    var data: String?

    /// Parses a payload; `nil` when it is not one (never from a node of this version).
    init?(parsing payload: String) {
        let utf8 = payload.utf8
        let newline = utf8.firstIndex(of: UInt8(ascii: "\n"))
        let headerText = newline.map { String(payload[..<$0]) } ?? payload
        guard case .array(let fields)? = try? JSONParser.parse(headerText), fields.count == 7,
            case .string(let node) = fields[0], case .string(let tenant) = fields[1],
            case .string(let channel) = fields[2], case .string(let epoch) = fields[3],
            case .int(let seq) = fields[4], seq >= 1, case .int(let ts) = fields[5],
            case .string(let type) = fields[6]
        else { return nil }
        self.node = node
        self.tenant = tenant
        self.channel = channel
        self.epoch = epoch
        self.seq = UInt64(seq)
        self.tsMillis = ts
        self.type = type
        if let newline {
            self.data = String(payload[utf8.index(after: newline)...])
        } else {
            self.data = nil
        }
    }
}
