// `ringctl logs NAME [-f] [-n N]`: the service's lines from the journal. Runs journalctl,
// which already knows the user's journal files, paging, colours and following.
import ArgumentParser
import Glibc
import RingmasterCore
import Systemd

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a service's output from the journal (and ringmasterd's events about it).",
        discussion: """
            Runs journalctl for the entries with SYSLOG_IDENTIFIER=NAME (what the service's \
            processes wrote) or RINGMASTER_SERVICE=NAME (ringmasterd's events: started, exited, …).
            """)

    @Argument(help: "The service.")
    var name: String

    @Flag(name: [.short, .long], help: "Follow: keep printing new entries.")
    var follow = false

    @Option(name: [.customShort("n"), .customLong("lines")], help: "Show the last N entries (default: all; with -f, 10).")
    var lines: Int?

    func validate() throws {
        if let lines, lines < 0 { throw ValidationError("-n must be 0 or more") }
        if let problem = ConfigLoader.nameProblem(name) { throw ValidationError("\"\(name)\" is not a service name: \(problem)") }
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
