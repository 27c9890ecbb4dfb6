// ringctl: control a running ringmasterd over D-Bus, and check its configuration offline.
// One file per subcommand; add yours to `subcommands` below.
import ArgumentParser
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
}
