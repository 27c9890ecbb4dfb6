// `ringctl kill NAME [--signal SIG]`
import ArgumentParser
import RingmasterCore
import Systemd

struct Kill: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a signal to every process of a service.",
        discussion: """
            The signal goes to each instance's whole process group. What is wanted does not change: \
            processes that die are restarted as the restart policy says.
            """)

    @Argument(help: "The service.")
    var name: String

    @Option(name: [.short, .long], help: "The signal: a name (TERM, SIGHUP, RTMIN+2) or a number.")
    var signal: String = "TERM"

    func validate() throws {
        if Signals.number(named: signal) == nil { throw ValidationError(Signals.unknownNameMessage(signal)) }
    }

    func run() throws {
        let number = Signals.number(named: signal)!
        try withClient { client in
            try client.callManager("KillService", [.string(name), .int32(number)])
        }
    }
}
