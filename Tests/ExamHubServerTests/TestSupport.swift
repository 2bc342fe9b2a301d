import ExamHubAuth
import ExamHubDomain
import ExamHubStore
import ExamHubWire
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket

@testable import ExamHubServer

/// A hub's shared services on an `EmbeddedEventLoop`, with an in-memory SQLite store.
func makeServices(loop: EmbeddedEventLoop, configure: (inout HubConfiguration) -> Void = { _ in }) async throws
    -> HubServices
{
    var config = HubConfiguration()
    config.maxMessageBytes = 1024
    config.authTimeoutSeconds = 5
    configure(&config)
    let store = try SQLiteStore(url: .sqliteInMemory, logger: Logger(label: "test"))
    try await store.migrate()
    let verifier = try await TokenVerifier(configuration: .init(hmacSecret: String(repeating: "k", count: 32)))
    let metrics = HubMetrics()
    let hub = ChannelHub(group: loop, historySize: 10, historyAgeSeconds: 60, metrics: metrics)
    return HubServices(
        configuration: config, hub: hub, store: store, verifier: verifier, metrics: metrics,
        logger: Logger(label: "test"))
}

let testMask: WebSocketMaskingKey = [0x12, 0x34, 0x56, 0x78]

/// A client frame, masked as RFC 6455 requires.
func clientFrame(_ opcode: WebSocketOpcode, _ bytes: [UInt8], fin: Bool = true, masked: Bool = true) -> WebSocketFrame {
    var data = ByteBufferAllocator().buffer(bytes: bytes)
    if masked { data.webSocketMask(testMask) }
    return WebSocketFrame(fin: fin, opcode: opcode, maskKey: masked ? testMask : nil, data: data)
}

func clientText(_ text: String, fin: Bool = true) -> WebSocketFrame {
    clientFrame(.text, Array(text.utf8), fin: fin)
}

extension EmbeddedChannel {
    /// Every frame the server wrote so far.
    func outboundFrames() throws -> [WebSocketFrame] {
        var frames: [WebSocketFrame] = []
        while let f = try readOutbound(as: WebSocketFrame.self) { frames.append(f) }
        return frames
    }
}

extension WebSocketFrame {
    var text: String { String(buffer: data) }

    var closeCode: UInt16? {
        guard opcode == .connectionClose else { return nil }
        var d = data
        return d.readInteger(as: UInt16.self)
    }

    var json: JSONValue? { try? JSONParser.parse(text) }
}
