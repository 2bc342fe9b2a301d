import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import XCTest

/// A real HTTP/1.1 server on 127.0.0.1 (port 0) that plays a scripted provider: each request gets the next
/// ``Behaviour`` of its script (the last one repeats), streamed with chunked encoding. It records every request
/// (head and body) and every connection it saw close.
final class FakeProviderServer: Sendable {
    /// One body piece, written after `delay`.
    struct Piece: Sendable {
        var delay: TimeAmount
        var bytes: [UInt8]
    }

    /// How the server ends a response after its pieces.
    enum Ending: Sendable {
        case finish  // the chunked terminator
        case close  // close the connection mid-body
        case hang  // leave the body open
    }

    /// What the server does with one request.
    struct Behaviour: Sendable {
        var status: HTTPResponseStatus = .ok
        var headers: [(String, String)] = [("content-type", "text/event-stream")]
        var pieces: [Piece]
        var ending: Ending = .finish
        /// How long to wait before sending the response head.
        var headDelay: TimeAmount = .zero

        /// A 200 event stream of `body`, cut into `chunkSize`-byte pieces.
        static func sse(_ body: String, chunkSize: Int = 7, delay: TimeAmount = .zero,
                        firstDelay: TimeAmount = .zero, ending: Ending = .finish) -> Behaviour {
            // Pieces are byte slices, so a multi-byte character may be split across two chunks.
            let bytes = Array(body.utf8)
            let pieces = stride(from: 0, to: bytes.count, by: chunkSize).map { index in
                Piece(delay: index == 0 ? firstDelay : delay,
                      bytes: Array(bytes[index..<min(index + chunkSize, bytes.count)]))
            }
            return Behaviour(pieces: pieces, ending: ending)
        }

        /// A plain response with a status and a small JSON body.
        static func status(_ code: Int, headers: [(String, String)] = [], body: String = #"{"error":"x"}"#)
            -> Behaviour
        {
            Behaviour(status: HTTPResponseStatus(statusCode: code),
                      headers: [("content-type", "application/json")] + headers,
                      pieces: [Piece(delay: .zero, bytes: Array(body.utf8))])
        }
    }

    /// One request the server received.
    struct Recorded: Sendable {
        var head: HTTPRequestHead
        var body: String
        var connection: ObjectIdentifier

        var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        }
    }

    private struct State {
        var script: [Behaviour]
        var served = 0
        var requests: [Recorded] = []
        var closed: Set<ObjectIdentifier> = []
    }

    private let state: NIOLockedValueBox<State>
    private let channel: NIOLockedValueBox<Channel?> = NIOLockedValueBox(nil)

    init(script: [Behaviour]) {
        state = NIOLockedValueBox(State(script: script))
    }

    /// Binds 127.0.0.1:0 and returns the base URL.
    func start() async throws -> String {
        let bound = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channel.withLockedValue { $0 = bound }
        guard let port = bound.localAddress?.port else { throw ChannelError.unknownLocalAddress }
        return "http://127.0.0.1:\(port)"
    }

    func stop() async throws {
        let bound = channel.withLockedValue { $0 }
        try await bound?.close()
    }

    var requests: [Recorded] { state.withLockedValue { $0.requests } }

    func isClosed(_ connection: ObjectIdentifier) -> Bool {
        state.withLockedValue { $0.closed.contains(connection) }
    }

    fileprivate func received(_ request: Recorded) -> Behaviour {
        state.withLockedValue { state in
            state.requests.append(request)
            let index = min(state.served, state.script.count - 1)
            state.served += 1
            return state.script[index]
        }
    }

    fileprivate func connectionClosed(_ connection: ObjectIdentifier) {
        state.withLockedValue { _ = $0.closed.insert(connection) }
    }

    /// Polls `condition` every 10 ms for up to `seconds` (generous: only a failing test waits that long).
    static func eventually(seconds: Double = 10, _ condition: @Sendable () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let server: FakeProviderServer
        var head: HTTPRequestHead?
        var body = ByteBuffer()

        init(server: FakeProviderServer) {
            self.server = server
        }

        func channelInactive(context: ChannelHandlerContext) {
            server.connectionClosed(ObjectIdentifier(context.channel))
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                body.clear()
            case .body(var chunk):
                body.writeBuffer(&chunk)
            case .end:
                guard let head else { return }
                let recorded = Recorded(head: head, body: String(buffer: body),
                                        connection: ObjectIdentifier(context.channel))
                respond(server.received(recorded), context: context)
            }
        }

        private func respond(_ behaviour: Behaviour, context: ChannelHandlerContext) {
            var headers = HTTPHeaders(behaviour.headers)
            headers.add(name: "transfer-encoding", value: "chunked")
            let head = HTTPResponseHead(version: .http1_1, status: behaviour.status, headers: headers)
            let start = {
                guard context.channel.isActive else { return }
                context.writeAndFlush(self.wrapOutboundOut(.head(head)), promise: nil)
                self.send(behaviour.pieces[...], ending: behaviour.ending, context: context)
            }
            if behaviour.headDelay == .zero {
                start()
            } else {
                context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: behaviour.headDelay) { start() }
            }
        }

        private func send(_ pieces: ArraySlice<Piece>, ending: Ending, context: ChannelHandlerContext) {
            guard let piece = pieces.first else {
                switch ending {
                case .finish: context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                case .close: context.close(promise: nil)
                case .hang: break
                }
                return
            }
            let write = {
                guard context.channel.isActive else { return }
                let buffer = context.channel.allocator.buffer(bytes: piece.bytes)
                context.writeAndFlush(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                self.send(pieces.dropFirst(), ending: ending, context: context)
            }
            if piece.delay == .zero {
                write()
            } else {
                context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: piece.delay) { write() }
            }
        }
    }
}

/// The captured provider streams in /work/shared/data/llm-streams (../shared from the package root).
enum Samples {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/data/llm-streams")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    static let all = [
        "openai_chat_stream_usage.txt", "anthropic_messages_stream_basic.txt",
        "anthropic_messages_stream_error.txt", "llama_cpp_python_0.3.36_stream.txt",
    ]
}
