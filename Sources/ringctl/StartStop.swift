// `ringctl start|stop|restart NAME…`: change what is wanted; wait until it is done (Wait.swift),
// or with --no-block return once it is under way.
import DBus
import RingmasterCore

/// start, stop and restart: one Manager method call per named service.
enum StartStop {
    static let commands: [SubcommandEntry] = [
        command("start", method: "StartService",
                abstract: "Start services (once their dependencies are ready).",
                discussion: """
                    A failed service gets a fresh start: its start limit is reset. Waits until every wanted \
                    instance is ready, and exits 1 saying why if the service failed instead.
                    """,
                help: "The services to start."),
        command("stop", method: "StopService",
                abstract: "Stop services (stop-signal, then SIGKILL after stop-timeout).",
                discussion: "Waits until no process of the services is left.",
                help: "The services to stop."),
        command("restart", method: "RestartService",
                abstract: "Restart services: rolling, one instance at a time, when several are running.",
                discussion: """
                    With more than one instance, one extra instance is started first and each old process \
                    is stopped only once a replacement is ready, so clients of a shared socket see no \
                    failed request. The extra instance is a canary: if it does not become ready (it exits, \
                    or ready-timeout passes), it is stopped, the old instances keep serving, and ringctl \
                    exits 1 naming the instance and the reason. A single instance is stopped, then started. \
                    Waits until every instance was replaced (one line per instance on a terminal).
                    """,
                help: "The services to restart."),
    ]

    private static func command(_ name: String, method: String, abstract: String, discussion: String = "",
                                help: String) -> SubcommandEntry {
        let spec = CommandSpec(name, abstract: abstract, discussion: discussion,
                               arguments: [.init("names", .atLeastOne, help: help)], options: [Wait.noBlock])
        return SubcommandEntry(spec: spec) { arguments in
            let names = arguments.all("names")
            if arguments.flag("no-block") {
                try forEachService(names) { client, name in try client.callManager(method, [.string(name)]) }
                return
            }
            try withClient { client in
                try Wait.run(client, names.map { ($0, Wait.call(method + "AndWait", [.string($0)])) }, stopping: name == "stop")
            }
        }
    }
}
