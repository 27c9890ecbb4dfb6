// `memory-restart` with a real daemon under the user manager. The private session's cgroup v2
// hierarchy has no memory controller, so the service must not start, saying why, and never
// run unwatched; the other services run on. (The restart itself is in the real-host VM:
// tests/realhost/limits.sh.)
import Foundation
import Glibc
import XCTest

final class MemoryRestartIntegrationTests: SystemdUnitTestCase {
    func testWithoutTheMemoryControllerTheServiceDoesNotStart() throws {
        let web = service("web"), free = service("free")
        let unit = try installUnits("""
            [services.\(web)]
            command = ["sleep", "1000"]
            memory-high = "64M"
            memory-restart = "64M"
            restart-delay = "10ms"

            [services.\(free)]
            command = ["sleep", "1000"]
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        _ = try requireInstances(1, of: free, parent: daemon)
        let unitCgroup = try XCTUnwrap(cgroup2MountPoint()) + unit.property("ControlGroup")
        let controllers = (contents(unitCgroup + "/cgroup.controllers") ?? "").split(separator: " ").map(String.init)
        if controllers.contains("memory") {
            // A host that delegates it: the instance runs, under its memory-high.
            _ = try requireInstances(1, of: web, parent: daemon)
            XCTAssertEqual(contents(unitCgroup + "/services/\(web)/0/memory.high"), "67108864")
            return
        }
        let reason = "\(web).0: cgroup: memory-high needs the memory controller, which this cgroup does not have"
        try require("\(web)'s spawn refused, saying why, in the journal", timeout: 20) {
            try Journal.events(service: web).event("spawn-failed").messages.contains { $0.hasPrefix(reason) }
        }
        let failed = try require("\(web) failed", timeout: 20) {
            try Journal.events(service: web).event("state").messages.first { $0.contains("-> failed") }
        }
        XCTAssertTrue(failed.contains("start limit hit"), failed)
        let events = try Journal.events(service: web)
        XCTAssertEqual(events.event("spawned").count, 0, "it ran unwatched: \(events.messages)")
        XCTAssertTrue(events.event("spawn-failed").allSatisfy { $0["RINGMASTER_EXIT_REASON"] == "spawn" })
        XCTAssertEqual(instances(of: web, parent: daemon).count, 0)
        XCTAssertEqual(instances(of: free, parent: daemon).count, 1, "\(free) runs on")
    }

    /// Started from a shell (no delegated cgroup): refused, naming memory-restart's need.
    func testWithoutADelegatedCgroupTheServiceDoesNotStart() throws {
        let web = service("web"), free = service("free")
        let daemon = try startDaemon("""
            [services.\(web)]
            command = ["sleep", "1000"]
            memory-high = "64M"
            memory-restart = "80M"
            restart-delay = "10ms"

            [services.\(free)]
            command = ["sleep", "1000"]
            """)
        _ = try requireInstances(1, of: free, daemon: daemon)
        try requireLog("\(web).0: memory-high needs the memory controller, which ringmasterd cannot use: "
                       + "it has no delegated cgroup (see its start-up log)", daemon: daemon)
        try requireLog("\(web): backoff -> failed (start limit hit", daemon: daemon, timeout: 20)
        XCTAssertEqual(instances(of: web, daemon: daemon).count, 0)
    }
}
