// `systemctl --user reload ringmaster` (ExecReload= sends SIGHUP): a valid config is applied
// as a diff that leaves the untouched services' processes alone; an invalid one changes
// nothing and says why in STATUS=.
import Foundation
import Glibc
import XCTest

final class SystemdReloadTests: SystemdUnitTestCase {
    private func sleeper(_ svc: String, instances: Int) -> String {
        """
        [services.\(svc)]
        command = ["sleep", "1000"]
        instances = \(instances)
        """
    }

    func testReloadAddsAServiceWithoutTouchingTheOthers() throws {
        let a = service("a"), b = service("b")
        let unit = try installUnits(sleeper(a, instances: 2))
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        let before = try requireInstances(2, of: a, parent: daemon).mapValues(\.pid)

        try writeConfig(sleeper(a, instances: 2) + "\n\n" + sleeper(b, instances: 1))
        try unit.systemctl("reload", RingmasterUnit.service)
        _ = try requireInstances(1, of: b, parent: daemon)
        try require("StatusText \"2 running\"") { unit.statusText == "2 running" }
        XCTAssertEqual(instances(of: a, parent: daemon).mapValues(\.pid), before, "\(a) was touched by the reload")
        XCTAssertEqual(unit.mainPID, daemon)
        try require("back to active after RELOADING=1/READY=1") { unit.activeState == "active" }
    }

    func testInvalidReloadChangesNothingAndSaysWhyInStatus() throws {
        let a = service("a")
        let unit = try installUnits(sleeper(a, instances: 2))
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        let before = try requireInstances(2, of: a, parent: daemon).mapValues(\.pid)

        try writeConfig(sleeper(a, instances: 3) + "\nbogus-key = 1\n")
        try unit.systemctl("reload", RingmasterUnit.service)
        let status = try require("a reload error in StatusText", timeout: 10) {
            let s = unit.statusText
            return s.hasPrefix("reload failed") ? s : nil
        }
        XCTAssertTrue(status.contains("bogus-key"), status)
        XCTAssertTrue(status.hasSuffix("; 1 running"), status)
        try require("back to active") { unit.activeState == "active" }
        XCTAssertEqual(instances(of: a, parent: daemon).mapValues(\.pid), before, "an invalid reload changed \(a)")
        XCTAssertEqual(unit.mainPID, daemon)

        // Fixed: the next reload applies it and the error leaves STATUS=.
        try writeConfig(sleeper(a, instances: 3))
        try unit.systemctl("reload", RingmasterUnit.service)
        let after = try requireInstances(3, of: a, parent: daemon).mapValues(\.pid)
        XCTAssertEqual(after.filter { $0.key < 2 }, before, "scaling up keeps instances 0 and 1")
        try require("StatusText \"1 running\"") { unit.statusText == "1 running" }
    }

    /// A service that never sends READY=1 (started by hand after boot, so the unit itself got
    /// ready): `systemctl --user reload` returns once the new config is applied, not when
    /// every service is ready (it used to wait forever for RELOADING=1's READY=1).
    func testReloadReturnsWhileAServiceIsStillStarting() throws {
        let a = service("a"), pending = service("pending")
        let config = sleeper(a, instances: 1) + """


            [services.\(pending)]
            command = ["sleep", "1000"]
            ready = "notify"
            autostart = false
            """
        let unit = try installUnits(config)
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        XCTAssertEqual(try ringctl(["start", "--no-block", pending]).status, 0) // (it would wait for READY=1)
        try require("\(pending) starting") { (try? self.state(pending)) == "starting" }
        try writeConfig(config.replacingOccurrences(of: "instances = 1", with: "instances = 2"))
        let started = Date()
        try unit.systemctl("reload", RingmasterUnit.service, timeout: 15)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10, "systemctl reload waited for a service that never gets ready")
        _ = try requireInstances(2, of: a, parent: daemon)
        XCTAssertEqual(try state(pending), "starting")
        try require("back to active") { unit.activeState == "active" }
    }
}
