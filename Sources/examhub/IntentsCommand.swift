import ArgumentParser
import ExamHubIntents
import Foundation

/// `examhub intents`: validate the assistant's intent files, try the matcher, evaluate it on CLINC150.
struct IntentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "intents", abstract: "The assistant's intent matcher: check, try, eval.",
        subcommands: [Check.self, Try.self, Eval.self])

    /// `examhub intents check`: validates the intent files; exit code 1 with `file:line: message` lines.
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate the intent files (file:line errors).")

        @Option(help: "The intents folder.") var dir: String = "Intents"

        func run() throws {
            let catalog = try loadCatalog(dir)
            let phrases = catalog.intents.reduce(0) { $0 + $1.phrases.count }
            print("\(dir): \(catalog.intents.count) intents, \(phrases) phrases, OK")
        }
    }

    /// `examhub intents try "text"`: prints the match of a text against the intent files.
    struct Try: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Match a text and print the result.")

        @Option(help: "The intents folder.") var dir: String = "Intents"
        @Flag(help: "Match as a user in an exam attempt.") var inAttempt = false
        @Argument(help: "Texts to match, in order (later ones are follow-ups of earlier ones).") var texts: [String]

        func run() throws {
            let catalog = try loadCatalog(dir)
            let matcher = IntentMatcher(catalog: catalog)
            var dialog = DialogContext(inAttempt: inAttempt)
            for text in texts {
                let match = matcher.match(text, context: dialog)
                dialog.record(match)
                let entities = match.entities.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                let name =
                    match.isOutOfScope ? "out of scope (best: \(match.bestCandidate ?? "-"))" : match.intent ?? "-"
                print(
                    "\(text)\n  -> \(name) confidence \(String(format: "%.3f", match.confidence))"
                        + (match.isFollowUp ? " follow-up" : "")
                        + (match.action.map { " action \($0.rawValue)" } ?? "")
                        + (match.contextSatisfied ? "" : " (context not met)")
                        + (entities.isEmpty ? "" : " entities " + entities.joined(separator: " ")))
                print("  " + catalog.respond(to: match, slots: [:], variantSeed: 0))
            }
        }
    }

    /// `examhub intents eval --clinc PATH`: train on CLINC150 and report accuracy, OOS recall and timings.
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train and evaluate on a data set in CLINC150's JSON layout.")

        @Option(help: "A data set in CLINC150's JSON layout (e.g. clinc150_data_full.json).") var clinc: String
        @Flag(help: "Print one JSON object.") var json = false
        @Flag(help: "Use oos_train only for the threshold, not as an extra class.") var noOosClass = false
        @Option(help: "Loss: hinge (default for this command) or logistic (the default of the hub's matcher).")
        var loss: String = "hinge"
        @Option(help: "Training epochs.") var epochs: Int?
        @Option(help: "Word n-gram weight relative to character n-grams.") var wordWeight: Float?
        @Option(help: "Validation in-scope accuracy the threshold may cost (0-1).") var maxAccuracyDrop: Double = 0.005
        @Option(help: "Character n-gram orders, e.g. 3-5 (0-0 turns them off).") var charNgrams: String?
        @Option(help: "Weight of character n-grams relative to words.") var charWeight: Float?
        @Option(help: "AdaGrad learning rate.") var learningRate: Float?
        @Option(help: "Minimum document frequency of a feature.") var minDf: Int?

        func run() throws {
            let dataset: ClincDataset
            do {
                dataset = try ClincDataset.load(path: clinc)
            } catch {
                FileHandle.standardError.write(Data("examhub intents eval: \(clinc): \(error)\n".utf8))
                throw ExitCode.failure
            }
            var configuration = MatcherConfiguration.largeDataset
            switch loss {
            case "hinge": break
            case "logistic":
                configuration.training.loss = .logistic
                configuration.features.wordWeight = 1
            default: throw ValidationError("--loss is hinge or logistic")
            }
            if let wordWeight { configuration.features.wordWeight = wordWeight }
            if let epochs { configuration.training.epochs = epochs }
            if let learningRate { configuration.training.learningRate = learningRate }
            if let charWeight { configuration.features.charWeight = charWeight }
            if let minDf { configuration.features.minDocumentFrequency = minDf }
            if let charNgrams {
                let parts = charNgrams.split(separator: "-").compactMap { Int($0) }
                guard parts.count == 2, parts[0] <= parts[1] else {
                    throw ValidationError("--char-ngrams is like 3-5")
                }
                configuration.features.charNGrams = parts[0]...parts[1]
            }
            let report = IntentEvaluation(
                configuration: configuration, trainOutOfScopeClass: !noOosClass, maxAccuracyDrop: maxAccuracyDrop
            ).run(dataset)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
                return
            }
            func percent(_ value: Double) -> String { String(format: "%.2f%%", value * 100) }
            print(
                "training: \(report.trainExamples) examples, \(report.classes) classes, \(report.features) features"
                    + (report.oosTrainedAsClass ? " (oos_train as a class)" : ""))
            print(
                "in-scope accuracy: \(percent(report.inScopeAccuracy))"
                    + " (no threshold: \(percent(report.inScopeAccuracyNoThreshold)))")
            if let recall = report.oosRecall {
                print(
                    "out-of-scope recall: \(percent(recall)) (threshold \(report.threshold.map { String($0) } ?? "-"))")
            }
            print(String(format: "training time: %.2f s (%.2f s CPU)", report.trainSeconds, report.trainCPUSeconds))
            print(String(format: "match latency: p50 %.3f ms, p99 %.3f ms", report.matchP50Ms, report.matchP99Ms))
        }
    }
}

/// Loads the intent files, printing `file:line: message` issues and exiting 1 when they are invalid.
private func loadCatalog(_ dir: String) throws -> IntentCatalog {
    do {
        return try IntentCatalog.load(directory: URL(fileURLWithPath: dir))
    } catch let error as IntentCatalogError {
        FileHandle.standardError.write(Data((error.description + "\n").utf8))
        throw ExitCode.failure
    } catch {
        FileHandle.standardError.write(
            Data("examhub intents: cannot read the folder \(dir): \(error.localizedDescription)\n".utf8))
        throw ExitCode.failure
    }
}
