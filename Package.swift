// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "ExamHub",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "examhub", targets: ["examhub"]),
        .executable(name: "examhub-load", targets: ["examhub-load"]),
        .library(name: "ExamHubServer", targets: ["ExamHubServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP/HTTP only: the gRPC exporter's dependencies are not built.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        // The domain: channels, permissions, history, limits, errors. No I/O, no NIO.
        .target(name: "ExamHubDomain"),
        // The wire codec: JSON values, the envelope of every frame, replies and events; permessage-deflate.
        .target(
            name: "ExamHubWire",
            dependencies: [
                "ExamHubDomain",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        // Token verification and minting (jwt-kit): HS256 and JWKS (RS256/ES256).
        .target(
            name: "ExamHubAuth",
            dependencies: [
                "ExamHubDomain",
                .product(name: "JWTKit", package: "jwt-kit"),
            ]
        ),
        // Persistence: the Store protocol and its embedded SQLite implementation.
        .target(
            name: "ExamHubStore",
            dependencies: [
                "ExamHubDomain", "ExamHubWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The PostgreSQL store (postgres-nio's PostgresClient): the same contract as the SQLite store, for several nodes.
        .target(
            name: "ExamHubPostgres",
            dependencies: [
                "ExamHubDomain", "ExamHubWire", "ExamHubStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Several nodes on one PostgreSQL: the shared channel log, LISTEN/NOTIFY, heartbeats and cluster presence.
        .target(
            name: "ExamHubCluster",
            dependencies: [
                "ExamHubDomain", "ExamHubStore", "ExamHubPostgres", "ExamHubServer", "ExamHubWire",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Proctoring, as a domain with no I/O: telemetry validation and clock correction, profiles as data, the
        // rules engine (match, count, duration, total), merged flags and the decaying risk figure.
        .target(name: "ExamHubProctoring", dependencies: ["ExamHubDomain", "ExamHubWire"]),
        // The assistant's intents: YAML intent files, the trained matcher (n-gram features, linear classifier,
        // out-of-scope threshold), entities. No I/O beyond reading the intent files.
        .target(
            name: "ExamHubIntents",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The LLM gateway client: OpenAI-compatible and Anthropic streaming (SSE) over async-http-client,
        // a provider chain with timeouts, retries before the first token, circuit breakers and budgets.
        .target(
            name: "ExamHubLLM",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The assistant's dialogue, no I/O: content policy, intent answers, what goes to the LLM and in which words.
        .target(name: "ExamHubAssistant", dependencies: ["ExamHubIntents", "ExamHubLLM", "ExamHubDomain"]),
        // The NIO transport: HTTP routes, WebSocket upgrade, connections, channel fan-out, metrics, lifecycle.
        .target(
            name: "ExamHubServer",
            dependencies: [
                "ExamHubDomain", "ExamHubWire", "ExamHubAuth", "ExamHubStore", "ExamHubProctoring",
                "ExamHubAssistant", "ExamHubIntents", "ExamHubLLM",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            // Client/: the sources of ClientAssets.swift (examhub.js, the demo pages, the generator script).
            exclude: ["Client"],
            resources: [.copy("Resources")]
        ),
        // The outbox workers: claiming events, retries with backoff, dead letters; the notification worker (signed
        // webhooks, mail through a SendGrid v3-style API, templates per event type and tenant) and the analytics
        // worker (per-exam roll-ups).
        .target(
            name: "ExamHubWorkers",
            dependencies: [
                "ExamHubDomain", "ExamHubWire", "ExamHubStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // The `examhub` command line: serve, worker, token, migrate; its deployment files in Deploy/.
        .executableTarget(
            name: "examhub",
            dependencies: [
                "ExamHubServer", "ExamHubAuth", "ExamHubStore", "ExamHubPostgres", "ExamHubCluster", "ExamHubDomain",
                "ExamHubProctoring", "ExamHubIntents", "ExamHubLLM", "ExamHubWorkers", "ExamHubWire",
                .product(name: "Yams", package: "Yams"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
            ],
            // Deploy/: the Dockerfile, Kubernetes manifests, Grafana dashboard and Prometheus rules (not Swift).
            exclude: ["Deploy"]
        ),
        // The load tester (LoadTests/): echo, ping and idle sockets against a node or a peer; autosave and proctoring
        // traffic; optionally over TLS and with permessage-deflate.
        .executableTarget(
            name: "examhub-load",
            dependencies: [
                "ExamHubAuth", "ExamHubDomain", "ExamHubWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "LoadTests/Sources/examhub-load"
        ),
        // Fuzz targets (Tests/Fuzz/run.sh builds them with libFuzzer); built normally, a replayer of saved inputs.
        .executableTarget(
            name: "examhub-fuzz",
            dependencies: ["ExamHubDomain", "ExamHubWire", "ExamHubIntents", "ExamHubProctoring"],
            path: "Tests/Fuzz/Sources/examhub-fuzz"
        ),
        .testTarget(name: "ExamHubDomainTests", dependencies: ["ExamHubDomain"]),
        .testTarget(
            name: "ExamHubProctoringTests", dependencies: ["ExamHubProctoring", "ExamHubDomain", "ExamHubWire"],
            exclude: ["Traces"]),
        .testTarget(name: "ExamHubAssistantTests", dependencies: ["ExamHubAssistant", "ExamHubIntents", "ExamHubLLM"]),
        .testTarget(name: "ExamHubIntentsTests", dependencies: ["ExamHubIntents"]),
        .testTarget(
            name: "ExamHubLLMTests",
            dependencies: [
                "ExamHubLLM",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ExamHubWireTests",
            dependencies: ["ExamHubWire", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "ExamHubAuthTests", dependencies: ["ExamHubAuth", "ExamHubDomain"]),
        .testTarget(name: "ExamHubWorkersTests", dependencies: ["ExamHubWorkers", "ExamHubStore", "ExamHubDomain"]),
        .testTarget(name: "ExamHubClusterTests", dependencies: ["ExamHubCluster"]),
        .testTarget(
            name: "ExamHubStoreTests",
            dependencies: ["ExamHubStore", "ExamHubPostgres", "ExamHubDomain", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "ExamHubServerTests",
            dependencies: [
                "ExamHubServer", "ExamHubWire", "ExamHubDomain",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ]
        ),
    ]
)
