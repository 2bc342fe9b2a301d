import ExamHubDomain
import ExamHubWire
import GRDB

/// Conversations, chat messages and LLM usage on SQLite.
extension SQLiteStore {
    public func openConversation(id: String, tenant: String, owner: String, attemptID: String?, now: Int64)
        async throws(HubError) -> ConversationRecord
    {
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO conversations (id, tenant, owner, created_ms, attempt_id) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO NOTHING
                    """, arguments: [id, tenant, owner, now, attemptID])
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM conversations WHERE id = ?", arguments: [id]) else {
                throw HubError(.internal, "conversation vanished")
            }
            return ConversationRecord(
                id: row["id"], tenant: row["tenant"], owner: row["owner"], attemptID: row["attempt_id"],
                createdMillis: row["created_ms"])
        }
    }

    public func appendChatMessage(_ m: ChatMessageRecord) async throws(HubError) -> ChatMessageRecord {
        try await write { db in
            if let client = m.clientMsgID, let row = try Row.fetchOne(
                db, sql: "SELECT * FROM chat_messages WHERE conversation_id = ? AND client_msg_id = ?",
                arguments: [m.conversationID, client])
            {
                return Self.chatMessage(row)
            }
            try db.execute(
                sql: """
                    INSERT INTO chat_messages (id, conversation_id, tenant, role, text, client_msg_id, reply_id, intent,
                        source, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [m.id, m.conversationID, m.tenant, m.role, m.text, m.clientMsgID, m.replyID, m.intent,
                            m.source, m.createdMillis])
            if m.role == "assistant" {
                try Self.outbox(db, tenant: m.tenant, type: "chat.turn", now: m.createdMillis, payload: StoreCoding.chatTurnPayload(m))
            }
            return m
        }
    }

    public func chatHistory(conversationID: String, limit: Int) async throws(HubError) -> [ChatMessageRecord] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM chat_messages WHERE conversation_id = ?
                    ORDER BY created_ms DESC, role ASC LIMIT ?
                    """, arguments: [conversationID, limit]
            ).map(Self.chatMessage).reversed()
        }
    }

    public func recordLLMUsage(_ u: LLMUsageRecordRow) async throws(HubError) {
        try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO llm_usage (id, tenant, conversation_id, provider, model, input_tokens, output_tokens,
                        completed, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [StoreCoding.newID(prefix: "lu"), u.tenant, u.conversationID, u.provider, u.model,
                            u.inputTokens, u.outputTokens, u.completed ? 1 : 0, u.atMillis])
            try Self.outbox(db, tenant: u.tenant, type: "llm.usage", now: u.atMillis, payload: StoreCoding.usagePayload(u))
        }
    }

    public func llmTokensByTenant(since: Int64) async throws(HubError) -> [String: Int64] {
        try await read { db in
            var out: [String: Int64] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT tenant, SUM(input_tokens + output_tokens) AS n FROM llm_usage WHERE at_ms >= ? GROUP BY tenant",
                arguments: [since])
            {
                out[row["tenant"]] = row["n"]
            }
            return out
        }
    }

    static func chatMessage(_ row: Row) -> ChatMessageRecord {
        ChatMessageRecord(
            id: row["id"], conversationID: row["conversation_id"], tenant: row["tenant"], role: row["role"],
            text: row["text"], clientMsgID: row["client_msg_id"], replyID: row["reply_id"], intent: row["intent"],
            source: row["source"], createdMillis: row["created_ms"])
    }
}
