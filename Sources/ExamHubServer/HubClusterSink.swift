import ExamHubDomain
import ExamHubWire

/// A node's ``ClusterSink``: channel events go to its ``ChannelHub``, `candidate.state` from other nodes to its
/// ``ProctoringService``.
struct HubClusterSink: ClusterSink {
    let hub: ChannelHub
    let proctoring: ProctoringService

    func isFollowing(_ key: ChannelKey) -> Bool {
        hub.isFollowing(key)
    }

    func receive(_ event: ClusterEvent, force: Bool) -> ClusterReceiveOutcome {
        hub.receive(event, now: WallClock.nowMillis(), force: force)
    }

    func followedChannels() -> [FollowedChannel] {
        hub.followedChannels()
    }

    func remoteEvent(_ event: ClusterEvent) {
        guard event.type == "candidate.state", case .object(let data)? = try? JSONParser.parse(event.data),
            case .string(let attemptID)? = data["attemptId"], case .string(let rawState)? = data["state"],
            let state = AttemptState(rawValue: rawState)
        else { return }
        var deadline: Int64?
        if case .string(let text)? = data["deadline"] { deadline = Timestamp.parse(text) }
        proctoring.remoteStateChanged(attemptID: attemptID, state: state, deadlineMillis: deadline)
    }

    func localPresence() -> [PresenceChange] {
        proctoring.localPresence(now: WallClock.nowMillis())
    }
}
