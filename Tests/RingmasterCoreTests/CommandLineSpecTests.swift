import RingmasterCore
import XCTest

/// ringctl's command-line parser and help writer.
final class CommandLineSpecTests: XCTestCase {
    private let kill = CommandSpec("kill", abstract: "Send a signal.", discussion: "Long text about signals.",
                                   arguments: [.init("name", help: "The service.")],
                                   options: [.init("signal", short: "s", value: "signal", help: "The signal."),
                                             .init("json", help: "JSON.")])
    private let scale = CommandSpec("scale", abstract: "Scale.",
                                    arguments: [.init("names", .atLeastOne, help: "Services."), .init("n", help: "Count.")])

    private func parse(_ spec: CommandSpec, _ args: [String]) throws -> ParsedArguments? { try spec.parse(args) }

    func testPositionalsOptionsAndFlags() throws {
        for args in [["web", "--signal", "HUP"], ["web", "--signal=HUP"], ["-s", "HUP", "web"], ["-sHUP", "web"]] {
            let p = try XCTUnwrap(try parse(kill, args))
            XCTAssertEqual(p.one("name"), "web", "\(args)")
            XCTAssertEqual(p.values["signal"], "HUP", "\(args)")
            XCTAssertFalse(p.flag("json"))
        }
        let p = try XCTUnwrap(try parse(kill, ["--json", "--", "-web"]))
        XCTAssertEqual(p.one("name"), "-web", "after --, everything is positional")
        XCTAssertTrue(p.flag("json"))
        // An option's value is taken as it is, even when it starts with '-'.
        XCTAssertEqual(try parse(kill, ["web", "-s", "-9"])?.values["signal"], "-9")
        // A repeating argument leaves what the arguments after it need.
        let s = try XCTUnwrap(try parse(scale, ["a", "b", "3"]))
        XCTAssertEqual(s.all("names"), ["a", "b"])
        XCTAssertEqual(s.one("n"), "3")
    }

    func testHelpAnywhere() throws {
        XCTAssertNil(try parse(kill, ["--help"]))
        XCTAssertNil(try parse(kill, ["web", "-h"]))
        XCTAssertNotNil(try parse(kill, ["--", "-h"]), "after --, -h is a name")
    }

    func testUsageErrorsSayWhatIsWrong() {
        func message(_ spec: CommandSpec, _ args: [String]) -> String? {
            do { _ = try spec.parse(args); return nil } catch { return error.message }
        }
        XCTAssertEqual(message(kill, []), "missing <name>")
        XCTAssertEqual(message(kill, ["a", "b"]), "unexpected argument 'b'")
        XCTAssertEqual(message(kill, ["a", "--nope"]), "unknown option '--nope'")
        XCTAssertEqual(message(kill, ["a", "-x"]), "unknown option '-x'")
        XCTAssertEqual(message(kill, ["a", "--signal"]), "missing value for '--signal <signal>'")
        XCTAssertEqual(message(kill, ["a", "--json=1"]), "'--json' takes no value")
        XCTAssertEqual(message(kill, ["a", "-s", "1", "-s", "2"]), "'--signal' given twice")
        XCTAssertEqual(message(scale, ["3"]), "missing <names> ...")
    }

    func testUsageAndHelpText() {
        XCTAssertEqual(kill.usage(prefix: "ringctl"), "ringctl kill <name> [--signal <signal>] [--json]")
        XCTAssertEqual(scale.usage(prefix: "ringctl"), "ringctl scale <names> ... <n>")
        // An option that is not in the usage line (`--version`) is still parsed and listed.
        var versioned = scale
        versioned.options.append(.init("version", help: "Show the version.", inUsage: false))
        XCTAssertEqual(versioned.usage(prefix: "ringctl"), "ringctl scale <names> ... <n>")
        XCTAssertTrue(versioned.help(prefix: "ringctl").contains("USAGE: ringctl scale <names> ... <n>\n"))
        XCTAssertTrue(versioned.help(prefix: "ringctl").contains("  --version               Show the version.\n"))
        XCTAssertEqual(try parse(versioned, ["a", "3", "--version"])?.flag("version"), true)
        XCTAssertEqual(kill.help(prefix: "ringctl"), """
            OVERVIEW: Send a signal.

            Long text about signals.

            USAGE: ringctl kill <name> [--signal <signal>] [--json]

            ARGUMENTS:
              <name>                  The service.

            OPTIONS:
              -s, --signal <signal>   The signal.
              --json                  JSON.
              -h, --help              Show help information.

            """)
        let top = CommandSpec("", abstract: "Top.").help(prefix: "ringctl", subcommands: [kill, scale], width: 40)
        XCTAssertTrue(top.contains("USAGE: ringctl <subcommand>\n"), top)
        XCTAssertTrue(top.contains("SUBCOMMANDS:\n  kill                    Send a signal.\n  scale"), top)
        // Wrapped to the width, continuation lines under the text column.
        XCTAssertTrue(top.contains("  -h, --help              Show help\n                          information.\n"), top)
        XCTAssertTrue(top.hasSuffix("See 'ringctl help <subcommand>' for detailed help.\n"), top)
    }
}
