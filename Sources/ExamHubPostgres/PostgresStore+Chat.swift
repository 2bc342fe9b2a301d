import ExamHubDomain
import ExamHubStore
import ExamHubWire
import Logging
import PostgresNIO

/// Conversations, chat messages and LLM usage on PostgreSQL, with the same rules as `SQLiteStore+Chat.swift`.
extension PostgresStore {
    public func openConversation(id: String, tenant: String, owner: String, attemptID: String?, now: Int64)
        async throws(HubError) -> ConversationRecord
    {
        try Self.refuseNUL(id, tenant, owner, attemptID ?? "")
        let logger = self.logger
        return try await transaction("openConversation") { conn in
            try await conn.query(
                """
                INSERT INTO conversations (id, tenant, owner, created_ms, attempt_id)
                VALUES (\(id), \(tenant), \(owner), \(now), \(attemptID)) ON CONFLICT (id) DO NOTHING
                """, logger: logger)
            let rows = try await conn.query(
                "SELECT id, tenant, owner, attempt_id, created_ms FROM conversations WHERE id = \(id)", logger: logger
            ).collect()
            guard let row = rows.first else { throw HubError(.internal, "conversation vanished") }
            let (cid, ctenant, cowner, attempt, created) = try row.decode((String, String, String, String?, Int64).self)
            return ConversationRecord(id: cid, tenant: ctenant, owner: cowner, attemptID: attempt, createdMillis: created)
        }
    }

    public func appendChatMessage(_ m: ChatMessageRecord) async throws(HubError) -> ChatMessageRecord {
        try Self.refuseNUL(m.id, m.conversationID, m.tenant, m.text, m.clientMsgID ?? "", m.intent ?? "")
        let logger = self.logger
        return try await transaction("appendChatMessage") { conn in
            let inserted = try await conn.query(
                """
                INSERT INTO chat_messages (id, conversation_id, tenant, role, text, client_msg_id, reply_id, intent,
                    source, created_ms)
                VALUES (\(m.id), \(m.conversationID), \(m.tenant), \(m.role), \(m.text), \(m.clientMsgID), \(m.replyID),
                    \(m.intent), \(m.source), \(m.createdMillis))
                ON CONFLICT (conversation_id, client_msg_id) DO NOTHING RETURNING id
                """, logger: logger
            ).collect()
            if inserted.isEmpty, let client = m.clientMsgID {
                let rows = try await conn.query(
                    """
                    SELECT \(unescaped: Self.chatColumns) FROM chat_messages
                    WHERE conversation_id = \(m.conversationID) AND client_msg_id = \(client)
                    """, logger: logger
                ).collect()
                guard let row = rows.first else { throw HubError(.internal, "chat message vanished") }
                return try Self.chatMessage(row)
            }
            if m.role == "assistant" {
                try await Self.outbox(conn, logger: logger, [
                    OutboxRow(tenant: m.tenant, type: "chat.turn", now: m.createdMillis, payload: StoreCoding.chatTurnPayload(m))
                ])
            }
            return m
        }
    }

    public func chatHistory(conversationID: String, limit: Int) async throws(HubError) -> [ChatMessageRecord] {
        guard !Self.hasNUL(conversationID) else { return [] }
        let logger = self.logger
        return try await connection("chatHistory") { conn in
            try await conn.query(
                """
                SELECT \(unescaped: Self.chatColumns) FROM chat_messages WHERE conversation_id = \(conversationID)
                ORDER BY created_ms DESC, role ASC LIMIT \(limit)
                """, logger: logger
            ).collect().map(Self.chatMessage).reversed()
        }
    }

    public func recordLLMUsage(_ u: LLMUsageRecordRow) async throws(HubError) {
        try Self.refuseNUL(u.tenant, u.conversationID, u.provider, u.model)
        let logger = self.logger
        try await transaction("recordLLMUsage") { conn in
            try await conn.query(
                """
                INSERT INTO llm_usage (id, tenant, conversation_id, provider, model, input_tokens, output_tokens,
                    completed, at_ms)
                VALUES (\(StoreCoding.newID(prefix: "lu")), \(u.tenant), \(u.conversationID), \(u.provider), \(u.model),
                    \(u.inputTokens), \(u.outputTokens), \(u.completed ? Int64(1) : Int64(0)), \(u.atMillis))
                """, logger: logger)
            try await Self.outbox(conn, logger: logger, [
                OutboxRow(tenant: u.tenant, type: "llm.usage", now: u.atMillis, payload: StoreCoding.usagePayload(u))
            ])
        }
    }

    public func llmTokensByTenant(since: Int64) async throws(HubError) -> [String: Int64] {
        let logger = self.logger
        return try await connection("llmTokensByTenant") { conn in
            var out: [String: Int64] = [:]
            for row in try await conn.query(
                """
                SELECT tenant, SUM(input_tokens + output_tokens)::bigint FROM llm_usage WHERE at_ms >= \(since)
                GROUP BY tenant
                """, logger: logger
            ).collect() {
                let (tenant, n) = try row.decode((String, Int64).self)
                out[tenant] = n
            }
            return out
        }
    }

    static let chatColumns =
        "id, conversation_id, tenant, role, text, client_msg_id, reply_id, intent, source, created_ms"

    static func chatMessage(_ row: PostgresRow) throws -> ChatMessageRecord {
        let (id, conversation, tenant, role, text, client, reply, intent, source, created) = try row.decode(
            (String, String, String, String, String, String?, String?, String?, String?, Int64).self)
        return ChatMessageRecord(
            id: id, conversationID: conversation, tenant: tenant, role: role, text: text, clientMsgID: client,
            replyID: reply, intent: intent, source: source, createdMillis: created)
    }
}
