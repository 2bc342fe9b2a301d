import AsyncHTTPClient
import Foundation
import Logging
import NIOHTTP1
import Tracing
import NIOCore

extension LLMGateway {
    /// Walks the provider chain for one request; returns the final `.done` event or throws.
    func answer(
        _ request: LLMRequest,
        continuation: AsyncThrowingStream<LLMStreamEvent, any Error>.Continuation,
        logger: Logger
    ) async throws -> LLMStreamEvent {
        guard configuration.isEnabled else {
            throw LLMError(.notConfigured, message: "no LLM provider is configured")
        }
        guard request.messages.contains(where: { $0.role == .user }) else {
            throw LLMError(.badRequest, message: "a request needs at least one user message")
        }
        try budget.check(tenant: request.tenant)
        let messages = configuration.history.apply(to: request.messages)
        let maxTokens = request.maxTokens ?? configuration.defaultMaxTokens
        var lastError: LLMError?
        for provider in configuration.providers {
            var logger = logger
            logger[metadataKey: "examhub.llm.provider"] = "\(provider.name)"
            var retry = 0
            attempts: while true {
                if Task.isCancelled { throw LLMError(.cancelled, message: "the answer was cancelled") }
                guard breakers.allowAttempt(provider.name, now: now()) else {
                    logger.info("llm provider skipped: circuit open")
                    if lastError == nil {
                        lastError = LLMError(.unavailable, provider: provider.name, message: "circuit open")
                    }
                    break attempts
                }
                let outcome = await attempt(provider, messages: messages, maxTokens: maxTokens,
                                            temperature: request.temperature, continuation: continuation,
                                            logger: logger)
                switch outcome {
                case .completed(let usage, let finishReason):
                    breakers.recordSuccess(provider.name)
                    charge(usage, request: request, provider: provider, completed: true)
                    logger.debug("llm answer done", metadata: [
                        "examhub.llm.tokens.in": "\(usage.inputTokens)",
                        "examhub.llm.tokens.out": "\(usage.outputTokens)",
                    ])
                    return .done(usage, provider: provider.name, finishReason: finishReason)
                case .failed(let error, let emitted, let reported):
                    if FailurePolicy.countsAgainstProvider(error) {
                        breakers.recordFailure(provider.name, now: now())
                    } else {
                        breakers.recordNeutral(provider.name)
                    }
                    let action = FailurePolicy.action(
                        after: error, emittedCharacters: emitted, retries: retry, maxRetries: provider.maxRetries,
                        settings: configuration.retry, jitter: jitter())
                    logger.log(level: error.code == .cancelled ? .debug : .info, "llm attempt failed", metadata: [
                        "examhub.llm.error": "\(error)", "examhub.llm.retry": "\(retry)",
                        "examhub.llm.next": "\(action)",
                    ])
                    logger.debug("llm attempt failure detail",
                                 metadata: ["examhub.llm.detail": "\(error.debugDescription)"])
                    switch action {
                    case .fail:
                        if emitted > 0 {
                            let usage = estimate(reported, messages: messages, emittedCharacters: emitted)
                            charge(usage, request: request, provider: provider, completed: false)
                        }
                        throw error
                    case .nextProvider:
                        lastError = error
                        break attempts
                    case .retry(let delay):
                        lastError = error
                        retry += 1
                        do {
                            try await Task.sleep(for: delay)
                        } catch {
                            throw LLMError(.cancelled, message: "the answer was cancelled")
                        }
                    }
                }
            }
        }
        guard var error = lastError else {
            throw LLMError(.unavailable, message: "no provider answered")
        }
        if configuration.providers.count > 1 {
            error.message = "every provider failed; last: \(error.message)"
        }
        throw error
    }

    private func estimate(_ reported: LLMUsage?, messages: [LLMMessage], emittedCharacters: Int) -> LLMUsage {
        if let reported, !reported.isEstimated { return reported }
        let input = reported?.inputTokens ?? messages.reduce(0) { $0 + LLMUsage.estimateTokens($1.content) }
        return LLMUsage(inputTokens: input, outputTokens: (emittedCharacters + 3) / 4, isEstimated: true)
    }

    private func charge(_ usage: LLMUsage, request: LLMRequest, provider: LLMProviderConfiguration, completed: Bool) {
        budget.record(tenant: request.tenant, tokens: usage.totalTokens)
        onUsage?(LLMUsageRecord(
            tenant: request.tenant, conversationId: request.conversationId, provider: provider.name,
            model: provider.model, usage: usage, completed: completed, date: now()))
    }

    /// One attempt at one provider, raced against its timeouts.
    func attempt(
        _ provider: LLMProviderConfiguration,
        messages: [LLMMessage],
        maxTokens: Int,
        temperature: Double?,
        continuation: AsyncThrowingStream<LLMStreamEvent, any Error>.Continuation,
        logger: Logger
    ) async -> AttemptOutcome {
        let request: HTTPClientRequest
        do {
            request = try provider.makeHTTPRequest(messages: messages, maxTokens: maxTokens, temperature: temperature)
        } catch {
            return .failed(LLMError(.badRequest, provider: provider.name, message: "cannot encode the request"),
                           emittedCharacters: 0, reportedUsage: nil)
        }
        let tracker = AttemptTracker(continuation: continuation)
        let start = ContinuousClock.now
        let outcome = await withTaskGroup(of: AttemptOutcome?.self) { group in
            group.addTask {
                await self.perform(request, provider: provider, messages: messages, tracker: tracker, logger: logger)
            }
            group.addTask {
                await Self.watch(tracker, timeouts: provider.timeouts, start: start, provider: provider.name)
            }
            var outcome: AttemptOutcome?
            for await result in group {
                if let result {
                    outcome = result
                    group.cancelAll()
                    break
                }
            }
            return outcome
        }
        return outcome
            ?? .failed(LLMError(.cancelled, provider: provider.name, message: "the answer was cancelled"),
                       emittedCharacters: tracker.emittedCharacters, reportedUsage: nil)
    }

