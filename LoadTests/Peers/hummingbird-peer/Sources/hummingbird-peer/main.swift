// Peer: Hummingbird's WebSocket server. Usage: hummingbird-peer PORT
// /v1/echo sends every message back; /v1/broadcast sends every text message to every other open broadcast socket.
// Any other path gets the empty router's 404. SIGTERM/SIGINT shut it down (Application.runService's ServiceGroup).

import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The largest message (and frame) the peer accepts, as in every peer: 1 MiB.
let maxMessage = 1 << 20

/// The outbound writers of the sockets open on /v1/broadcast, keyed by a per-socket id.
final class BroadcastRegistry: Sendable {
    private let state = Mutex<(next: Int, writers: [Int: WebSocketOutboundWriter])>((0, [:]))

    /// Adds a socket's writer; returns its id for `remove` and `others`.
    func add(_ writer: WebSocketOutboundWriter) -> Int {
        self.state.withLock { state in
            let id = state.next
            state.next += 1
            state.writers[id] = writer
            return id
        }
    }

    func remove(_ id: Int) {
        _ = self.state.withLock { $0.writers.removeValue(forKey: id) }
    }

    /// A snapshot of every writer but `id`'s.
    func others(than id: Int) -> [WebSocketOutboundWriter] {
        self.state.withLock { state in state.writers.compactMap { $0.key == id ? nil : $0.value } }
    }
}

let arguments = CommandLine.arguments
guard arguments.count > 1, let port = Int(arguments[1]) else {
    print("usage: hummingbird-peer PORT")
    exit(2)
}
var logger = Logger(label: "hummingbird-peer")
logger.logLevel = .warning
let registry = BroadcastRegistry()

let app = Application(
    router: Router(),
    server: .http1WebSocketUpgrade(
        configuration: .init(ws: .init(maxFrameSize: maxMessage, extensions: [], autoPing: .disabled))
    ) { request, _, _ in
        switch request.path {
        case "/v1/echo":
            return .upgrade([:]) { inbound, outbound, _ in
                for try await message in inbound.messages(maxSize: maxMessage) {
                    switch message {
                    case .text(let text): try await outbound.write(.text(text))
                    case .binary(let buffer): try await outbound.write(.binary(buffer))
                    }
                }
            }
        case "/v1/broadcast":
            return .upgrade([:]) { inbound, outbound, _ in
                let id = registry.add(outbound)
                defer { registry.remove(id) }
                for try await message in inbound.messages(maxSize: maxMessage) {
                    guard case .text(let text) = message else { continue }
                    // The payload is built once; every receiver's frame shares the buffer.
                    let frame = WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text))
                    for writer in registry.others(than: id) {
                        // A receiver that closed meanwhile is not the sender's problem.
                        try? await writer.write(.custom(frame))
                    }
                }
            }
        default:
            return .dontUpgrade
        }
    },
    configuration: .init(address: .hostname("127.0.0.1", port: port)),
    onServerRunning: { _ in print("hummingbird listening on 127.0.0.1:\(port)"); fflush(nil) },
    logger: logger
)
try await app.runService()
