/// The assistant's intent matcher (placeholder until the matcher lands).
public enum ExamHubIntents {}
