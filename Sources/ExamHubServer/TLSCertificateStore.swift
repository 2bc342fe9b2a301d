import ExamHubDomain
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's TLS server context (`EXAMHUB_TLS_CERT`, `EXAMHUB_TLS_KEY`: PEM files), TLS 1.2 or newer, in a
/// lock-protected box that every accepted connection reads once. `reload()` builds a context from the files again
/// and swaps it in: new connections get the new certificate, open ones keep the one they were accepted with, and a
/// bad file leaves the current context in place.
public final class TLSCertificateStore: Sendable {
    /// What the current certificate is, for logs and `config check`: its subject as NIOSSL prints it, the serial
    /// number in hex, and the expiry.
    public struct Summary: Sendable, CustomStringConvertible {
        public var certificate: String
        public var serialHex: String
        public var notValidAfter: Int
        public var chainLength: Int

        public var description: String {
            "\(certificate) serial \(serialHex), valid until \(notValidAfter) (unix), chain of \(chainLength)"
        }
    }

    public let certificatePath: String
    public let keyPath: String
    private let current: NIOLockedValueBox<(context: NIOSSLContext, summary: Summary)>

    /// Loads both files; throws a `HubError` naming the file and the problem.
    public init(certificatePath: String, keyPath: String) throws(HubError) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.current = NIOLockedValueBox(try Self.load(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// The context for a connection accepted now.
    public var context: NIOSSLContext { current.withLockedValue { $0.context } }

    public var summary: Summary { current.withLockedValue { $0.summary } }

    /// Reads the files again; on success new connections use them. On failure nothing changes.
    @discardableResult
    public func reload() throws(HubError) -> Summary {
        let fresh = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
        current.withLockedValue { $0 = fresh }
        return fresh.summary
    }

    /// The server configuration ExamHub uses: TLS 1.2 minimum, HTTP/1.1 over ALPN.
    static func configuration(chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["http/1.1"]
        return tls
    }

    static func load(certificatePath: String, keyPath: String) throws(HubError) -> (
        context: NIOSSLContext, summary: Summary
    ) {
        func fail(_ message: String) -> HubError { HubError(.badRequest, message) }
        guard access(certificatePath, R_OK) == 0 else {
            throw fail("EXAMHUB_TLS_CERT: cannot read \(certificatePath)")
        }
        guard access(keyPath, R_OK) == 0 else { throw fail("EXAMHUB_TLS_KEY: cannot read \(keyPath)") }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificatePath)
        } catch {
            throw fail("EXAMHUB_TLS_CERT: \(certificatePath) is not a PEM certificate (\(error))")
        }
        guard let leaf = chain.first else {
            throw fail("EXAMHUB_TLS_CERT: \(certificatePath) holds no certificate")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw fail("EXAMHUB_TLS_KEY: \(keyPath) is not a PEM private key (\(error))")
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration(chain: chain, key: key))
        } catch {
            throw fail(
                "EXAMHUB_TLS_CERT/EXAMHUB_TLS_KEY: the key does not fit the certificate, or the certificate is "
                    + "unusable (\(error))")
        }
        let serial = leaf.serialNumber.map { byte -> String in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
        let summary = Summary(
            certificate: leaf.description, serialHex: serial, notValidAfter: Int(leaf.notValidAfter),
            chainLength: chain.count)
        return (context, summary)
    }
}

/// Reloads the TLS certificate on SIGHUP (the files are read off the event loops), logging the new certificate, or
/// the error and keeping the old one. Ends on graceful shutdown. SIGHUP is trapped from `init` on, so a hangup
/// sent once the node says it is listening never finds the default action (exit).
public struct CertificateReloadService: Service {
    let store: TLSCertificateStore
    let logger: Logger
    let hangups: UnixSignalsSequence

    public init(store: TLSCertificateStore, logger: Logger) async {
        self.store = store
        self.logger = logger
        self.hangups = await UnixSignalsSequence(trapping: .sighup)
    }

    public func run() async throws {
        for await _ in hangups.cancelOnGracefulShutdown() {
            do {
                let summary = try store.reload()
                logger.notice(
                    "TLS certificate reloaded",
                    metadata: ["examhub.tls.serial": "\(summary.serialHex)", "examhub.tls.cert": "\(summary.certificate)"])
            } catch {
                logger.error(
                    "TLS certificate reload failed; keeping the current certificate",
                    metadata: ["examhub.error": "\(error.message)"])
            }
        }
    }
}
