import ExamHubDomain

/// A decoded client frame: `{"op": "<name>", "id": <integer, optional>, ...fields}` (PROTOCOL.md section 2).
public struct Envelope: Sendable {
    /// The op name.
    public var op: String
    /// The request id, when the client wants a reply.
    public var id: Int64?
    /// Every member of the frame (including `op` and `id`).
    public var fields: [String: JSONValue]

    /// Why a frame could not be turned into an envelope: the error to answer with, and the id to answer to,
    /// when one could be read (otherwise the error goes out as an `error` event on channel `conn`).
    public struct DecodeFailure: Error, Sendable {
        public var error: HubError
        public var id: Int64?
    }

    /// The largest request id accepted (JavaScript's safe integer range).
    public static let maxID: Int64 = 9_007_199_254_740_991

    /// Decodes one complete text message (already checked to be UTF-8).
    public static func decode(_ bytes: UnsafeRawBufferPointer, limits: JSONParser.Limits = .init()) throws(DecodeFailure)
        -> Envelope
    {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, limits: limits)
        } catch {
            throw DecodeFailure(error: .badRequest("invalid JSON: \(error.description)"), id: nil)
        }
        guard case .object(let fields) = value else {
            throw DecodeFailure(error: .badRequest("a frame must be a JSON object"), id: nil)
        }
        var id: Int64?
        if let rawID = fields["id"] {
            guard case .int(let i) = rawID, i >= 0, i <= maxID else {
                throw DecodeFailure(error: .badRequest("\"id\" must be a non-negative integer"), id: nil)
            }
            id = i
        }
        guard let opValue = fields["op"] else {
            throw DecodeFailure(error: .badRequest("missing \"op\""), id: id)
        }
        guard case .string(let op) = opValue, !op.isEmpty, op.utf8.count <= 64 else {
            throw DecodeFailure(error: .badRequest("\"op\" must be a non-empty string"), id: id)
        }
        return Envelope(op: op, id: id, fields: fields)
    }

    public init(op: String, id: Int64?, fields: [String: JSONValue]) {
        self.op = op
        self.id = id
        self.fields = fields
    }

    // MARK: Typed field access with protocol errors

    /// A required string field of at most `maxBytes` bytes.
    public func string(_ name: String, maxBytes: Int = 4096) throws(HubError) -> String {
        guard let v = fields[name] else { throw .badRequest("missing \"\(name)\"") }
        guard case .string(let s) = v else { throw .badRequest("\"\(name)\" must be a string, not \(v.typeName)") }
        guard s.utf8.count <= maxBytes else { throw HubError(.tooLarge, "\"\(name)\" is longer than \(maxBytes) bytes") }
        return s
    }

    /// An optional string field; `null` counts as absent.
    public func optionalString(_ name: String, maxBytes: Int = 4096) throws(HubError) -> String? {
        guard let v = fields[name], v != .null else { return nil }
        return try string(name, maxBytes: maxBytes)
    }

    /// An optional object field; `null` counts as absent.
    public func optionalObject(_ name: String) throws(HubError) -> [String: JSONValue]? {
        guard let v = fields[name], v != .null else { return nil }
        guard case .object(let o) = v else { throw .badRequest("\"\(name)\" must be an object, not \(v.typeName)") }
        return o
    }
}
