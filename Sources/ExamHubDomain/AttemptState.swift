/// The states of an attempt (PROTOCOL.md section 3 and issue 3).
public enum AttemptState: String, Sendable, Hashable, CaseIterable {
    case inProgress = "in_progress"
    case paused
    case submitted
    case terminated

    /// Whether the attempt is over.
    public var isClosed: Bool { self == .submitted || self == .terminated }
}

/// Why an attempt was submitted.
public enum SubmitReason: String, Sendable, Hashable, CaseIterable {
    case candidate
    case timeUp = "time_up"
    case proctor
}

/// An attempt's lifecycle and clock, as a value: every transition is a pure function of the current state and
/// the server time in milliseconds, and refuses what is illegal with a protocol error.
public struct AttemptClock: Sendable, Hashable {
    public private(set) var state: AttemptState
    /// When time runs out, in server milliseconds. While paused, the deadline as it stood at the pause.
    public private(set) var deadlineMillis: Int64
    /// When the current pause began, if paused.
    public private(set) var pausedAtMillis: Int64?
    /// Seconds after the deadline during which saves are still accepted.
    public let graceMillis: Int64
    public private(set) var reason: SubmitReason?
    public private(set) var closedAtMillis: Int64?

    public init(
        state: AttemptState, deadlineMillis: Int64, graceMillis: Int64, pausedAtMillis: Int64? = nil,
        reason: SubmitReason? = nil, closedAtMillis: Int64? = nil
    ) {
        self.state = state
        self.deadlineMillis = deadlineMillis
        self.graceMillis = graceMillis
        self.pausedAtMillis = pausedAtMillis
        self.reason = reason
        self.closedAtMillis = closedAtMillis
    }

    /// A new attempt started at `now` for `durationSec`.
    public static func start(at now: Int64, durationSec: Int, graceSec: Int) -> AttemptClock {
        AttemptClock(
            state: .inProgress, deadlineMillis: now + Int64(durationSec) * 1000, graceMillis: Int64(graceSec) * 1000)
    }

    /// Whether the deadline has passed at `now` (never while paused).
    public func isTimeUp(at now: Int64) -> Bool {
        state == .inProgress && now >= deadlineMillis
    }

    /// Checks that a save at `now` is allowed: in progress and not past the deadline plus grace. A save within the
    /// grace period after a `time_up` submit is still accepted (it was typed before the deadline).
    public func checkSave(at now: Int64) throws(HubError) {
        switch state {
        case .inProgress:
            if now > deadlineMillis + graceMillis { throw HubError(.attemptClosed, "time is up") }
        case .paused:
            throw HubError(.attemptPaused, "the attempt is paused by a proctor")
        case .submitted:
            if reason == .timeUp, now <= deadlineMillis + graceMillis { return }
            throw HubError(.attemptClosed, "the attempt is submitted")
        case .terminated:
            throw HubError(.attemptClosed, "the attempt was terminated")
        }
    }

    /// Submits at `now`. Submitting a submitted attempt again is refused with `attempt_closed`.
    public mutating func submit(at now: Int64, reason: SubmitReason) throws(HubError) {
        switch state {
        case .inProgress, .paused:
            if reason == .candidate && state == .paused {
                throw HubError(.attemptPaused, "the attempt is paused by a proctor")
            }
            if reason == .candidate && now > deadlineMillis + graceMillis {
                throw HubError(.attemptClosed, "time is up")
            }
            state = .submitted
            self.reason = reason
            closedAtMillis = now
            pausedAtMillis = nil
        case .submitted, .terminated:
            throw HubError(.attemptClosed, "the attempt is already \(state.rawValue)")
        }
    }

    /// Pauses the clock at `now`.
    public mutating func pause(at now: Int64) throws(HubError) {
        switch state {
        case .inProgress:
            guard now < deadlineMillis else { throw HubError(.attemptClosed, "time is up") }
            state = .paused
            pausedAtMillis = now
        case .paused:
            throw HubError(.conflict, "the attempt is already paused")
        case .submitted, .terminated:
            throw HubError(.attemptClosed, "the attempt is \(state.rawValue)")
        }
    }

    /// Resumes at `now`; the deadline moves by the time spent paused.
    public mutating func resume(at now: Int64) throws(HubError) {
        switch state {
        case .paused:
            let pausedFor = max(0, now - (pausedAtMillis ?? now))
            deadlineMillis += pausedFor
            state = .inProgress
            pausedAtMillis = nil
        case .inProgress:
            throw HubError(.conflict, "the attempt is not paused")
        case .submitted, .terminated:
            throw HubError(.attemptClosed, "the attempt is \(state.rawValue)")
        }
    }

    /// Extends the deadline by `minutes` (1 to 1440).
    public mutating func extend(minutes: Int) throws(HubError) {
        guard (1...1440).contains(minutes) else { throw .badRequest("minutes must be 1-1440") }
        guard !state.isClosed else { throw HubError(.attemptClosed, "the attempt is \(state.rawValue)") }
        deadlineMillis += Int64(minutes) * 60_000
    }

    /// Terminates at `now`.
    public mutating func terminate(at now: Int64) throws(HubError) {
        guard !state.isClosed else { throw HubError(.attemptClosed, "the attempt is already \(state.rawValue)") }
        state = .terminated
        reason = nil
        closedAtMillis = now
        pausedAtMillis = nil
    }
}

/// A proctor's intervention on an attempt (PROTOCOL.md `proctor.action`).
public enum ProctorActionKind: String, Sendable, Hashable, CaseIterable {
    case warn, pause, resume, extend, terminate

    /// Applies the action to an attempt's clock at `now`; `warn` changes nothing but is refused on a closed attempt.
    public func apply(to clock: inout AttemptClock, minutes: Int?, now: Int64) throws(HubError) {
        switch self {
        case .warn:
            guard !clock.state.isClosed else { throw HubError(.attemptClosed, "the attempt is \(clock.state.rawValue)") }
        case .pause:
            try clock.pause(at: now)
        case .resume:
            try clock.resume(at: now)
        case .extend:
            guard let minutes else { throw .badRequest("extend needs \"minutes\"") }
            try clock.extend(minutes: minutes)
        case .terminate:
            try clock.terminate(at: now)
        }
    }

    /// The event this action puts on the attempt's channel.
    public var eventType: String {
        switch self {
        case .warn: "attempt.warned"
        case .pause: "attempt.paused"
        case .resume: "attempt.resumed"
        case .extend: "attempt.extended"
        case .terminate: "attempt.terminated"
        }
    }
}
