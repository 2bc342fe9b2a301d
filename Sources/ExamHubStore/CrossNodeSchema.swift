/// The PostgreSQL schema of several nodes sharing channels (migration `0006_cross_node`; SQLite, one node, has none).
///
/// - `channel_heads`: one row per channel, its epoch and newest `seq`. Appending an event updates the row (`seq + 1`)
///   and so locks it until the transaction commits: a channel's events commit, and are notified, in `seq` order.
/// - `channel_events`: every event, for recovery on any node and for catching up after missed notifications;
///   pruned by age. `event_id` (the publishing node's id for it) makes a retried append a no-op.
/// - `examhub_publish_one` / `examhub_publish`: append events and `pg_notify('examhub_channels', …)` each. The
///   notification is a JSON array `[node, tenant, channel, epoch, seq, ts_ms, type]`, a newline, and the event's
///   data; when that would pass PostgreSQL's 8,000-byte limit, only the array is sent and nodes read the data from
///   `channel_events`.
/// - `cluster_nodes` (heartbeats), `cluster_presence` (sockets per attempt and node), `presence_state` (whether the
///   attempt is connected anywhere, as last announced), `examhub_presence` and `examhub_reap`: cluster-wide
///   `candidate.joined` / `candidate.left`, announced in the same transaction as the change that causes them.
///
/// Lock order (no deadlocks between concurrent calls): attempt locks (advisory, class 1163413584, ordered by key)
/// first, then channel heads ordered by (tenant, channel) in byte order.
public enum CrossNodeSchema {
    /// The advisory lock class of an attempt's presence.
    public static let presenceLockClass: Int32 = 1_163_413_584  // "EXHP"

    /// The channel every node LISTENs on.
    public static let notifyChannel = "examhub_channels"

