import Foundation

/// Settings of the matcher: features, training, and the out-of-scope and follow-up thresholds.
public struct MatcherConfiguration: Sendable, Hashable {
    /// Feature extraction. Default: word 1-2-grams and character 3-5-grams, sublinear TF-IDF, L2 norm.
    public var features: FeatureConfiguration
    /// Training. Default: 8 epochs of logistic regression (AdaGrad, weight averaging), seed 42.
    public var training: TrainingConfiguration
    /// A text whose best in-scope probability is below this is out of scope. Default 0.3: for the shipped
    /// `Intents/` (about 30 intents, no out-of-scope data) this rejects small talk and off-topic questions while
    /// keeping held-out paraphrases (measured by `IntentCatalogTests`); ``IntentEvaluation`` tunes it on
    /// validation data for CLINC150.
    public var outOfScopeThreshold: Double
    /// Training examples with this label train an explicit "out of scope" class; predicting it means out of scope.
    /// Default "oos" (CLINC150's label).
    public var outOfScopeLabel: String
    /// Below this confidence a follow-up may inherit the previous intent (see ``DialogContext``). Default 0.5.
    public var followUpThreshold: Double

    /// Creates a configuration; see each property for its default.
    public init(
        features: FeatureConfiguration = FeatureConfiguration(), training: TrainingConfiguration = .init(),
        outOfScopeThreshold: Double = 0.3, outOfScopeLabel: String = "oos", followUpThreshold: Double = 0.5
    ) {
        self.features = features
        self.training = training
        self.outOfScopeThreshold = outOfScopeThreshold
        self.outOfScopeLabel = outOfScopeLabel
        self.followUpThreshold = followUpThreshold
    }
}

extension MatcherConfiguration {
    /// The configuration for large training sets with validation data to tune the threshold on (CLINC150):
    /// multi-class hinge loss (passive-aggressive, scores x 12 before the softmax), word n-grams weighted 2
    /// against character n-grams, and features seen in a single training text dropped (half the weights, as
    /// accurate). 92.6% in-scope accuracy before the threshold on CLINC150 against 91.2% for the
    /// default (README); its confidences are sharper, so it needs a tuned threshold rather than the default 0.3.
    public static var largeDataset: MatcherConfiguration {
        var configuration = MatcherConfiguration()
        configuration.training.loss = .hinge
        configuration.training.hingeScale = 12
        configuration.features.wordWeight = 2
        configuration.features.minDocumentFrequency = 2
        return configuration
    }
}

/// The result of matching one text.
public struct IntentMatch: Sendable, Hashable {
    /// The matched intent; nil when out of scope.
    public var intent: String?
    /// The probability of the best in-scope intent (0-1), also reported when out of scope.
    public var confidence: Double
    /// Entities filled from the text (and, for a follow-up, kept from the previous turn).
    public var entities: [String: EntityValue]
    /// Nothing matched confidently: the hub should hand the text to the LLM gateway (or answer the fallback).
    public var isOutOfScope: Bool
    /// The matched intent's built-in action, which the hub runs to fill the response's slots.
    public var action: BuiltInAction?
    /// Whether the intent's context requirement (in an attempt or not) holds; if not, the response is the
    /// intent's `unavailable:` text and the hub must not run the action.
    public var contextSatisfied: Bool
    /// Whether the intent was inherited from the previous turn.
    public var isFollowUp: Bool
    /// The best in-scope candidate even when out of scope (for logs and `examhub intents try`).
    public var bestCandidate: String?

    /// Creates a match.
    public init(
        intent: String?, confidence: Double, entities: [String: EntityValue] = [:], isOutOfScope: Bool,
        action: BuiltInAction? = nil, contextSatisfied: Bool = true, isFollowUp: Bool = false,
        bestCandidate: String? = nil
    ) {
        self.intent = intent
        self.confidence = confidence
        self.entities = entities
        self.isOutOfScope = isOutOfScope
        self.action = action
        self.contextSatisfied = contextSatisfied
        self.isFollowUp = isFollowUp
        self.bestCandidate = bestCandidate ?? intent
    }
}

