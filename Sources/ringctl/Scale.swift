// `ringctl scale NAME N`
import DBus
import RingmasterCore

struct Scale: Subcommand {
    static let spec = CommandSpec(
        "scale",
        abstract: "Change the number of instances of a service.",
        discussion: "Scaling down stops the highest instance numbers first. Lasts until a reload changes the service's config, across restarts of ringmasterd (not past the login session). Waits until the new count is reached (new instances ready, those scaled away gone).",
        arguments: [.init("name", help: "The service."),
                    .init("instances", help: "The number of instances, 0 to 10000 (0: no process, the service still wanted).")],
        options: [Wait.noBlock])

    var name: String
    var instances: UInt32
    var noBlock: Bool

    init(_ a: ParsedArguments) throws(UsageError) {
        name = a.one("name") ?? ""
        guard let n = a.one("instances").flatMap({ UInt32($0) }) else {
            throw UsageError("instances must be a whole number, not \"\(a.one("instances") ?? "")\"")
        }
        instances = n
        noBlock = a.flag("no-block")
    }

    func run() throws {
        try withClient { client in
            if noBlock {
                try client.callManager("ScaleService", [.string(name), .uint32(instances)])
            } else {
                try Wait.run(client, [(name, Wait.call("ScaleServiceAndWait", [.string(name), .uint32(instances)]))],
                             stopping: true)
            }
        }
    }
}
