import ExamHubIntents
import ExamHubLLM

/// Where an answer came from (PROTOCOL.md `chat.reply.source`).
public enum AnswerSource: String, Sendable, Hashable {
    case intent, llm, policy
}

/// What the assistant does with one message.
public enum AssistantDecision: Sendable, Hashable {
    /// Answer now with this text.
    case reply(text: String, intent: String?, confidence: Double?, source: AnswerSource)
    /// Run the intent's built-in action, then render its answer with the slots the action fills
    /// (``Assistant/render(_:slots:variantSeed:)``).
    case action(BuiltInAction, IntentMatch)
    /// Hand the message to the LLM (it is not about the exam's content and no intent knows it).
    case llm
}

/// The assistant's dialogue, with no I/O: the content policy first, then the intents, then the LLM.
///
/// - During an attempt, a request for answers, hints or explanations of exam content is refused (source
///   `policy`) whatever else would answer: the matcher's `exam_help` intent, or the ``ContentPolicy`` net for messages
///   the matcher does not know. The `exam_help` answer is a refusal outside attempts too.
/// - Abusive messages get a polite refusal (source `policy`), counted by the caller.
/// - A confident intent answers from its responses (filling built-in action slots from live state); an intent
///   whose context does not hold (time left outside an attempt) gives its `unavailable` text.
/// - Everything else goes to the LLM, or, with no provider configured, gets a plain "I can't answer that here".
public struct Assistant: Sendable {
    public let catalog: IntentCatalog
    public let matcher: IntentMatcher
    public let llmEnabled: Bool

    /// The intent whose answer is the policy refusal.
    public static let examHelpIntent = "exam_help"

    public init(catalog: IntentCatalog, matcher: IntentMatcher, llmEnabled: Bool) {
        self.catalog = catalog
        self.matcher = matcher
        self.llmEnabled = llmEnabled
    }

    /// Trains the matcher on `catalog`.
    public init(catalog: IntentCatalog, llmEnabled: Bool) {
        self.init(catalog: catalog, matcher: IntentMatcher(catalog: catalog), llmEnabled: llmEnabled)
    }

    /// Decides what to do with `text`; `context` is updated with the turn (for follow-ups).
    public func decide(_ text: String, context: inout DialogContext) -> (AssistantDecision, IntentMatch?) {
        if ContentPolicy.isAbusive(text) {
            return (.reply(text: ContentPolicy.abuseReply, intent: "abuse", confidence: nil, source: .policy), nil)
        }
        let match = matcher.match(text, context: context)
        context.record(match)
        let known = !match.isOutOfScope && match.intent != nil
        if match.intent == Self.examHelpIntent && known
            || context.inAttempt && !known && ContentPolicy.looksLikeExamContent(text)
        {
            return (.reply(text: refusal(match), intent: Self.examHelpIntent, confidence: match.confidence, source: .policy), match)
        }
        if known {
            if match.contextSatisfied, let action = match.action {
                return (.action(action, match), match)
            }
            return (.reply(text: catalog.respond(to: match), intent: match.intent, confidence: match.confidence, source: .intent), match)
        }
        if llmEnabled { return (.llm, match) }
        return (.reply(text: ContentPolicy.noLLMReply, intent: nil, confidence: match.confidence, source: .intent), match)
    }

    /// The answer of an action's intent with the action's slots filled.
    public func render(_ match: IntentMatch, slots: [String: String], variantSeed: UInt64 = 0) -> String {
        catalog.respond(to: match, slots: slots, variantSeed: variantSeed)
    }

    private func refusal(_ match: IntentMatch) -> String {
        if match.intent == Self.examHelpIntent, !match.isOutOfScope {
            return catalog.respond(to: match)
        }
        return ContentPolicy.refusal
    }

    /// The messages sent to the LLM: the system prompt, the conversation's earlier turns (texts only, never the
    /// exam's questions) and the new message.
    public static func llmMessages(systemPrompt: String, history: [(role: String, text: String)], message: String)
        -> [LLMMessage]
    {
        var out = [LLMMessage(role: .system, content: systemPrompt)]
        for turn in history {
            out.append(LLMMessage(role: turn.role == "assistant" ? .assistant : .user, content: turn.text))
        }
        out.append(LLMMessage(role: .user, content: message))
        return out
    }

    /// The default system prompt.
    public static func systemPrompt(inAttempt: Bool) -> String {
        var prompt = """
            You are the ExamHub assistant for people taking online exams. Answer briefly and plainly. You help with \
            using the exam platform, technical problems, study habits and general questions.
            """
        if inAttempt {
            prompt += """
                 The user is taking an exam right now. Never give answers, hints, explanations or translations of \
                exam questions, never solve problems, check answers or write text they could submit; say that you \
                cannot help with exam content.
                """
        }
        return prompt
    }
}

/// The content policy: what is refused whatever the matcher or the LLM would say.
public enum ContentPolicy {
    /// The refusal when a message asks for help with exam content during an attempt.
    public static let refusal =
        "Sorry, I can't help with the content of exam questions: no answers, hints or explanations. I can help with time, saving, the rules or technical problems."
    /// The answer to abusive messages.
    public static let abuseReply =
        "I'm here to help with your exam. Let's keep it respectful: what can I help you with?"
    /// The answer when no intent knows a message and no LLM is configured.
    public static let noLLMReply =
        "I can't answer that here: I can help with time left, saving, the exam rules, technical problems and reaching a proctor."

    private static let contentCues: [[String]] = [
        ["answer", "to"], ["the", "answer"], ["correct", "answer"], ["right", "answer"], ["hint"], ["hints"],
        ["clue"], ["solve"], ["solution"], ["explain", "question"], ["explain", "this"], ["what", "does", "question"],
        ["question", "#"], ["is", "option"], ["which", "option"], ["formula", "for"], ["derivative"], ["integral"],
        ["translate", "this"], ["write", "my"], ["write", "the"], ["check", "my", "answer"], ["is", "it", "true", "that"],
    ]

    /// Abusive whatever they are aimed at.
    private static let strongWords: Set<String> = [
        "idiot", "moron", "fuck", "fucking", "fucker", "shit", "bitch", "bastard", "asshole", "cunt", "retard",
    ]
    /// Abusive when aimed at someone ("you are useless"), not at things ("this stupid webcam").
    private static let mildWords: Set<String> = ["stupid", "dumb", "hate", "damn", "crap", "useless", "shut", "suck", "sucks"]

    /// Lowercase words and numbers of `text` (numbers become `#`).
    static func words(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        func flush() {
            guard !current.isEmpty else { return }
            out.append(current.allSatisfy(\.isNumber) ? "#" : current)
            current = ""
        }
        for ch in text.lowercased().prefix(2000) {
            if ch.isLetter || ch.isNumber { current.append(ch) } else { flush() }
        }
        flush()
        return out
    }

    /// Whether `text` asks for help with exam content (answers, hints, solutions, explanations of questions).
    public static func looksLikeExamContent(_ text: String) -> Bool {
        let w = words(text)
        return contentCues.contains { cue in
            guard cue.count <= w.count else { return false }
            return (0...(w.count - cue.count)).contains { i in Array(w[i..<(i + cue.count)]) == cue }
        }
    }

    /// Whether `text` is abusive (insults or profanity aimed at the assistant or others).
    public static func isAbusive(_ text: String) -> Bool {
        let w = words(text)
        if w.contains(where: strongWords.contains) { return true }
        let aimed = w.contains("you") || w.contains("your") || w.contains("youre") || w.contains("u")
        return aimed && w.contains(where: mildWords.contains)
    }
}
