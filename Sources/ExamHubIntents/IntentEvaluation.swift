import Foundation

/// A labelled data set in CLINC150's JSON layout: an object of splits (`train`, `val`, `test`, and optionally
/// `oos_train`, `oos_val`, `oos_test`), each a list of `[text, label]` pairs.
public struct ClincDataset: Sendable {
    /// One `[text, label]` pair.
    public typealias Example = (text: String, label: String)

    /// The splits by name.
    public var splits: [String: [Example]]

    /// Creates a data set from splits.
    public init(splits: [String: [Example]]) { self.splits = splits }

    /// Reads a data set file.
    /// - Throws: the file system's error, or ``ClincDataset/FormatError`` when it is not in CLINC's layout.
    public static func load(path: String) throws -> ClincDataset {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try parse(data)
    }

    /// Parses a data set from JSON.
    /// - Throws: ``ClincDataset/FormatError`` when it is not an object of lists of `[text, label]` pairs.
    public static func parse(_ data: Data) throws -> ClincDataset {
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw FormatError(message: "expected a JSON object of splits")
        }
        var splits: [String: [Example]] = [:]
        for (name, value) in object {
            guard let rows = value as? [Any] else { continue }
            var examples: [Example] = []
            examples.reserveCapacity(rows.count)
            for row in rows {
                guard let pair = row as? [Any], pair.count >= 2, let text = pair[0] as? String,
                    let label = pair[1] as? String
                else { throw FormatError(message: "split '\(name)': expected [text, label] pairs") }
                examples.append((text, label))
            }
            splits[name] = examples
        }
        guard splits["train"] != nil, splits["test"] != nil else {
            throw FormatError(message: "expected at least the 'train' and 'test' splits")
        }
        return ClincDataset(splits: splits)
    }

    /// The data set is not in CLINC's layout.
    public struct FormatError: Error, Sendable, CustomStringConvertible {
        /// What is wrong.
        public var message: String
        /// The message.
        public var description: String { message }
    }

    /// The examples of split `name` (empty when absent).
    public func split(_ name: String) -> [Example] { splits[name] ?? [] }

    /// A smaller data set keeping only the first `count` in-scope labels (in sorted order) and the out-of-scope
    /// splits, for quick tests.
    public func restricted(toLabels count: Int) -> ClincDataset {
        let keep = Set(Set(split("train").map(\.label)).sorted().prefix(count))
        var result: [String: [Example]] = [:]
        for (name, examples) in splits {
            result[name] = name.hasPrefix("oos") ? examples : examples.filter { keep.contains($0.label) }
        }
        return ClincDataset(splits: result)
    }
}

/// Trains and evaluates the matcher on a ``ClincDataset`` the way CLINC150's paper reports it: in-scope accuracy
/// on `test` (correct only when the intent is right and not rejected) and out-of-scope recall on `oos_test`, with
/// the out-of-scope threshold chosen on `val` / `oos_val`.
public struct IntentEvaluation: Sendable {
    /// What an evaluation measured.
    public struct Report: Sendable, Codable, Hashable {
        /// In-scope accuracy on `test` (0-1).
        public var inScopeAccuracy: Double
        /// Out-of-scope recall on `oos_test` (0-1); nil without out-of-scope splits.
        public var oosRecall: Double?
        /// In-scope accuracy on `test` with no out-of-scope rejection at all (0-1).
        public var inScopeAccuracyNoThreshold: Double
        /// The chosen out-of-scope threshold; nil without out-of-scope validation data.
        public var threshold: Double?
        /// Whether `oos_train` was used as an extra class.
        public var oosTrainedAsClass: Bool
        /// Wall-clock seconds spent training (features, vocabulary and classifier).
        public var trainSeconds: Double
        /// CPU seconds of this process spent training (single-threaded; less than `trainSeconds` on a busy machine).
        public var trainCPUSeconds: Double
        /// Median latency of one `match` call, in milliseconds.
        public var matchP50Ms: Double
        /// 99th percentile latency of one `match` call, in milliseconds.
        public var matchP99Ms: Double
        /// Median CPU time of one `match` call (this thread), in milliseconds: the latency without the time the
        /// thread waited for a core on a busy machine.
        public var matchCPUP50Ms: Double
        /// 99th percentile CPU time of one `match` call (this thread), in milliseconds.
        public var matchCPUP99Ms: Double
        /// Training examples and classes.
        public var trainExamples: Int
        /// The number of classes, including the out-of-scope class when trained.
        public var classes: Int
        /// The number of features in the vocabulary.
        public var features: Int
    }

    /// The configuration to train with (its threshold is replaced by the tuned one).
    public var configuration: MatcherConfiguration
    /// Train `oos_train` as an extra class (true) or use out-of-scope data only for the threshold (false).
    public var trainOutOfScopeClass: Bool

    /// How much validation in-scope accuracy the threshold may cost (0-1). The threshold maximizes in-scope accuracy
    /// plus out-of-scope recall on validation data among thresholds that keep in-scope accuracy within this of its
    /// value with no threshold. Default 0.005 (half a point).
    public var maxAccuracyDrop: Double

    /// Creates an evaluation. Defaults: ``MatcherConfiguration/largeDataset`` and `oos_train` as an extra class,
    /// which measured better on CLINC150 (README).
    public init(
        configuration: MatcherConfiguration = .largeDataset, trainOutOfScopeClass: Bool = true,
        maxAccuracyDrop: Double = 0.005
    ) {
        self.configuration = configuration
        self.trainOutOfScopeClass = trainOutOfScopeClass
        self.maxAccuracyDrop = maxAccuracyDrop
    }

