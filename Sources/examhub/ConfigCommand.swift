import ArgumentParser
import ExamHubIntents
import ExamHubLLM
import ExamHubServer
import Foundation

/// `examhub config check`: reads the configuration as `serve` would (flags aside) and prints the effective value of
/// every setting with where it came from (secrets masked), then checks it all: the hub's settings, the proctoring
/// profiles, the intent files and the LLM chain. Exits 1 with every problem found.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check the configuration.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check", abstract: "Print the effective configuration (secrets masked) and every problem.")

        @Option(help: "A YAML configuration file (default: EXAMHUB_CONFIG).") var config: String?

        func run() async throws {
            let env: Environment
            do {
                env = try Environment.resolved(configFile: config)
            } catch let error as ValidationError {
                FileHandle.standardError.write(Data("\(error.message)\n".utf8))
                throw ExitCode(1)
            }
            let file = config ?? ProcessInfo.processInfo.environment["EXAMHUB_CONFIG"]
            let fromFile = (try? file.map(ConfigFile.load(path:))) ?? nil
            var lines: [String] = []
            for setting in ConfigFile.settings {
                guard let value = env[setting.name] else { continue }
                let origin = ProcessInfo.processInfo.environment[setting.name].map { $0.isEmpty ? nil : $0 } != nil
                    ? "environment" : (fromFile?[setting.name] != nil ? "file" : "environment")
                lines.append("\(setting.key) = \(ConfigFile.shown(value, for: setting))    # \(setting.name), from the \(origin)")
            }
            print(lines.isEmpty ? "# every setting at its default" : lines.joined(separator: "\n"))
            var problems: [String] = []
            do {
                let hub = try env.hubConfiguration()
                do { try hub.validate() } catch { problems.append(error.message) }
                print("# effective: \(hub.host):\(hub.port), dev mode \(hub.devMode ? "on" : "off"), \(hub.eventLoopThreads) threads")
                if let cert = hub.tlsCertificatePath, let key = hub.tlsKeyPath {
                    do {
                        let tls = try TLSCertificateStore(certificatePath: cert, keyPath: key)
                        print("# TLS: \(tls.summary)")
                    } catch {
                        problems.append(error.message)
                    }
                }
                let deflate = hub.compression
                print(
                    "# compression: "
                        + (deflate.enabled
                            ? "permessage-deflate, window \(deflate.maxWindowBits) bits, from \(deflate.minBytes) bytes"
                            : "off"))
            } catch let error as ValidationError {
                problems.append(error.message)
            }
            do { _ = try env.profileLibrary() } catch let error as ValidationError { problems.append(error.message) }
            do {
                let dir = try AssistantSetupLoader.intentsDirectory(env)
                do {
                    let catalog = try IntentCatalog.load(directory: dir)
                    print("# intents: \(catalog.intents.count) from \(dir.path)")
                } catch let error as IntentCatalogError {
                    problems.append(error.description)
                }
            } catch let error as ValidationError {
                problems.append(error.message)
            }
            do {
                let llm = try LLMConfiguration.load(file: env["EXAMHUB_LLM_CONFIG"], environment: env.values)
                print("# LLM providers: \(llm.isEnabled ? llm.providers.map(\.name).joined(separator: ", ") : "none")")
            } catch let error as LLMError {
                problems.append(error.message)
            }
            if env["EXAMHUB_JWT_SECRET"] == nil, env["EXAMHUB_JWKS"] == nil, (try? env.bool("EXAMHUB_DEV")) == false {
                problems.append("set EXAMHUB_JWT_SECRET or EXAMHUB_JWKS (or EXAMHUB_DEV=1 for development)")
            }
            guard problems.isEmpty else {
                FileHandle.standardError.write(Data((problems.joined(separator: "\n") + "\n").utf8))
                throw ExitCode(1)
            }
            print("# configuration ok")
        }
    }
}
