import ArgumentParser

/// `examhub`: the realtime hub for online assessments.
@main
struct ExamHubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "examhub",
        abstract: "ExamHub: the realtime hub for online assessments.",
        subcommands: [
            ServeCommand.self, TokenCommand.self, MigrateCommand.self, IntentsCommand.self, LLMCommand.self,
            ConfigCommand.self, WorkerCommand.self,
        ],
        defaultSubcommand: ServeCommand.self)
}
