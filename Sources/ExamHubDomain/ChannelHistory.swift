/// The recent events of one channel, bounded by count and age, for recovery with `subscribe.since`.
///
/// A value type with no clock of its own: callers pass the time in milliseconds, so it tests without waiting.
/// The ring's slots follow the events held, not the capacity: it grows by doubling up to `capacity` and shrinks
/// when the age limit has emptied most of it, so a quiet channel (a few events within the age limit) holds a few
/// slots, not `capacity` of them (before, every busy channel crept towards `capacity` mostly empty slots).
public struct ChannelHistory<Payload> {
    /// One remembered event.
    public struct Entry {
        public var seq: UInt64
        public var atMillis: Int64
        public var payload: Payload
    }

    /// The result of asking for the events after a sequence number.
    public enum Recovery {
        /// Every event after the asked sequence number, in order (possibly none).
        case recovered([Payload])
        /// Some events after the asked sequence number are no longer held.
        case gap
    }

    /// The most events kept.
    public let capacity: Int
    /// The oldest an event may be, in milliseconds, before it is forgotten.
    public let maxAgeMillis: Int64

    private var ring: [Entry?]
    private var head = 0  // index of the oldest entry
    public private(set) var count = 0
    /// Slots the ring holds (memory), at least `count`, at most `capacity`.
    public var slotCount: Int { ring.count }
    private static var minSlots: Int { 8 }
    /// The sequence number of the newest event ever appended (0 when none).
    public private(set) var lastSeq: UInt64 = 0

    public init(capacity: Int, maxAgeMillis: Int64) {
        self.capacity = max(0, capacity)
        self.maxAgeMillis = maxAgeMillis
        self.ring = []
    }

    /// Appends the event with the next sequence number and returns that number.
    @discardableResult
    public mutating func append(_ payload: Payload, atMillis now: Int64) -> UInt64 {
        lastSeq += 1
        guard capacity > 0 else { return lastSeq }
        let entry = Entry(seq: lastSeq, atMillis: now, payload: payload)
        if count == ring.count && ring.count < capacity {
            resize(to: min(capacity, max(Self.minSlots, ring.count * 2)))
        }
        if count < ring.count {
            ring[(head + count) % ring.count] = entry
            count += 1
        } else {  // full at capacity: the oldest goes
            ring[head] = entry
            head = (head + 1) % ring.count
        }
        prune(now: now)
        return lastSeq
    }

    /// Appends an event whose sequence number was assigned elsewhere (several nodes sharing a channel: the
    /// database numbers the events). `seq` must be above ``lastSeq``; when it skips numbers, the skipped events are
    /// a hole that no recovery spans (``events(after:now:)`` answers `.gap` for anything before it). An event at
    /// or below ``lastSeq`` is refused (returns `false`): it is already held or was already skipped.
    @discardableResult
    public mutating func append(_ payload: Payload, seq: UInt64, atMillis now: Int64) -> Bool {
        guard seq > lastSeq else { return false }
        lastSeq = seq - 1
        append(payload, atMillis: now)
        return true
    }

    /// Forgets every event and continues after `seq`: the next ``append(_:atMillis:)`` gets `seq + 1`. For a
    /// channel whose numbering is learnt from elsewhere (the newest event another node published, say).
    public mutating func restart(after seq: UInt64) {
        ring = []
        head = 0
        count = 0
        lastSeq = seq
    }

    /// Forgets events older than `maxAgeMillis`, and gives back slots when most are empty.
    public mutating func prune(now: Int64) {
        while count > 0, let oldest = ring[head], now - oldest.atMillis > maxAgeMillis {
            ring[head] = nil
            head = (head + 1) % ring.count
            count -= 1
        }
        if ring.count > Self.minSlots && count <= ring.count / 4 {
            resize(to: max(Self.minSlots, count * 2))
        }
    }

    /// Moves the held events, oldest first, into a ring of `size` slots (`size >= count`).
    private mutating func resize(to size: Int) {
        var slots = [Entry?](repeating: nil, count: size)
        for i in 0..<count { slots[i] = ring[(head + i) % ring.count] }
        ring = slots
        head = 0
    }

    /// The sequence number of the oldest event still held, or `nil` when none is.
    public var oldestSeq: UInt64? {
        count > 0 ? ring[head]?.seq : nil
    }

    /// The events after `seq`, or `.gap` when some of them were forgotten (or `seq` is in the future).
    public func events(after seq: UInt64, now: Int64) -> Recovery {
        if seq > lastSeq { return .gap }
        if seq == lastSeq { return .recovered([]) }
        var out: [Payload] = []
        out.reserveCapacity(Int(lastSeq - seq))
        var expected = seq + 1
        for i in 0..<count {
            guard let entry = ring[(head + i) % ring.count] else { continue }
            if entry.seq <= seq { continue }
            if entry.seq != expected || now - entry.atMillis > maxAgeMillis { return .gap }
            out.append(entry.payload)
            expected += 1
        }
        return expected == lastSeq + 1 ? .recovered(out) : .gap
    }
}

extension ChannelHistory: Sendable where Payload: Sendable {}
extension ChannelHistory.Entry: Sendable where Payload: Sendable {}