    /// Trains on `train` (+ `oos_train`), tunes the threshold on `val`/`oos_val`, measures on `test`/`oos_test`.
    public func run(_ dataset: ClincDataset) -> Report {
        var configuration = self.configuration
        var training = dataset.split("train")
        let useOOSClass = trainOutOfScopeClass && !dataset.split("oos_train").isEmpty
        if useOOSClass { training += dataset.split("oos_train") }
        configuration.outOfScopeLabel = useOOSClass ? dataset.split("oos_train")[0].label : "\u{0}none"

        let clock = ContinuousClock()
        let start = clock.now
        let cpuStart = Self.processCPUSeconds()
        var matcher = IntentMatcher.train(
            examples: training.map(\.text), labels: training.map(\.label), configuration: configuration)
        let trainSeconds = Self.seconds(clock.now - start)
        let trainCPUSeconds = Self.processCPUSeconds() - cpuStart

        let hasOOS = !dataset.split("oos_val").isEmpty && !dataset.split("oos_test").isEmpty
        var threshold: Double?
        if hasOOS {
            let inScope = dataset.split("val").map { (matcher.classify($0.text), $0.label) }
            let outOfScope = dataset.split("oos_val").map { matcher.classify($0.text) }
            threshold = Self.tuneThreshold(inScope: inScope, outOfScope: outOfScope, maxAccuracyDrop: maxAccuracyDrop)
        }
        matcher.configuration.outOfScopeThreshold = threshold ?? 0
        let rejectWithClass = hasOOS

        var latencies: [Double] = []
        var cpuLatencies: [Double] = []
        var correct = 0
        var correctNoThreshold = 0
        let test = dataset.split("test")
        for example in test {
            let begin = clock.now
            let cpuBegin = Self.threadCPUSeconds()
            let match = matcher.match(example.text)
            cpuLatencies.append((Self.threadCPUSeconds() - cpuBegin) * 1_000)
            latencies.append(Self.seconds(clock.now - begin) * 1_000)
            let result = matcher.classify(example.text)
            if result.label == example.label { correctNoThreshold += 1 }
            if rejectWithClass {
                if !match.isOutOfScope, match.intent == example.label { correct += 1 }
            } else if result.label == example.label {
                correct += 1
            }
        }
        var oosRecall: Double?
        if hasOOS {
            let oosTest = dataset.split("oos_test")
            var rejected = 0
            for example in oosTest {
                let begin = clock.now
                let cpuBegin = Self.threadCPUSeconds()
                let match = matcher.match(example.text)
                cpuLatencies.append((Self.threadCPUSeconds() - cpuBegin) * 1_000)
                latencies.append(Self.seconds(clock.now - begin) * 1_000)
                if match.isOutOfScope { rejected += 1 }
            }
            oosRecall = Double(rejected) / Double(max(1, oosTest.count))
        }
        latencies.sort()
        cpuLatencies.sort()
        return Report(
            inScopeAccuracy: Double(correct) / Double(max(1, test.count)), oosRecall: oosRecall,
            inScopeAccuracyNoThreshold: Double(correctNoThreshold) / Double(max(1, test.count)),
            threshold: threshold, oosTrainedAsClass: useOOSClass, trainSeconds: trainSeconds,
            trainCPUSeconds: trainCPUSeconds,
            matchP50Ms: Self.percentile(latencies, 0.50), matchP99Ms: Self.percentile(latencies, 0.99),
            matchCPUP50Ms: Self.percentile(cpuLatencies, 0.50), matchCPUP99Ms: Self.percentile(cpuLatencies, 0.99),
            trainExamples: training.count, classes: matcher.labels.count, features: matcher.space.dimension)
    }

    /// The threshold (a multiple of 0.01) maximizing in-scope accuracy + out-of-scope recall on validation data
    /// among those that keep in-scope accuracy within `maxAccuracyDrop` of the accuracy with no threshold other
    /// than the out-of-scope class (ties: the lower one).
    static func tuneThreshold(
        inScope: [((label: String?, probability: Double, outOfScopeClassWon: Bool), String)],
        outOfScope: [(label: String?, probability: Double, outOfScopeClassWon: Bool)], maxAccuracyDrop: Double = 1
    ) -> Double {
        func accuracy(_ threshold: Double) -> Double {
            let accepted = inScope.filter { result, label in
                !result.outOfScopeClassWon && result.probability >= threshold && result.label == label
            }.count
            return Double(accepted) / Double(max(1, inScope.count))
        }
        let floor = accuracy(0) - maxAccuracyDrop - 1e-12
        var best = (score: -1.0, threshold: 0.0)
        for step in 0..<100 {
            let threshold = Double(step) / 100
            let inScopeAccuracy = accuracy(threshold)
            guard inScopeAccuracy >= floor else { continue }
            let rejected = outOfScope.filter { $0.outOfScopeClassWon || $0.probability < threshold }.count
            let score = inScopeAccuracy + Double(rejected) / Double(max(1, outOfScope.count))
            if score > best.score + 1e-12 { best = (score, threshold) }
        }
        return best.threshold
    }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
        return sorted[index]
    }

    static func threadCPUSeconds() -> Double {
        #if canImport(Glibc) || canImport(Musl)
            var time = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
            return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
        #else
            return processCPUSeconds()
        #endif
    }

    static func processCPUSeconds() -> Double {
        Double(clock()) / Double(CLOCKS_PER_SEC)
    }

    static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