    /// Sleeps to each deadline in turn and ends the attempt with a timeout if its phase is still pending.
    private static func watch(
        _ tracker: AttemptTracker, timeouts: LLMProviderConfiguration.Timeouts, start: ContinuousClock.Instant,
        provider: String
    ) async -> AttemptOutcome? {
        let checkpoints: [(Duration, AttemptTracker.Phase)] = [
            (timeouts.connect, .connect), (timeouts.firstToken, .firstToken), (timeouts.total, .total),
        ].sorted { $0.0 < $1.0 }
        for (after, phase) in checkpoints {
            do {
                try await Task.sleep(until: start + after, clock: .continuous)
            } catch {
                return nil
            }
            if let outcome = tracker.expire(phase, provider: provider) { return outcome }
        }
        return nil
    }

    /// Sends the request and streams the answer into the tracker, in an `examhub.llm.request` span whose W3C trace
    /// context travels in the request's `traceparent` header (when a tracer is bootstrapped).
    private func perform(
        _ request: HTTPClientRequest, provider: LLMProviderConfiguration, messages: [LLMMessage],
        tracker: AttemptTracker, logger: Logger
    ) async -> AttemptOutcome? {
        await withSpan("examhub.llm.request", ofKind: .client) { span in
            span.attributes["examhub.llm.provider"] = provider.name
            span.attributes["examhub.llm.model"] = provider.model
            var request = request
            InstrumentationSystem.instrument.inject(
                ServiceContext.current ?? .topLevel, into: &request.headers, using: HTTPHeadersInjector())
            let outcome = await performTraced(request, provider: provider, messages: messages, tracker: tracker, logger: logger)
            if case .failed(let error, _, _)? = outcome {
                span.setStatus(SpanStatus(code: .error, message: "\(error)"))
            }
            return outcome
        }
    }

    private func performTraced(
        _ request: HTTPClientRequest, provider: LLMProviderConfiguration, messages: [LLMMessage],
        tracker: AttemptTracker, logger: Logger
    ) async -> AttemptOutcome? {
        var decoder = ProviderStreamDecoder(kind: provider.kind)
        do {
            let deadline = NIODeadline.now() + .nanoseconds(Int64(provider.timeouts.total.timeInterval * 1e9))
                + .seconds(5)
            let response = try await httpClient.execute(request, deadline: deadline, logger: logger)
            tracker.receivedHead()
            guard (200..<300).contains(response.status.code) else {
                var body = ByteBuffer()
                for try await chunk in response.body {
                    var chunk = chunk
                    body.writeBuffer(&chunk)
                    if body.readableBytes >= 2048 { break }
                }
                let text = String(buffer: body)
                return tracker.finish(.failed(
                    LLMError.forStatus(response.status, headers: response.headers, body: text, provider: provider.name),
                    emittedCharacters: 0, reportedUsage: nil))
            }
            var parser = ServerSentEventParser()
            reading: for try await buffer in response.body {
                for event in try parser.feed(buffer) {
                    if let text = try decoder.consume(event) {
                        guard tracker.emit(text) else { return nil }
                    }
                    if decoder.isComplete { break reading }
                }
            }
            parser.finish()
            try decoder.endOfStream()
            return tracker.finish(.completed(usage(decoder, messages: messages, tracker: tracker),
                                             finishReason: decoder.finishReason))
        } catch {
            let mapped: LLMError
            switch error {
            case var error as LLMError:
                error.provider = error.provider ?? provider.name
                mapped = error
            case is ServerSentEventParser.LineTooLong:
                mapped = LLMError(.badResponse, provider: provider.name, message: "an event stream line is too long")
            default:
                if Task.isCancelled {
                    mapped = LLMError(.cancelled, provider: provider.name, message: "the answer was cancelled")
                } else {
                    mapped = LLMError(.unavailable, provider: provider.name, message: "connection failed",
                                      detail: "\(error)")
                }
            }
            let reported = decoder.reportedUsage
            let usage = reported.input.map {
                LLMUsage(inputTokens: $0, outputTokens: reported.output ?? 0, isEstimated: true)
            }
            return tracker.finish(.failed(mapped, emittedCharacters: 0, reportedUsage: usage))
        }
    }

    private func usage(_ decoder: ProviderStreamDecoder, messages: [LLMMessage], tracker: AttemptTracker) -> LLMUsage {
        let reported = decoder.reportedUsage
        if let input = reported.input, let output = reported.output {
            return LLMUsage(inputTokens: input, outputTokens: output)
        }
        return LLMUsage(
            inputTokens: reported.input ?? messages.reduce(0) { $0 + LLMUsage.estimateTokens($1.content) },
            outputTokens: reported.output ?? (tracker.emittedCharacters + 3) / 4,
            isEstimated: true)
    }
}

/// Writes trace context (`traceparent`, `tracestate`) into outgoing request headers.
struct HTTPHeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into headers: inout HTTPHeaders) {
        headers.replaceOrAdd(name: key, value: value)
    }
}
