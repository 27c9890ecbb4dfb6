// `ringctl check [FILE]`: the daemon's own parsing and validation, offline.
import ConfigFiles
import Glibc
import RingmasterCore

struct Check: Subcommand {
    static let spec = CommandSpec(
        "check",
        abstract: "Check a configuration file (and the conf.d/*.toml beside it).",
        discussion: """
            Runs the same parsing and validation as ringmasterd. Prints one line per problem, \
            as file:line:column: message, on standard error and exits 1; prints a summary and \
            exits 0 if the configuration is valid.
            """,
        arguments: [.init("file", .optional, help: """
            The main configuration file. Default: $XDG_CONFIG_HOME/ringmaster/ringmaster.toml, \
            else ~/.config/ringmaster/ringmaster.toml.
            """)])

    var file: String?

    init(_ a: ParsedArguments) {
        file = a.one("file")
    }

    func run() throws {
        let path = file ?? ConfigLoader.defaultConfigPath()
        let config: Config
        do {
            config = try ConfigLoader.load(mainFile: path)
        } catch {
            for diagnostic in error.diagnostics { fputs("\(diagnostic)\n", stderr) }
            throw ExitCode.failure
        }
        print("\(Check.summary(of: config, path: path))")
    }

    /// "ringmaster.toml: OK (3 services, 1 socket)", with "+ N conf.d files" when there are some.
    static func summary(of config: Config, path: String) -> String {
        func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : "s")" }
        let extra = config.files.count - 1
        let files = extra > 0 ? "\(path) + \(count(extra, "conf.d file"))" : path
        return "\(files): OK (\(count(config.services.count, "service")), \(count(config.sockets.count, "socket")))"
    }
}
