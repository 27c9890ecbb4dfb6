// Delegate=yes: ringmasterd moves itself into <unit cgroup>/supervisor and starts every
// instance in <unit cgroup>/services/<service>/<N>, so what an instance leaves behind — a
// grandchild that called setsid() included — is killed with it (cgroup.kill).
import Foundation
import Glibc
import XCTest

final class SystemdCgroupTests: SystemdUnitTestCase {
    func testInstancesGetTheirOwnCgroupAndTheDaemonALeaf() throws {
        let web = service("web")
        let unit = try installUnits("""
            [services.\(web)]
            command = ["sleep", "1000"]
            instances = 2
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        let instances = try requireInstances(2, of: web, parent: daemon)
        let unitCgroup = unit.property("ControlGroup")
        XCTAssertTrue(unitCgroup.hasSuffix("/ringmaster.service"), unitCgroup)
        XCTAssertEqual(cgroupPath(of: daemon), unitCgroup + "/supervisor")
        for (i, p) in instances {
            XCTAssertEqual(cgroupPath(of: p.pid), unitCgroup + "/services/\(web)/\(i)")
        }
        let said = (try? Journal.entries(["_PID=\(daemon)"]))?.messages.joined(separator: "\n") ?? ""
        XCTAssertTrue(said.contains("one sub-cgroup per instance"), said)
    }

    /// An instance whose main process exits takes its setsid() grandchild with it, while the
    /// daemon runs on; the empty instance cgroup is removed.
    func testAnInstanceThatExitsTakesItsSetsidGrandchildWithIt() throws {
        let job = service("job")
        let unit = try installUnits("""
            [services.\(job)]
            command = ["/bin/sh", "-c", "setsid sleep 1000 & echo $! > grandchild.pid; sleep 0.5; exit 0"]
            restart = "never"
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        let grandchild = try require("grandchild.pid") { contents(self.dir + "/grandchild.pid").flatMap { Int32($0) } }
        try require("the grandchild \(grandchild) gone with its instance", timeout: 10) { !Processes.isAlive(grandchild) }
        XCTAssertEqual(unit.mainPID, daemon, "the daemon runs on")
        let unitCgroup = unit.property("ControlGroup")
        if let mount = cgroup2MountPoint() {
            let instanceDir = mount + unitCgroup + "/services/\(job)/0"
            try require("\(instanceDir) removed once empty", timeout: 5) { !FileManager.default.fileExists(atPath: instanceDir) }
        }
    }

    /// `systemctl --user stop` leaves no process behind, setsid() grandchildren included.
    func testStopLeavesNoProcessBehind() throws {
        let web = service("web")
        let unit = try installUnits("""
            [services.\(web)]
            command = ["/bin/sh", "-c", "setsid sh -c 'trap \\"\\" TERM; exec sleep 1000' & exec sleep 1000"]
            instances = 2
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        _ = try requireInstances(2, of: web, parent: daemon)
        try require("two setsid grandchildren") { Processes.of(service: web).count == 4 }
        try unit.systemctl("stop", RingmasterUnit.service)
        XCTAssertEqual(unit.activeState, "inactive")
        let left = Processes.withServicePrefix(prefix)
        XCTAssertEqual(left.map(\.pid), [], "left running: \(left.map { "\($0.pid) \($0.arguments)" })")
        XCTAssertFalse(Processes.isAlive(daemon))
        // ringmasterd stopped them itself, in order: the unit's stop did not need SIGKILL.
        XCTAssertEqual(unit.property("Result"), "success")
    }
}
