// `ringctl reload [NAME…]`
import DBus
import Glibc
import RingmasterCore

struct Reload: Subcommand {
    static let spec = CommandSpec(
        "reload",
        abstract: "Reload the configuration (apply only what changed), or send services their reload-signal.",
        discussion: """
            Without a name: the daemon parses and validates the files first: an invalid \
            configuration changes nothing, and its problems are printed here \
            (file:line:column: message) with exit status 1. A valid one is applied as a diff: new \
            services start, removed ones stop, changed ones restart (rolling), an instances-only \
            change just scales. Waits until every change is done, with the restarts it caused; a \
            changed service whose first new instance does not become ready keeps its old config \
            and ringctl exits 1 saying so. With names: each service's reload-signal (e.g. HUP) goes \
            to the main process of each of its instances, nothing is restarted (done once sent); \
            a service without reload-signal is an error.
            """,
        arguments: [.init("names", .any, help: "Services to send their reload-signal (default: reload the configuration).")],
        options: [Wait.noBlock])

    var names: [String]
    var noBlock: Bool

    init(_ a: ParsedArguments) {
        names = a.all("names")
        noBlock = a.flag("no-block")
    }

    func run() throws {
        if !names.isEmpty {
            try forEachService(names) { client, name in try client.callManager("ReloadService", [.string(name)]) }
            return
        }
        try withClient { client in
            func invalid(_ e: BusError) -> Bool {
                guard e.name == RingmasterBus.ErrorName.invalidConfig else { return false }
                printError("invalid configuration, nothing changed:")
                for line in e.message.split(separator: "\n") { fputs("\(line)\n", stderr) }
                return true
            }
            if !noBlock {
                try Wait.run(client, [(nil, Wait.call("ReloadAndWait", []))], onError: invalid)
                return
            }
            do {
                try client.callManager("Reload")
            } catch let e as BusError where invalid(e) {
                throw ExitCode.failure
            }
        }
    }
}
