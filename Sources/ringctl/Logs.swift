// `ringctl logs NAME [-f] [-n N]`: the service's lines from the journal. Runs journalctl,
// which already knows the user's journal files, paging, colours and following.
import DBus
import Glibc
import RingmasterCore

struct Logs: Subcommand {
    static let spec = CommandSpec(
        "logs",
        abstract: "Show a service's output from the journal (and ringmasterd's events about it).",
        discussion: """
            Runs journalctl for the entries with SYSLOG_IDENTIFIER=NAME (what the service's \
            processes wrote) or RINGMASTER_SERVICE=NAME (ringmasterd's events: started, exited, …).
            """,
        arguments: [.init("name", help: "The service.")],
        options: [.init("follow", short: "f", help: "Follow: keep printing new entries."),
                  .init("lines", short: "n", value: "n", help: "Show the last N entries (default: all; with -f, 10).")])

    var name: String
    var follow: Bool
    var lines: Int?

    init(_ a: ParsedArguments) throws(UsageError) {
        name = a.one("name") ?? ""
        follow = a.flag("follow")
        if let text = a.values["lines"] {
            guard let n = Int(text), n >= 0 else { throw UsageError("-n must be a number, 0 or more (not \"\(text)\")") }
            lines = n
        }
        if let problem = ConfigLoader.nameProblem(name) { throw UsageError("\"\(name)\" is not a service name: \(problem)") }
    }

    var journalctlArguments: [String] {
        var argv = ["journalctl", "SYSLOG_IDENTIFIER=\(name)", "+", "RINGMASTER_SERVICE=\(name)"]
        if let lines { argv += ["-n", String(lines)] }
        if follow { argv.append("-f") }
        return argv
    }

    func run() throws {
        // An unknown service is an error when the daemon can say so; without the daemon the
        // journal still has what its services wrote.
        if let client = try? RingmasterClient.connect() {
            do {
                _ = try client.servicePath(name)
            } catch let e as BusError where e.name == RingmasterBus.ErrorName.noSuchService {
                printError(e.message)
                throw ExitCode(ExitCodes.noSuchService)
            } catch {}
        }
        let argv = journalctlArguments
        var cArgs = argv.map { strdup($0) }
        cArgs.append(nil)
        fflush(stdout)
        execvp("journalctl", &cArgs)
        printError("cannot run journalctl: \(String(cString: strerror(errno)))")
        throw ExitCode.failure
    }
}
