import ExamHubDomain
import ExamHubPostgres
import ExamHubServer
import ExamHubStore
import NIOConcurrencyHelpers

/// The receiving side of ``PostgresCluster``: the LISTEN loop, the catch-up after a lost connection, and holes.
extension PostgresCluster {
    func listenLoop() async {
        var backoff = Duration.milliseconds(100)
        var lostAt = startedMillis
        var loggedLoss = false
        while !Task.isCancelled {
            let connected = NIOLockedValueBox(false)
            let missedSince = lostAt
            do {
                try await store.listen(on: CrossNodeSchema.notifyChannel, applicationName: "examhub-listen \(nodeID)") {
                    notifications in
                    // Listening: what is committed from now on is notified. What was missed before is read now
                    // (a failed read ends this connection, and the next one reads from the same moment).
                    try await self.catchUp(lostAt: missedSince)
                    connected.withLockedValue { $0 = true }
                    self.listening.record(1)
                    for try await notification in notifications {
                        await self.handle(notification.payload)
                    }
                }
            } catch {
                if !loggedLoss && !connected.withLockedValue({ $0 }) {
                    logger.warning("channel notifications: LISTEN failed", metadata: ["examhub.error": "\(error)"])
                }
            }
            listening.record(0)
            if Task.isCancelled { return }
            if connected.withLockedValue({ $0 }) {
                // It was listening: from now on events are missed until the catch-up of the next connection.
                lostAt = Self.nowMillis()
                backoff = .milliseconds(100)
                loggedLoss = false
                logger.warning("channel notifications: the LISTEN connection was lost; reconnecting")
            } else {
                loggedLoss = true
            }
            reconnects.increment()
            let jitter = Duration.milliseconds(Int64.random(in: 0...Int64(backoff.components.seconds * 250 + 25)))
            try? await Task.sleep(for: backoff + jitter)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    /// Reads what the followed channels missed since `lostAt` and feeds it, in order, before any notification.
    func catchUp(lostAt: Int64) async throws(HubError) {
        guard let sink = sink.withLockedValue({ $0 }) else { return }
        let followed = sink.followedChannels()
        var count = 0
        for start in stride(from: 0, to: followed.count, by: 500) {
            let cursors = followed[start..<min(start + 500, followed.count)].map { channel in
                ChannelLogCursor(
                    tenant: channel.key.tenant, channel: channel.key.name.description, epoch: channel.position?.epoch,
                    afterSeq: Int64(clamping: channel.position?.seq ?? 0),
                    minMillis: max(channel.sinceMillis, lostAt) - 5000)
            }
            for entry in try await store.channelEvents(after: cursors, limit: 200_000) {
                guard let event = Self.event(from: entry) else { continue }
                if sink.receive(event, force: true) == .applied { count += 1 }
            }
        }
        if count > 0 {
            recovered.increment(by: count)
            logger.info("channel events recovered from the log", metadata: ["examhub.events": "\(count)"])
        }
    }

    func handle(_ payload: String) async {
        guard let note = ChannelNotification(parsing: payload), let name = ChannelName(note.channel) else {
            logger.debug("an unreadable channel notification was skipped")
            return
        }
        guard let sink = sink.withLockedValue({ $0 }) else { return }
        let key = ChannelKey(tenant: note.tenant, name: name)
        let everyNode = note.node != nodeID && ClusterEvent.typesEveryNodeReads.contains(note.type)
        let following = sink.isFollowing(key)
        guard following || everyNode else { return }
        var data = note.data
        if data == nil {
            // Too big for a notification: read it from the log.
            data = try? await store.channelEvent(
                tenant: note.tenant, channel: note.channel, epoch: note.epoch, seq: Int64(clamping: note.seq))?.data
        }
        guard let data else { return }  // the next event finds the hole and reads it again
        let event = ClusterEvent(
            key: key, epoch: note.epoch, seq: note.seq, type: note.type, tsMillis: note.tsMillis, data: data,
            origin: note.node)
        if everyNode { sink.remoteEvent(event) }
        guard following else { return }
        received.increment()
        if case .gap(let after) = sink.receive(event, force: false) {
            await fillGap(sink, key: key, epoch: note.epoch, after: after, before: note.seq)
            _ = sink.receive(event, force: true)
        }
    }

    /// Reads the events of a hole from the log and feeds them.
    func fillGap(_ sink: any ClusterSink, key: ChannelKey, epoch: String, after: UInt64, before: UInt64) async {
        let cursor = ChannelLogCursor(
            tenant: key.tenant, channel: key.name.description, epoch: epoch, afterSeq: Int64(clamping: after),
            minMillis: 0)
        do {
            var filled = 0
            for entry in try await store.channelEvents(after: [cursor], limit: Int(clamping: before - after))
            where entry.seq < Int64(clamping: before) {
                guard let event = Self.event(from: entry) else { continue }
                if sink.receive(event, force: true) == .applied { filled += 1 }
            }
            recovered.increment(by: filled)
        } catch {
            logger.warning("a hole in a channel could not be filled", metadata: ["examhub.error": "\(error)"])
        }
    }
}
