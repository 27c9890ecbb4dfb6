// `ringctl start|stop|restart NAME…`: change what is wanted; return once it is under way.
import DBus
import RingmasterCore

/// start, stop and restart: one Manager method call per named service.
enum StartStop {
    static let commands: [SubcommandEntry] = [
        command("start", method: "StartService",
                abstract: "Start services (once their dependencies are ready).",
                discussion: "A failed service gets a fresh start: its start limit is reset.",
                help: "The services to start."),
        command("stop", method: "StopService",
                abstract: "Stop services (stop-signal, then SIGKILL after stop-timeout).",
                help: "The services to stop."),
        command("restart", method: "RestartService",
                abstract: "Restart services: rolling, one instance at a time, when several are running.",
                discussion: """
                    With more than one instance, one extra instance is started first and each old process \
                    is stopped only once a replacement is ready, so clients of a shared socket see no \
                    failed request. A single instance is stopped, then started. Returns once the restart \
                    is under way; `ringctl events` shows its progress.
                    """,
                help: "The services to restart."),
    ]

    private static func command(_ name: String, method: String, abstract: String, discussion: String = "",
                                help: String) -> SubcommandEntry {
        let spec = CommandSpec(name, abstract: abstract, discussion: discussion,
                               arguments: [.init("names", .atLeastOne, help: help)])
        return SubcommandEntry(spec: spec) { arguments in
            try forEachService(arguments.all("names")) { client, name in try client.callManager(method, [.string(name)]) }
        }
    }
}
