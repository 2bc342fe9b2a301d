/// The LLM gateway client (placeholder until the client lands).
public enum ExamHubLLM {}
