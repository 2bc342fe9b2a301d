/// How the linear classifier is trained. Defaults are the ones measured on CLINC150 (README).
public struct TrainingConfiguration: Sendable, Hashable {
    /// Passes over the training data. Default 8.
    public var epochs: Int
    /// AdaGrad base learning rate. Default 0.1.
    public var learningRate: Float
    /// Seed of the shuffling; the same seed and data give the same model. Default 42.
    public var seed: UInt64
    /// Examples whose gradient norm is below this are skipped (already fitted; a speed-up in later epochs).
    /// Default 1e-3.
    public var gradientFloor: Float

    /// Return the average of the weights over all steps (Polyak averaging, a cheap regularizer) rather than the
    /// last weights. Default true.
    public var averaging: Bool

    /// Creates a training configuration; see each property for its default.
    public init(
        epochs: Int = 8, learningRate: Float = 0.1, seed: UInt64 = 42, gradientFloor: Float = 1e-3,
        averaging: Bool = true
    ) {
        self.averaging = averaging
        self.epochs = max(1, epochs)
        self.learningRate = learningRate
        self.seed = seed
        self.gradientFloor = gradientFloor
    }
}

/// Multinomial logistic regression over sparse vectors, trained with AdaGrad SGD. Weights are one flat
/// `[dimension x classes]` array so that a feature's weights for every class are contiguous.
public struct SoftmaxClassifier: Sendable {
    /// The number of classes.
    public let classCount: Int
    /// The input dimension.
    public let dimension: Int
    private var weights: [Float]
    private var bias: [Float]

    /// Trains a classifier on `vectors` labelled `labels` (each in `0..<classCount`).
    public init(
        vectors: [SparseVector], labels: [Int], classCount: Int, dimension: Int,
        configuration: TrainingConfiguration = TrainingConfiguration()
    ) {
        let classes = max(1, classCount)
        self.classCount = classes
        self.dimension = dimension
        var weights = [Float](repeating: 0, count: dimension * classes)
        // Row-wise AdaGrad: one accumulator per feature (and one for the bias row), so the update of a feature's
        // row is a single vectorizable `w -= step * gradient` over the classes.
        var squares = [Float](repeating: 0, count: dimension)
        var bias = [Float](repeating: 0, count: classes)
        var biasSquare: Float = 0
        let averaging = configuration.averaging
        // Averaging: `sums` accumulates step * update so that the average is `weights - sums / step`.
        var sums = [Float](repeating: 0, count: averaging ? dimension * classes : 0)
        var biasSums = [Float](repeating: 0, count: classes)
        var step: Float = 1
        var order = Array(vectors.indices)
        var random = SplitMix64(seed: configuration.seed)
        var scores = [Float](repeating: 0, count: classes)
        let rate = configuration.learningRate
        let floor = configuration.gradientFloor
        let epsilon: Float = 1e-6
        let inverseClasses = 1 / Float(classes)

        weights.withUnsafeMutableBufferPointer { w in
            squares.withUnsafeMutableBufferPointer { g in
                sums.withUnsafeMutableBufferPointer { a in
                scores.withUnsafeMutableBufferPointer { s in
                    bias.withUnsafeMutableBufferPointer { b in
                        for _ in 0..<configuration.epochs {
                            random.shuffle(&order)
                            for example in order {
                                defer { step += 1 }
                                let x = vectors[example]
                                let label = labels[example]
                                guard label >= 0, label < classes else { continue }
                                Self.scores(x, weights: UnsafeBufferPointer(w), bias: UnsafeBufferPointer(b), into: s)
                                Self.softmax(s)
                                s[label] -= 1  // now the gradient of the loss with respect to each score
                                var gradientSquare: Float = 0
                                for c in 0..<classes { gradientSquare += s[c] * s[c] }
                                // Already fitted: nothing worth updating.
                                if gradientSquare < floor * floor { continue }
                                let meanSquare = gradientSquare * inverseClasses
                                biasSquare += meanSquare
                                let biasStep = rate / (biasSquare.squareRoot() + epsilon)
                                for c in 0..<classes { b[c] -= biasStep * s[c] }
                                if averaging { for c in 0..<classes { biasSums[c] -= step * biasStep * s[c] } }
                                for k in 0..<x.indices.count {
                                    let feature = Int(x.indices[k])
                                    let value = x.values[k]
                                    g[feature] += value * value * meanSquare
                                    let size = rate * value / (g[feature].squareRoot() + epsilon)
                                    let row = w.baseAddress.unsafelyUnwrapped + feature * classes
                                    for c in 0..<classes { row[c] -= size * s[c] }
                                    if averaging {
                                        let sum = a.baseAddress.unsafelyUnwrapped + feature * classes
                                        let scaled = size * step
                                        for c in 0..<classes { sum[c] -= scaled * s[c] }
                                    }
                                }
                            }
                        }
                    }
                }
                }
            }
        }
        if averaging {
            let inverse = 1 / step
            for i in weights.indices { weights[i] -= sums[i] * inverse }
            for c in bias.indices { bias[c] -= biasSums[c] * inverse }
        }
        self.weights = weights
        self.bias = bias
    }

    /// Class probabilities (softmax of the linear scores) of `x`.
    public func probabilities(_ x: SparseVector) -> [Float] {
        var scores = [Float](repeating: 0, count: classCount)
        weights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                scores.withUnsafeMutableBufferPointer { s in
                    Self.scores(x, weights: w, bias: b, into: s)
                    Self.softmax(s)
                }
            }
        }
        return scores
    }

    @inline(__always)
    private static func scores(
        _ x: SparseVector, weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>,
        into s: UnsafeMutableBufferPointer<Float>
    ) {
        let classes = s.count
        for c in 0..<classes { s[c] = bias[c] }
        guard let base = weights.baseAddress else { return }
        for k in 0..<x.indices.count {
            let row = base + Int(x.indices[k]) * classes
            let value = x.values[k]
            for c in 0..<classes { s[c] += row[c] * value }
        }
    }

    @inline(__always)
    private static func softmax(_ s: UnsafeMutableBufferPointer<Float>) {
        guard let top = s.max() else { return }
        var sum: Float = 0
        for c in 0..<s.count {
            let e = expf(s[c] - top)
            s[c] = e
            sum += e
        }
        let inverse = sum > 0 ? 1 / sum : 0
        for c in 0..<s.count { s[c] *= inverse }
    }
}

/// A small deterministic PRNG (SplitMix64) so training is reproducible for a seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Fisher-Yates shuffle driven by this generator (stable across platforms, unlike `shuffle(using:)`'s contract).
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            array.swapAt(i, j)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