/// The trained intent classifier: TF-IDF n-gram features and a softmax linear model, with an out-of-scope
/// decision, entity filling and follow-up handling. Immutable and `Sendable`: train once at start, share freely.
public struct IntentMatcher: Sendable {
    /// The class labels, in model order (may include ``MatcherConfiguration/outOfScopeLabel``).
    public let labels: [String]
    /// The configuration it was trained with; ``MatcherConfiguration/outOfScopeThreshold`` may be changed.
    public var configuration: MatcherConfiguration
    /// The intents whose entities and actions are reported, when built from a catalog.
    public let catalog: IntentCatalog?
    let space: FeatureSpace
    let model: LinearClassifier
    private let outOfScopeClass: Int?

    /// Trains a matcher on `examples` labelled `labels` (one label per example).
    public static func train(
        examples: [String], labels: [String], configuration: MatcherConfiguration = MatcherConfiguration()
    ) -> IntentMatcher {
        IntentMatcher(examples: examples, labels: labels, catalog: nil, configuration: configuration)
    }

    /// Trains a matcher on a catalog's phrases (placeholders expanded with example entity values).
    public init(catalog: IntentCatalog, configuration: MatcherConfiguration = MatcherConfiguration()) {
        var examples: [String] = []
        var labels: [String] = []
        for intent in catalog.intents {
            for phrase in intent.phrases {
                for text in Self.expand(phrase, entities: intent.entities) {
                    examples.append(text)
                    labels.append(intent.name)
                }
            }
        }
        self.init(examples: examples, labels: labels, catalog: catalog, configuration: configuration)
    }

    private init(examples: [String], labels: [String], catalog: IntentCatalog?, configuration: MatcherConfiguration) {
        let count = min(examples.count, labels.count)
        var classes: [String] = []
        var classIndex: [String: Int] = [:]
        var targets: [Int] = []
        targets.reserveCapacity(count)
        for label in labels.prefix(count) {
            if let index = classIndex[label] {
                targets.append(index)
            } else {
                classIndex[label] = classes.count
                targets.append(classes.count)
                classes.append(label)
            }
        }
        let extractor = FeatureExtractor(configuration: configuration.features)
        let hashed = examples.prefix(count).map { extractor.hashedCounts($0) }
        let space = FeatureSpace(fitting: hashed, extractor: extractor)
        let vectors = hashed.map { space.vector($0) }
        self.model = LinearClassifier(
            vectors: vectors, labels: targets, classCount: classes.count, dimension: space.dimension,
            configuration: configuration.training)
        self.space = space
        self.labels = classes
        self.configuration = configuration
        self.catalog = catalog
        self.outOfScopeClass = classIndex[configuration.outOfScopeLabel]
    }

    /// The best in-scope label, its probability, and whether the explicit out-of-scope class won.
    public func classify(_ text: String) -> (label: String?, probability: Double, outOfScopeClassWon: Bool) {
        classify(vector: space.vector(text))
    }

    func classify(vector: SparseVector) -> (label: String?, probability: Double, outOfScopeClassWon: Bool) {
        let probabilities = model.probabilities(vector)
        var best = -1
        var bestProbability: Float = -1
        var top = 0
        for (index, probability) in probabilities.enumerated() {
            if probability > probabilities[top] { top = index }
            if index != outOfScopeClass, probability > bestProbability {
                best = index
                bestProbability = probability
            }
        }
        let label = best >= 0 && best < labels.count ? labels[best] : nil
        guard label != nil else { return (nil, 0, false) }
        return (label, Double(max(0, bestProbability)), outOfScopeClass == top)
    }

    /// Matches `text`: the intent (or out of scope), its confidence, entities, action and context check.
    /// Never fails: empty, huge (capped at 2,000 characters) or odd text gives an out-of-scope or a normal match; a
    /// text with no word or character n-gram seen in training is out of scope.
    public func match(_ text: String, context: DialogContext? = nil) -> IntentMatch {
        let tokens = space.extractor.normalizer.tokens(text)
        let vector = space.vector(space.extractor.hashedCounts(tokens: tokens))
        let result = classify(vector: vector)
        // No feature seen in training: the model knows nothing about this text.
        let outOfScope =
            vector.count == 0 || result.outOfScopeClassWon || result.label == nil
            || result.probability < configuration.outOfScopeThreshold
        let today = context?.today ?? CalendarDate(Date())
        let builtIns = EntityExtractor.builtIns(in: tokens, today: today)

        if let context, let previous = context.previousIntent,
            outOfScope || result.probability < configuration.followUpThreshold,
            let inherited = followUp(
                tokens: tokens, builtIns: builtIns, previous: previous, context: context,
                confidence: result.probability)
        {
            return inherited
        }
        guard !outOfScope, let label = result.label else {
            return IntentMatch(
                intent: nil, confidence: result.probability, isOutOfScope: true, bestCandidate: result.label)
        }
        let intent = catalog?.intent(named: label)
        let entities =
            intent.map { fill($0.entities, tokens: tokens, builtIns: builtIns).entities }
            ?? Self.genericEntities(builtIns)
        return IntentMatch(
            intent: label, confidence: result.probability, entities: entities, isOutOfScope: false,
            action: intent?.action,
            contextSatisfied: intent?.context.isSatisfied(inAttempt: context?.inAttempt ?? false) ?? true)
    }

