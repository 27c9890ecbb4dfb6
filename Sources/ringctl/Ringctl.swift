// ringctl: control a running ringmasterd over D-Bus, and check its configuration offline.
// One file per subcommand; add yours to `subcommands` below.
import ArgumentParser
import Glibc
import RingmasterCore

@main
struct Ringctl: ParsableCommand {
    /// Every subcommand, in the order `ringctl --help` lists them.
    static let subcommands: [ParsableCommand.Type] = [
        Status.self, Start.self, Stop.self, Restart.self, Scale.self, Kill.self, Reload.self, Logs.self, Events.self,
        Check.self,
    ]

    static let configuration = CommandConfiguration(
        commandName: "ringctl",
        abstract: "Control ringmaster, the per-user process supervisor.",
        discussion: """
            ringctl talks to ringmasterd on the user bus (io.ringmaster.Ringmaster1). \
            `ringctl check` works offline.
            """,
        version: ringmasterVersion,
        subcommands: subcommands
    )

    /// `ringctl status [NAME…] [--json]` is what people (and scripts, in loops) run most:
    /// it skips swift-argument-parser's reflection-driven setup (~1.5 ms of a ~4 ms start).
    /// Anything else — other flags, --help, other commands — takes the full parser.
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        if args.first == "status", args.dropFirst().allSatisfy({ $0 == "--json" || !$0.hasPrefix("-") }) {
            var status = Status()
            status.names = args.dropFirst().filter { $0 != "--json" }
            status.json = args.contains("--json")
            do {
                try status.run()
                Glibc.exit(0)
            } catch {
                exit(withError: error)
            }
        }
        main(nil)
    }
}
