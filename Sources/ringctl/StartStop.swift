// `ringctl start|stop|restart NAME…`: change what is wanted; return once it is under way.
import ArgumentParser
import Systemd

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start services (once their dependencies are ready).",
        discussion: "A failed service gets a fresh start: its start limit is reset.")

    @Argument(help: "The services to start.")
    var names: [String]

    func validate() throws {
        if names.isEmpty { throw ValidationError("name at least one service") }
    }

    func run() throws {
        try forEachService(names) { client, name in try client.callManager("StartService", [.string(name)]) }
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop services (stop-signal, then SIGKILL after stop-timeout).")

    @Argument(help: "The services to stop.")
    var names: [String]

    func validate() throws {
        if names.isEmpty { throw ValidationError("name at least one service") }
    }

    func run() throws {
        try forEachService(names) { client, name in try client.callManager("StopService", [.string(name)]) }
    }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restart services: rolling, one instance at a time, when several are running.",
        discussion: """
            With more than one instance, one extra instance is started first and each old process \
            is stopped only once a replacement is ready, so clients of a shared socket see no \
            failed request. A single instance is stopped, then started. Returns once the restart \
            is under way; `ringctl events` shows its progress.
            """)

    @Argument(help: "The services to restart.")
    var names: [String]

    func validate() throws {
        if names.isEmpty { throw ValidationError("name at least one service") }
    }

    func run() throws {
        try forEachService(names) { client, name in try client.callManager("RestartService", [.string(name)]) }
    }
}
