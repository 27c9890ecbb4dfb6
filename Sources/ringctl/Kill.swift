// `ringctl kill NAME [--signal SIG]`
import DBus
import RingmasterCore

struct Kill: Subcommand {
    static let spec = CommandSpec(
        "kill",
        abstract: "Send a signal to every process of a service.",
        discussion: """
            The signal goes to each instance's whole process group. What is wanted does not change: \
            processes that die are restarted as the restart policy says. Returns once the signal was \
            sent to every group (that is all a kill does; --no-block is accepted for symmetry).
            """,
        arguments: [.init("name", help: "The service.")],
        options: [.init("signal", short: "s", value: "signal",
                        help: "The signal: a name (TERM, SIGHUP, RTMIN+2) or a number. (default: TERM)"),
                  Wait.noBlock])

    var name: String
    var number: Int32

    init(_ a: ParsedArguments) throws(UsageError) {
        name = a.one("name") ?? ""
        let signal = a.values["signal"] ?? "TERM"
        guard let number = Signals.number(named: signal) else { throw UsageError(Signals.unknownNameMessage(signal)) }
        self.number = number
    }

    func run() throws {
        try withClient { client in
            try client.callManager("KillService", [.string(name), .int32(number)])
        }
    }
}
