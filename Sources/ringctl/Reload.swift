// `ringctl reload`
import DBus
import Glibc
import RingmasterCore

struct Reload: Subcommand {
    static let spec = CommandSpec(
        "reload",
        abstract: "Reload the configuration: apply only what changed.",
        discussion: """
            The daemon parses and validates the files first: an invalid configuration changes \
            nothing, and its problems are printed here (file:line:column: message) with exit \
            status 1. A valid one is applied as a diff: new services start, removed ones stop, \
            changed ones restart (rolling), an instances-only change just scales.
            """)

    init(_: ParsedArguments) {}

    func run() throws {
        try withClient { client in
            do {
                try client.callManager("Reload")
            } catch let e as BusError where e.name == RingmasterBus.ErrorName.invalidConfig {
                printError("invalid configuration, nothing changed:")
                for line in e.message.split(separator: "\n") { fputs("\(line)\n", stderr) }
                throw ExitCode.failure
            }
        }
    }
}