    static let postgres: [String] = [
        """
        CREATE TABLE channel_heads (
            tenant TEXT NOT NULL,
            channel TEXT NOT NULL,
            epoch TEXT NOT NULL,
            seq BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL,
            PRIMARY KEY (tenant, channel)
        )
        """,
        "CREATE INDEX channel_heads_updated ON channel_heads (updated_ms)",
        """
        CREATE TABLE channel_events (
            tenant TEXT NOT NULL,
            channel TEXT NOT NULL,
            epoch TEXT NOT NULL,
            seq BIGINT NOT NULL,
            event_id TEXT,
            type TEXT NOT NULL,
            ts_ms BIGINT NOT NULL,
            node TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (tenant, channel, epoch, seq)
        )
        """,
        "CREATE UNIQUE INDEX channel_events_event_id ON channel_events (event_id)",
        "CREATE INDEX channel_events_ts ON channel_events (ts_ms)",
        """
        CREATE TABLE cluster_nodes (
            node TEXT PRIMARY KEY,
            started_ms BIGINT NOT NULL,
            heartbeat_ms BIGINT NOT NULL
        )
        """,
        """
        CREATE TABLE cluster_presence (
            attempt_id TEXT NOT NULL,
            node TEXT NOT NULL,
            sockets BIGINT NOT NULL,
            last_seen_ms BIGINT NOT NULL,
            PRIMARY KEY (attempt_id, node)
        )
        """,
        "CREATE INDEX cluster_presence_node ON cluster_presence (node)",
        """
        CREATE TABLE presence_state (
            attempt_id TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            exam_id TEXT NOT NULL,
            candidate TEXT NOT NULL,
            connected BOOLEAN NOT NULL,
            last_seen_ms BIGINT NOT NULL
        )
        """,
        """
        CREATE FUNCTION examhub_publish_one(
            p_node TEXT, p_event_id TEXT, p_tenant TEXT, p_channel TEXT, p_type TEXT, p_ts BIGINT, p_data TEXT,
            OUT o_seq BIGINT, OUT o_epoch TEXT
        ) LANGUAGE plpgsql AS $fn$
        DECLARE
            v_header TEXT;
            v_message TEXT;
        BEGIN
            IF p_event_id IS NOT NULL THEN
                SELECT e.seq, e.epoch INTO o_seq, o_epoch FROM channel_events e WHERE e.event_id = p_event_id;
                IF FOUND THEN
                    RETURN;
                END IF;
            END IF;
            INSERT INTO channel_heads AS h (tenant, channel, epoch, seq, updated_ms)
            VALUES (p_tenant, p_channel, substr(md5(random()::text || clock_timestamp()::text), 1, 16), 1, p_ts)
            ON CONFLICT (tenant, channel) DO UPDATE
                SET seq = h.seq + 1, updated_ms = GREATEST(h.updated_ms, EXCLUDED.updated_ms)
            RETURNING h.seq, h.epoch INTO o_seq, o_epoch;
            INSERT INTO channel_events (tenant, channel, epoch, seq, event_id, type, ts_ms, node, data)
            VALUES (p_tenant, p_channel, o_epoch, o_seq, p_event_id, p_type, p_ts, p_node, p_data);
            v_header := json_build_array(p_node, p_tenant, p_channel, o_epoch, o_seq, p_ts, p_type)::text;
            v_message := v_header || chr(10) || p_data;
            IF octet_length(v_message) > 7900 THEN
                v_message := v_header;
            END IF;
            PERFORM pg_notify('examhub_channels', v_message);
        END
        $fn$
        """,
        """
        CREATE FUNCTION examhub_publish(
            p_node TEXT, p_event_ids TEXT[], p_tenants TEXT[], p_channels TEXT[], p_types TEXT[], p_ts BIGINT[],
            p_data TEXT[]
        ) RETURNS TABLE (o_index BIGINT, o_seq BIGINT, o_epoch TEXT) LANGUAGE plpgsql AS $fn$
        DECLARE
            v_i BIGINT;
        BEGIN
            FOR v_i IN
                SELECT u.n FROM unnest(p_tenants, p_channels) WITH ORDINALITY AS u(t, c, n)
                ORDER BY u.t COLLATE "C", u.c COLLATE "C", u.n
            LOOP
                o_index := v_i;
                SELECT r.o_seq, r.o_epoch INTO o_seq, o_epoch
                FROM examhub_publish_one(
                    p_node, p_event_ids[v_i], p_tenants[v_i], p_channels[v_i], p_types[v_i], p_ts[v_i], p_data[v_i]) AS r;
                RETURN NEXT;
            END LOOP;
        END
        $fn$
        """,
        """
        CREATE FUNCTION examhub_presence(
            p_node TEXT, p_now BIGINT, p_fresh_after BIGINT, p_attempts TEXT[], p_tenants TEXT[], p_exams TEXT[],
            p_candidates TEXT[], p_sockets BIGINT[], p_joined TEXT[], p_left TEXT[]
        ) RETURNS VOID LANGUAGE plpgsql AS $fn$
        DECLARE
            v_key INTEGER;
            v_i BIGINT;
            v_live BOOLEAN;
            v_was BOOLEAN;
            v_channel TEXT;
        BEGIN
            FOR v_key IN SELECT DISTINCT hashtext(a) FROM unnest(p_attempts) AS a ORDER BY 1 LOOP
                PERFORM pg_advisory_xact_lock(1163413584, v_key);
            END LOOP;
            FOR v_i IN
                SELECT u.n FROM unnest(p_tenants, p_exams) WITH ORDINALITY AS u(t, e, n)
                ORDER BY u.t COLLATE "C", ('exam:' || u.e || ':proctor') COLLATE "C", u.n
            LOOP
                INSERT INTO cluster_presence AS p (attempt_id, node, sockets, last_seen_ms)
                VALUES (p_attempts[v_i], p_node, p_sockets[v_i], p_now)
                ON CONFLICT (attempt_id, node) DO UPDATE
                    SET sockets = EXCLUDED.sockets, last_seen_ms = EXCLUDED.last_seen_ms;
                SELECT coalesce(bool_or(p.sockets > 0), false) INTO v_live
                FROM cluster_presence p LEFT JOIN cluster_nodes n ON n.node = p.node
                WHERE p.attempt_id = p_attempts[v_i] AND (p.node = p_node OR n.heartbeat_ms >= p_fresh_after);
                SELECT s.connected INTO v_was FROM presence_state s WHERE s.attempt_id = p_attempts[v_i];
                INSERT INTO presence_state AS s (attempt_id, tenant, exam_id, candidate, connected, last_seen_ms)
                VALUES (p_attempts[v_i], p_tenants[v_i], p_exams[v_i], p_candidates[v_i], v_live, p_now)
                ON CONFLICT (attempt_id) DO UPDATE
                    SET connected = EXCLUDED.connected, last_seen_ms = EXCLUDED.last_seen_ms;
                v_channel := 'exam:' || p_exams[v_i] || ':proctor';
                IF v_live AND NOT coalesce(v_was, false) THEN
                    PERFORM examhub_publish_one(
                        p_node, NULL, p_tenants[v_i], v_channel, 'candidate.joined', p_now, p_joined[v_i]);
                ELSIF NOT v_live AND coalesce(v_was, false) THEN
                    PERFORM examhub_publish_one(
                        p_node, NULL, p_tenants[v_i], v_channel, 'candidate.left', p_now, p_left[v_i]);
                END IF;
            END LOOP;
        END
        $fn$
        """,
        """
        CREATE FUNCTION examhub_reap(p_node TEXT, p_now BIGINT, p_fresh_after BIGINT)
        RETURNS INTEGER LANGUAGE plpgsql AS $fn$
        DECLARE
            v_attempts TEXT[];
            v_key INTEGER;
            v_row RECORD;
            v_live BOOLEAN;
            v_seen BIGINT;
            v_count INTEGER := 0;
        BEGIN
            SELECT array_agg(DISTINCT p.attempt_id) INTO v_attempts FROM cluster_presence p
            WHERE p.node <> p_node AND NOT EXISTS (
                SELECT 1 FROM cluster_nodes n WHERE n.node = p.node AND n.heartbeat_ms >= p_fresh_after);
            IF v_attempts IS NOT NULL THEN
                FOR v_key IN SELECT DISTINCT hashtext(a) FROM unnest(v_attempts) AS a ORDER BY 1 LOOP
                    PERFORM pg_advisory_xact_lock(1163413584, v_key);
                END LOOP;
                FOR v_row IN
                    SELECT s.attempt_id, s.tenant, s.exam_id, s.candidate, s.connected, s.last_seen_ms
                    FROM presence_state s WHERE s.attempt_id = ANY (v_attempts)
                    ORDER BY s.tenant COLLATE "C", ('exam:' || s.exam_id || ':proctor') COLLATE "C", s.attempt_id
                LOOP
                    SELECT max(coalesce(n.heartbeat_ms, p.last_seen_ms)) INTO v_seen
                    FROM cluster_presence p LEFT JOIN cluster_nodes n ON n.node = p.node
                    WHERE p.attempt_id = v_row.attempt_id AND p.sockets > 0 AND p.node <> p_node
                      AND (n.node IS NULL OR n.heartbeat_ms < p_fresh_after);
                    DELETE FROM cluster_presence p WHERE p.attempt_id = v_row.attempt_id AND p.node <> p_node
                      AND NOT EXISTS (
                          SELECT 1 FROM cluster_nodes n WHERE n.node = p.node AND n.heartbeat_ms >= p_fresh_after);
                    SELECT coalesce(bool_or(p.sockets > 0), false) INTO v_live
                    FROM cluster_presence p LEFT JOIN cluster_nodes n ON n.node = p.node
                    WHERE p.attempt_id = v_row.attempt_id AND (p.node = p_node OR n.heartbeat_ms >= p_fresh_after);
                    IF v_row.connected AND NOT v_live THEN
                        v_seen := coalesce(v_seen, v_row.last_seen_ms);
                        UPDATE presence_state SET connected = false, last_seen_ms = v_seen
                        WHERE attempt_id = v_row.attempt_id;
                        PERFORM examhub_publish_one(
                            p_node, NULL, v_row.tenant, 'exam:' || v_row.exam_id || ':proctor', 'candidate.left', p_now,
                            json_build_object(
                                'attemptId', v_row.attempt_id, 'candidate', v_row.candidate,
                                'lastSeen', to_char(to_timestamp(v_seen / 1000.0) AT TIME ZONE 'UTC',
                                                    'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text);
                        v_count := v_count + 1;
                    END IF;
                END LOOP;
                DELETE FROM cluster_presence p WHERE p.attempt_id = ANY (v_attempts) AND p.node <> p_node
                  AND NOT EXISTS (
                      SELECT 1 FROM cluster_nodes n WHERE n.node = p.node AND n.heartbeat_ms >= p_fresh_after);
            END IF;
            DELETE FROM cluster_nodes n WHERE n.heartbeat_ms < p_fresh_after AND n.node <> p_node;
            RETURN v_count;
        END
        $fn$
        """,
    ]
}
