// Per-instance limits with a real daemon. These machines run a hybrid cgroup layout whose v2
// hierarchy has no memory, cpu or pids controller, so here a limit must fail the instance's
// start with a clear reason — in `ringctl status` and in the journal — and never run it
// unlimited, while the other services run. (Where the controller is there, the limit must be
// in the instance's cgroup instead; the real enforcement is tests/realhost/limits.sh, in the VM.)
import Foundation
import Glibc
import XCTest

final class LimitsIntegrationTests: SystemdUnitTestCase {
    private func ringctlStatus(_ name: String) throws -> String {
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        let r = try runCommand([try Binaries.ringctl(), "status", name], environment: env)
        return r.stdout + r.stderr
    }

    /// Delegate=yes gives the daemon a cgroup, but not the memory controller.
    func testALimitTheDelegatedCgroupCannotHonourFailsThatServiceOnly() throws {
        let web = service("web"), free = service("free")
        let unit = try installUnits("""
            [services.\(web)]
            command = ["sleep", "1000"]
            memory-max = "64M"
            pids-max = 64
            restart-delay = "10ms"

            [services.\(free)]
            command = ["sleep", "1000"]
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        _ = try requireInstances(1, of: free, parent: daemon)
        let unitCgroup = try XCTUnwrap(cgroup2MountPoint()) + unit.property("ControlGroup")
        let controllers = (contents(unitCgroup + "/cgroup.controllers") ?? "").split(separator: " ").map(String.init)

        if controllers.contains("memory") && controllers.contains("pids") {
            // A host that delegates them: the limits are in the instance's cgroup.
            _ = try requireInstances(1, of: web, parent: daemon)
            let instance = unitCgroup + "/services/\(web)/0"
            XCTAssertEqual(contents(instance + "/memory.max"), "67108864")
            XCTAssertEqual(contents(instance + "/memory.oom.group"), "1")
            XCTAssertEqual(contents(instance + "/pids.max"), "64")
            return
        }
        let reason = "memory-max needs the memory controller, which this cgroup does not have"
        let status = try require("\(web) failed, saying why, in ringctl status", timeout: 20) { () -> String? in
            let s = try self.ringctlStatus(web)
            return s.contains(reason) && s.contains("failed") ? s : nil
        }
        XCTAssertTrue(status.contains("\(web): start limit hit"), status)
        let events = try Journal.events(service: web)
        XCTAssertTrue(events.event("spawn-failed").messages.contains { $0.contains("\(web).0: cgroup: \(reason)") },
                      events.messages.joined(separator: "\n"))
        XCTAssertEqual(events.event("spawned").count, 0, "it ran without its limit: \(events.messages)")
        XCTAssertEqual(instances(of: web, parent: daemon).count, 0)
        XCTAssertEqual(unit.mainPID, daemon, "the daemon runs on")
        XCTAssertEqual(instances(of: free, parent: daemon).count, 1, "\(free) runs on")
    }

    /// No delegated cgroup at all (started from a shell): every limit fails, saying so.
    func testALimitWithoutADelegatedCgroupFailsWithTheReason() throws {
        let web = service("web"), free = service("free")
        let daemon = try startDaemon("""
            [services.\(web)]
            command = ["sleep", "1000"]
            cpu-max = "20%"
            restart-delay = "10ms"

            [services.\(free)]
            command = ["sleep", "1000"]
            """)
        _ = try requireInstances(1, of: free, daemon: daemon)
        try requireLog("\(web).0: cpu-max needs the cpu controller, which ringmasterd cannot use: "
                       + "it has no delegated cgroup (see its start-up log)", daemon: daemon)
        try requireLog("\(web): backoff -> failed (start limit hit", daemon: daemon, timeout: 20)
        XCTAssertEqual(instances(of: web, daemon: daemon).count, 0)
        XCTAssertFalse(daemon.log().contains("\(web).0 started"), daemon.log())
    }
}
