/// Which features the matcher extracts from a text, and how they are weighted. Defaults are the ones measured on
/// CLINC150 (see the README's numbers); every field is documented with its default.
public struct FeatureConfiguration: Sendable, Hashable {
    /// Word n-gram orders over stemmed tokens. Default 1...2 (unigrams and bigrams).
    public var wordNGrams: ClosedRange<Int>
    /// Character n-gram orders, taken inside each token padded with boundary marks (`<exam>`). Default 3...5.
    /// An empty range (`0...0`) turns character n-grams off.
    public var charNGrams: ClosedRange<Int>
    /// Multiplier on word n-gram counts before TF-IDF. Default 1.
    public var wordWeight: Float
    /// Multiplier on character n-gram counts before TF-IDF. Default 1.
    public var charWeight: Float
    /// `1 + log(tf)` instead of raw counts. Default true.
    public var sublinearTF: Bool
    /// Features seen in fewer training texts are dropped. Default 1 (keep everything).
    public var minDocumentFrequency: Int

    /// Creates a feature configuration; see each property for its default.
    public init(
        wordNGrams: ClosedRange<Int> = 1...2, charNGrams: ClosedRange<Int> = 3...5, wordWeight: Float = 1,
        charWeight: Float = 1, sublinearTF: Bool = true, minDocumentFrequency: Int = 1
    ) {
        self.wordNGrams = wordNGrams
        self.charNGrams = charNGrams
        self.wordWeight = wordWeight
        self.charWeight = charWeight
        self.sublinearTF = sublinearTF
        self.minDocumentFrequency = max(1, minDocumentFrequency)
    }
}

/// A sparse feature vector: parallel arrays of feature indices (ascending) and values.
public struct SparseVector: Sendable, Hashable {
    /// Feature indices, ascending, no duplicates.
    public var indices: [Int32]
    /// The value of each index.
    public var values: [Float]

    /// Creates a vector from parallel arrays.
    public init(indices: [Int32] = [], values: [Float] = []) {
        self.indices = indices
        self.values = values
    }

    /// The number of non-zero entries.
    public var count: Int { indices.count }
}

/// One extracted feature: its 64-bit hash, how often it occurs in the text, and its block weight.
public struct HashedFeature: Sendable, Hashable {
    /// The namespaced 64-bit hash of the n-gram.
    public var hash: UInt64
    /// Occurrences in the text.
    public var count: Float
    /// The block weight (``FeatureConfiguration/wordWeight`` or ``FeatureConfiguration/charWeight``).
    public var weight: Float
}

/// Extracts hashed n-gram features (64-bit hashes, namespaced by kind so words and character grams never collide)
/// with their weighted counts. The vocabulary and IDF weights that turn them into a ``SparseVector`` live in
/// ``FeatureSpace``.
public struct FeatureExtractor: Sendable {
    /// The feature configuration.
    public let configuration: FeatureConfiguration
    /// The tokenizer.
    public let normalizer: TextNormalizer

    /// Creates an extractor.
    public init(configuration: FeatureConfiguration = FeatureConfiguration(), normalizer: TextNormalizer = .init()) {
        self.configuration = configuration
        self.normalizer = normalizer
    }

    /// Hashed features of `text` with their counts and block weights, sorted by hash.
    public func hashedCounts(_ text: String) -> [HashedFeature] {
        hashedCounts(tokens: normalizer.tokens(text))
    }

