// ringctl: control a running ringmasterd over D-Bus, and check its configuration offline.
// One file per subcommand; add yours to `subcommands` below.
import Glibc
import RingmasterCore

/// A subcommand: its command line (parsed and checked by `init`, which throws a UsageError
/// for what does not fit), and what it does.
protocol Subcommand {
    static var spec: CommandSpec { get }
    init(_ arguments: ParsedArguments) throws(UsageError)
    func run() throws
}

/// A subcommand as `main` dispatches it.
struct SubcommandEntry {
    let spec: CommandSpec
    let run: (ParsedArguments) throws -> Void

    /// Every subcommand also takes `--version` (as with swift-argument-parser, which ringctl
    /// used before: the completions and the man page offer it); its usage line does not show it.
    static let version = CommandSpec.Option("version", help: "Show the version.", inUsage: false)

    init(spec: CommandSpec, run: @escaping (ParsedArguments) throws -> Void) {
        var spec = spec
        spec.options.append(Self.version)
        self.spec = spec
        self.run = run
    }

    init<C: Subcommand>(_: C.Type) {
        self.init(spec: C.spec) { arguments in try C(arguments).run() }
    }
}

/// Ends ringctl with this status (after the command printed what it had to).
struct ExitCode: Error {
    var rawValue: Int32
    init(_ code: Int32) { rawValue = code }
    static let failure = ExitCode(ExitCodes.failure)
}

@main
enum Ringctl {
    /// Every subcommand, in the order `ringctl --help` lists them.
    static let subcommands: [SubcommandEntry] = [SubcommandEntry(Status.self)] + StartStop.commands + [
        SubcommandEntry(Scale.self), SubcommandEntry(Kill.self), SubcommandEntry(Reload.self), SubcommandEntry(Logs.self), SubcommandEntry(Why.self),
        SubcommandEntry(Events.self), SubcommandEntry(Check.self),
    ]

    static let spec = CommandSpec(
        "",
        abstract: "Control ringmaster, the per-user process supervisor.",
        discussion: """
            ringctl talks to ringmasterd on the user bus (io.ringmaster.Ringmaster1). \
            `ringctl check` works offline.
            """,
        options: [SubcommandEntry.version])

    /// Exit status for a command line that does not fit (sysexits.h EX_USAGE).
    static let usageError: Int32 = 64

    static func main() {
        fflush(stdout)
        exit(run(Array(CommandLine.arguments.dropFirst())))
    }

    static func run(_ args: [String]) -> Int32 {
        guard let first = args.first else {
            output(spec.help(prefix: "ringctl", subcommands: subcommands.map(\.spec)))
            return 0
        }
        switch first {
        case "--version":
            output(ringmasterVersion + "\n")
            return 0
        case "-h", "--help":
            output(spec.help(prefix: "ringctl", subcommands: subcommands.map(\.spec)))
            return 0
        case "help":
            guard args.count > 1 else { return run(["--help"]) }
            guard let command = subcommands.first(where: { $0.spec.name == args[1] }) else {
                printError("no subcommand \"\(args[1])\" (see 'ringctl --help')")
                return usageError
            }
            output(command.spec.help(prefix: "ringctl"))
            return 0
        default:
            break
        }
        guard let command = subcommands.first(where: { $0.spec.name == first }) else {
            printError(first.hasPrefix("-") ? "unknown option '\(first)' (see 'ringctl --help')"
                                            : "unknown subcommand \"\(first)\" (see 'ringctl --help')")
            return usageError
        }
        let arguments: ParsedArguments
        do {
            guard let parsed = try command.spec.parse(Array(args.dropFirst())) else {
                output(command.spec.help(prefix: "ringctl"))
                return 0
            }
            arguments = parsed
            if arguments.flag("version") {
                output(ringmasterVersion + "\n")
                return 0
            }
            try command.run(arguments)
            return 0
        } catch let e as UsageError {
            printError("\(e.message) (usage: \(command.spec.usage(prefix: "ringctl")))")
            return usageError
        } catch let code as ExitCode {
            return code.rawValue
        } catch {
            let failure = describe(error)
            printError(failure.message)
            return failure.code
        }
    }
}
