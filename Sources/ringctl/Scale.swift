// `ringctl scale NAME N`
import ArgumentParser
import Systemd

struct Scale: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change the number of instances of a service.",
        discussion: "Scaling down stops the highest instance numbers first. Lasts until the next reload.")

    @Argument(help: "The service.")
    var name: String

    @Argument(help: "The number of instances (1 or more; to stop them all, use `ringctl stop`).")
    var instances: UInt32

    func validate() throws {
        if instances == 0 { throw ValidationError("instances must be at least 1 (to stop every instance: ringctl stop \(name))") }
    }

    func run() throws {
        try withClient { client in
            try client.callManager("ScaleService", [.string(name), .uint32(instances)])
        }
    }
}