    /// Hashed features of already normalized tokens, sorted by hash.
    public func hashedCounts(tokens: [String]) -> [HashedFeature] {
        var hashes: [(UInt64, Float)] = []
        hashes.reserveCapacity(tokens.count * 16 + 4)
        let stems = tokens.map { Self.wordForm($0) }
        let words = configuration.wordWeight
        for order in configuration.wordNGrams where order >= 1 && order <= stems.count {
            for start in 0...(stems.count - order) {
                var hash = Self.seed(kind: UInt64(order))
                for index in start..<(start + order) {
                    for scalar in stems[index].unicodeScalars { hash = Self.mix(hash, UInt64(scalar.value)) }
                    hash = Self.mix(hash, 0x20)
                }
                hashes.append((hash, words))
            }
        }
        let chars = configuration.charWeight
        if configuration.charNGrams.lowerBound >= 1 {
            var padded: [UInt32] = []
            for token in tokens {
                padded.removeAll(keepingCapacity: true)
                padded.append(0x3C)  // <
                for scalar in token.unicodeScalars {
                    padded.append((0x30...0x39).contains(scalar.value) ? 0x30 : scalar.value)
                    if padded.count > 64 { break }  // a pathological "word": its prefix is plenty
                }
                padded.append(0x3E)  // >
                for order in configuration.charNGrams where order <= padded.count {
                    let kind = Self.seed(kind: 100 + UInt64(order))
                    for start in 0...(padded.count - order) {
                        var hash = kind
                        for index in start..<(start + order) { hash = Self.mix(hash, UInt64(padded[index])) }
                        hashes.append((hash, chars))
                    }
                }
            }
        }
        hashes.sort { $0.0 < $1.0 }
        var result: [HashedFeature] = []
        result.reserveCapacity(hashes.count)
        for (hash, weight) in hashes {
            if let last = result.last, last.hash == hash {
                result[result.count - 1].count += 1
            } else {
                result.append(HashedFeature(hash: hash, count: 1, weight: weight))
            }
        }
        return result
    }

    /// The form a token takes in word features: stemmed, with numbers collapsed to one token.
    static func wordForm(_ token: String) -> String {
        if let first = token.unicodeScalars.first, (0x30...0x39).contains(first.value) { return "<num>" }
        return TextNormalizer.stem(token)
    }

    @inline(__always)
    static func seed(kind: UInt64) -> UInt64 {
        mix(0xcbf2_9ce4_8422_2325, kind &* 0x9E37_79B9_7F4A_7C15)
    }

    @inline(__always)
    static func mix(_ hash: UInt64, _ value: UInt64) -> UInt64 {
        (hash ^ value) &* 0x0000_0100_0000_01B3
    }
}

/// The vocabulary (hash -> dense index) and IDF weights learned from training texts; turns texts into L2-normalized
/// TF-IDF ``SparseVector``s. Features never seen in training are dropped.
public struct FeatureSpace: Sendable {
    /// The extractor used for training and matching.
    public let extractor: FeatureExtractor
    private let vocabulary: [UInt64: Int32]
    private let idf: [Float]

    /// The number of features (the dimension of the vectors).
    public var dimension: Int { idf.count }

    /// Learns the vocabulary and IDF weights from `texts`.
    public init(fitting texts: [[HashedFeature]], extractor: FeatureExtractor) {
        var documentFrequency: [UInt64: Int] = [:]
        for features in texts {
            for feature in features { documentFrequency[feature.hash, default: 0] += 1 }
        }
        let minimum = extractor.configuration.minDocumentFrequency
        var vocabulary: [UInt64: Int32] = [:]
        vocabulary.reserveCapacity(documentFrequency.count)
        var idf: [Float] = []
        let documents = Float(texts.count)
        for (hash, frequency) in documentFrequency.sorted(by: { $0.key < $1.key }) where frequency >= minimum {
            vocabulary[hash] = Int32(idf.count)
            idf.append(logf((1 + documents) / (1 + Float(frequency))) + 1)
        }
        self.extractor = extractor
        self.vocabulary = vocabulary
        self.idf = idf
    }

    /// The TF-IDF vector of `text`.
    public func vector(_ text: String) -> SparseVector {
        vector(extractor.hashedCounts(text))
    }

    /// The TF-IDF vector of already extracted features.
    public func vector(_ features: [HashedFeature]) -> SparseVector {
        var pairs: [(Int32, Float)] = []
        pairs.reserveCapacity(features.count)
        let sublinear = extractor.configuration.sublinearTF
        for feature in features {
            guard let index = vocabulary[feature.hash] else { continue }
            let tf = sublinear ? 1 + logf(max(feature.count, 1)) : feature.count
            pairs.append((index, tf * feature.weight * idf[Int(index)]))
        }
        pairs.sort { $0.0 < $1.0 }
        var norm: Float = 0
        for pair in pairs { norm += pair.1 * pair.1 }
        let scale: Float = norm > 0 ? 1 / norm.squareRoot() : 0
        return SparseVector(indices: pairs.map(\.0), values: pairs.map { $0.1 * scale })
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
