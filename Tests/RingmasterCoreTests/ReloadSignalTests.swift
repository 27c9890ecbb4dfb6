import XCTest
@testable import RingmasterCore

/// `reload-signal`: the key, what a reload makes of a change of it (nothing to restart), and
/// which processes `reload NAME` signals.
final class ReloadSignalTests: XCTestCase {
    private func parse(_ toml: String) throws -> Config { try ConfigLoader.parse(text: toml, file: "c.toml") }

    func testKeyTakesASignalNameOrNumber() throws {
        XCTAssertEqual(try parse("[services.web]\ncommand = [\"x\"]\nreload-signal = \"HUP\"").services[0].reloadSignal, 1)
        XCTAssertEqual(try parse("[services.web]\ncommand = [\"x\"]\nreload-signal = \"SIGUSR2\"").services[0].reloadSignal, 12)
        XCTAssertEqual(try parse("[services.web]\ncommand = [\"x\"]\nreload-signal = 10").services[0].reloadSignal, 10)
        XCTAssertNil(try parse("[services.web]\ncommand = [\"x\"]").services[0].reloadSignal)
        for (toml, message) in [
            ("[services.web]\ncommand = [\"x\"]\nreload-signal = \"HUPP\"", #"c.toml:3:17: bad signal name "HUPP"; did you mean "HUP"?"#),
            ("[services.web]\ncommand = [\"x\"]\nreload-signal = 0", "c.toml:3:17: reload-signal 0 is not a signal number"),
            ("[services.web]\ncommand = [\"x\"]\nreload-signal = [1]", #"c.toml:3:17: reload-signal must be a signal name like "HUP", not an array"#),
        ] {
            XCTAssertThrowsError(try parse(toml), toml) { XCTAssertEqual(($0 as? ConfigErrors)?.description, message) }
        }
    }

    func testAChangeOfTheReloadSignalRestartsNothing() {
        var before = ServiceConfig(name: "web", command: ["x"])
        var after = before
        after.reloadSignal = 1
        XCTAssertEqual(ReloadPlan(old: [before], wanted: ["web"], new: Config(services: [after]), changedSockets: []).verdict(of: "web"), .unchanged)
        after.instances = 3
        XCTAssertEqual(ReloadPlan(old: [before], wanted: ["web"], new: Config(services: [after]), changedSockets: []).verdict(of: "web"), .scaled)
        before.reloadSignal = 10
        after.command = ["y"]
        XCTAssertEqual(ReloadPlan(old: [before], wanted: ["web"], new: Config(services: [after]), changedSockets: []).verdict(of: "web"), .changed)
    }

    func testTargetsAreTheLiveMainProcessesOfAServiceWithTheKey() throws {
        var d = StackDriver([service("web", instances: 3) { $0.reloadSignal = 1 }, service("plain"),
                             service("idle") { $0.reloadSignal = 1; $0.autostart = false }])
        d.boot()
        XCTAssertThrowsError(try d.stack.reloadTargets("nope")) { XCTAssertEqual($0 as? CommandError, .noSuchService("nope")) }
        XCTAssertThrowsError(try d.stack.reloadTargets("plain")) { XCTAssertEqual($0 as? CommandError, .noReloadSignal("plain")) }
        XCTAssertEqual(CommandError.noReloadSignal("plain").description,
                       #"plain has no reload-signal: set reload-signal (e.g. "HUP") in [services.plain] to reload it without a restart, or restart it"#)
        XCTAssertThrowsError(try d.stack.reloadTargets("idle")) { XCTAssertEqual($0 as? CommandError, .failed("idle has no process to reload")) }
        var targets = try d.stack.reloadTargets("web")
        XCTAssertEqual(targets.signal, 1)
        XCTAssertEqual(targets.pids.map(\.instance), [0, 1, 2])
        XCTAssertEqual(targets.pids.map(\.pid), (0..<3).map { d.pid("web", $0) })
        // An instance being stopped is left out; one backing off has no process.
        try d.scale("web", 2)
        d.exit("web", 1, .killed(9))
        targets = try d.stack.reloadTargets("web")
        XCTAssertEqual(targets.pids.map(\.instance), [0])
    }
}
