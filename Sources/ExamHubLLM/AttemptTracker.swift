import NIOConcurrencyHelpers

/// The outcome of one attempt at one provider.
enum AttemptOutcome: Sendable {
    /// The answer completed.
    case completed(LLMUsage, finishReason: String?)
    /// The attempt failed; `emittedCharacters > 0` means text reached the consumer, so no retry, no fallback.
    case failed(LLMError, emittedCharacters: Int, reportedUsage: LLMUsage?)
}

/// What one attempt has done so far, shared by the task reading the response and its timeout watchdog.
///
/// Whoever ends the attempt first (the reader with its result, or the watchdog with a timeout) wins; text is
/// forwarded to the consumer under the same lock, so no delta is ever emitted after a timeout decided to
/// retry or fall back.
final class AttemptTracker: Sendable {
    enum Phase: Sendable {
        case connect, firstToken, total
    }

    private struct State {
        var headReceived = false
        var emittedCharacters = 0
        var finished = false
    }

    private let state = NIOLockedValueBox(State())
    private let continuation: AsyncThrowingStream<LLMStreamEvent, any Error>.Continuation

    init(continuation: AsyncThrowingStream<LLMStreamEvent, any Error>.Continuation) {
        self.continuation = continuation
    }

    func receivedHead() {
        state.withLockedValue { $0.headReceived = true }
    }

    /// Forwards text to the consumer; `false` when the attempt is already over.
    func emit(_ text: String) -> Bool {
        state.withLockedValue { state in
            guard !state.finished else { return false }
            state.emittedCharacters += text.count
            continuation.yield(.delta(text))
            return true
        }
    }

    var emittedCharacters: Int { state.withLockedValue { $0.emittedCharacters } }

    /// Ends the attempt with `outcome` unless it already ended; returns the outcome when it won.
    func finish(_ outcome: AttemptOutcome) -> AttemptOutcome? {
        state.withLockedValue { state in
            guard !state.finished else { return nil }
            state.finished = true
            if case .failed(let error, _, let usage) = outcome {
                return .failed(error, emittedCharacters: state.emittedCharacters, reportedUsage: usage)
            }
            return outcome
        }
    }

    /// The deadline of `phase` passed: ends the attempt with a timeout if that phase is still pending.
    func expire(_ phase: Phase, provider: String) -> AttemptOutcome? {
        state.withLockedValue { state in
            guard !state.finished else { return nil }
            let message: String
            switch phase {
            case .connect:
                guard !state.headReceived else { return nil }
                message = "no response head within the connect timeout"
            case .firstToken:
                guard state.emittedCharacters == 0 else { return nil }
                message = "no text within the first-token timeout"
            case .total:
                message = "the answer did not finish within the total timeout"
            }
            state.finished = true
            return .failed(LLMError(.timeout, provider: provider, message: message),
                           emittedCharacters: state.emittedCharacters, reportedUsage: nil)
        }
    }
}
