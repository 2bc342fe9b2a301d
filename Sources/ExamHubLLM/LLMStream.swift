/// A streamed answer: iterate it for ``LLMStreamEvent``s, `cancel()` it to stop.
///
/// The stream ends after one `.done`, or throws an ``LLMError``. Cancelling the iterating task, calling
/// ``cancel()`` or dropping the stream tears the HTTP request down (the provider sees the connection close);
/// a consumer still iterating then gets an error with code `cancelled`.
public struct LLMStream: AsyncSequence, Sendable {
    /// What the stream produces.
    public typealias Element = LLMStreamEvent

    let events: AsyncThrowingStream<LLMStreamEvent, any Error>
    let canceller: @Sendable () -> Void

    /// Stops the answer: the request is torn down, nothing more is retried or recorded beyond what was used.
    public func cancel() {
        canceller()
    }

    /// Iterates the events.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<LLMStreamEvent, any Error>.AsyncIterator

        /// The next event, `nil` after `.done`.
        public mutating func next() async throws -> LLMStreamEvent? {
            try await base.next()
        }
    }

    /// An iterator over the events (iterate once).
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: events.makeAsyncIterator())
    }
}