    // MARK: - Entities and follow-ups

    private typealias BuiltIns = (numbers: [EntityMention], durations: [EntityMention], dates: [EntityMention])

    private func followUp(
        tokens: [String], builtIns: BuiltIns, previous: String, context: DialogContext, confidence: Double
    ) -> IntentMatch? {
        guard let intent = catalog?.intent(named: previous) else { return nil }
        let filled = fill(intent.entities, tokens: tokens, builtIns: builtIns)
        let valuesOnly = !filled.entities.isEmpty && tokens.count <= filled.coveredTokens + 3
        guard DialogContext.looksLikeFollowUp(tokens) || valuesOnly else { return nil }
        // Every value in the text must fit one of the previous intent's entities.
        let mentioned = builtIns.numbers.count + builtIns.durations.count + builtIns.dates.count
        guard filled.builtInsUsed == mentioned else { return nil }
        var entities = context.previousEntities
        for (name, value) in filled.entities { entities[name] = value }
        return IntentMatch(
            intent: intent.name, confidence: confidence,
            entities: entities, isOutOfScope: false, action: intent.action,
            contextSatisfied: intent.context.isSatisfied(inAttempt: context.inAttempt), isFollowUp: true)
    }

    private func fill(_ definitions: [EntityDefinition], tokens: [String], builtIns: BuiltIns) -> (
        entities: [String: EntityValue], builtInsUsed: Int, coveredTokens: Int
    ) {
        var entities: [String: EntityValue] = [:]
        var next = (numbers: 0, durations: 0, dates: 0)
        var covered = 0
        for definition in definitions {
            var mention: EntityMention?
            switch definition.kind {
            case .list(let values):
                mention =
                    EntityExtractor.listMentions(of: values, in: tokens, normalizer: space.extractor.normalizer)
                    .first
            case .number:
                if next.numbers < builtIns.numbers.count {
                    mention = builtIns.numbers[next.numbers]
                    next.numbers += 1
                }
            case .duration:
                if next.durations < builtIns.durations.count {
                    mention = builtIns.durations[next.durations]
                    next.durations += 1
                }
            case .date:
                if next.dates < builtIns.dates.count {
                    mention = builtIns.dates[next.dates]
                    next.dates += 1
                }
            }
            if let mention {
                entities[definition.name] = mention.value
                covered += mention.range.count
            }
        }
        return (entities, next.numbers + next.durations + next.dates, covered)
    }

    private static func genericEntities(_ builtIns: BuiltIns) -> [String: EntityValue] {
        var entities: [String: EntityValue] = [:]
        if let first = builtIns.numbers.first { entities["number"] = first.value }
        if let first = builtIns.durations.first { entities["duration"] = first.value }
        if let first = builtIns.dates.first { entities["date"] = first.value }
        return entities
    }

    /// Training texts for a phrase: `{entity}` placeholders replaced by a few example values.
    static func expand(_ phrase: String, entities: [EntityDefinition]) -> [String] {
        let slots = IntentCatalog.slots(in: phrase)
        guard !slots.isEmpty else { return [phrase] }
        var results: [String] = []
        for variant in 0..<3 {
            var values: [String: String] = [:]
            for definition in entities {
                let samples: [String]
                switch definition.kind {
                case .list(let list): samples = list.flatMap { [$0.value] + $0.synonyms }
                case .number: samples = ["3", "12", "five"]
                case .duration: samples = ["10 minutes", "an hour", "5 mins"]
                case .date: samples = ["tomorrow", "2026-12-01", "next monday"]
                }
                if !samples.isEmpty { values[definition.name] = samples[variant % samples.count] }
            }
            let text = IntentCatalog.render(phrase, values: values)
            if !results.contains(text) { results.append(text) }
        }
        return results
    }
}
