// Runtime changes survive a restart of ringmasterd (SPEC), under the real unit: what
// `ringctl scale` and `ringctl stop` changed lasts across `systemctl --user restart ringmaster`
// and a SIGKILL of the daemon (the unit restarts it), until a reload changes that service's
// config; the config file itself is never written.
import Foundation
import Glibc
import XCTest

final class RuntimeChangesIntegrationTests: SystemdUnitTestCase {
    func testScaleAndStopSurviveARestartAndACrashUntilAReloadChangesTheService() throws {
        let web = service("web"), side = service("side")
        func toml(release: String) -> String {
            """
            [services.\(web)]
            command = ["sleep", "100000"]
            instances = 2
            environment = { RELEASE = \(TOML.string(release)) }
            stop-timeout = "2s"

            [services.\(side)]
            command = ["sleep", "100000"]
            stop-timeout = "2s"
            """
        }
        let unit = try installUnits(toml(release: "1"))
        let configPath = dir + "/ringmaster.toml"
        let configBefore = try String(contentsOfFile: configPath, encoding: .utf8)
        try unit.systemctl("start", RingmasterUnit.service)
        let first = try unit.requireActive()
        try requireService(web, state: "running", running: 2, instances: 2)

        let scale = try ringctl(["scale", web, "5"])
        XCTAssertEqual(scale.status, 0, scale.stderr)
        let stop = try ringctl(["stop", side])
        XCTAssertEqual(stop.status, 0, stop.stderr)
        try requireService(web, state: "running", running: 5, instances: 5)
        try requireService(side, state: "stopped")

        // systemctl --user restart: the new daemon comes back with 5 instances and side stopped.
        try unit.systemctl("restart", RingmasterUnit.service)
        let second = try unit.requireActive(differentFrom: first)
        try requireService(web, state: "running", running: 5, instances: 5)
        _ = try requireInstances(5, of: web, parent: second)
        XCTAssertEqual(try state(side), "stopped")
        XCTAssertEqual(Processes.of(service: side).count, 0, "\(side) was started again by the new daemon")
        let said = (try? Journal.entries(["_PID=\(second)"]))?.messages.joined(separator: "\n") ?? ""
        XCTAssertTrue(said.contains("\(web): restored from before the restart of ringmasterd: scaled to 5"), said)

        // A crash (SIGKILL): the unit restarts the daemon, and the changes are still there.
        XCTAssertEqual(kill(second, SIGKILL), 0)
        let third = try unit.requireActive(timeout: 30, differentFrom: second)
        try requireService(web, state: "running", running: 5, instances: 5)
        _ = try requireInstances(5, of: web, parent: third)
        XCTAssertEqual(try state(side), "stopped")
        XCTAssertEqual(try String(contentsOfFile: configPath, encoding: .utf8), configBefore, "the config file was written")

        // A reload that changes web's table resets its scale; side's stop (unchanged) stays.
        _ = try writeConfig(toml(release: "2"))
        try unit.systemctl("reload", RingmasterUnit.service)
        try requireService(web, state: "running", running: 2, instances: 2)
        XCTAssertEqual(try state(side), "stopped")
        // ... and after another restart too.
        try unit.systemctl("restart", RingmasterUnit.service)
        let fourth = try unit.requireActive(differentFrom: third)
        try requireService(web, state: "running", running: 2, instances: 2)
        _ = try requireInstances(2, of: web, parent: fourth)
        XCTAssertEqual(try state(side), "stopped")

        // Starting side again is a change back to the config: nothing is kept for it.
        XCTAssertEqual(try ringctl(["start", side]).status, 0)
        try requireService(side, state: "running", running: 1)
        try unit.systemctl("restart", RingmasterUnit.service)
        _ = try unit.requireActive(differentFrom: fourth)
        try requireService(side, state: "running", running: 1)
        try requireService(web, state: "running", running: 2, instances: 2)
    }
}
