// ringmasterd SIGKILLed while it runs as units/ringmaster.service (docs/reliability.md): systemd
// restarts it (Restart=on-failure), the socket it bound comes back from the fd store, a client
// looping on that socket meets no refused connection, and nothing of the old daemon's is left:
// with KillMode=mixed, once the main process is dead systemd SIGKILLs the rest of the unit's
// cgroup at once (there is no main process left to send SIGTERM to and wait for), so the old
// children and grandchildren die before the new daemon starts its own.
import Foundation
import Glibc
import XCTest

final class FaultSystemdTests: SystemdUnitTestCase {
    func testDaemonSigkilledUnderSystemdIsRestartedWithItsSocketAndLeavesNoOrphan() throws {
        let web = service("web"), bg = service("bg")
        let port = try freePort()
        let unit = try installUnits("""
            [sockets.http]
            listen = "127.0.0.1:\(port)"

            \(httpWorkers(web))

            [services.\(bg)]
            command = ["/bin/sh", "-c", "sleep 100000 & exec sleep 100000"]
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        let first = try unit.requireActive()
        let oldWorkers = Set(try requireInstances(2, of: web, parent: first).values.map { String($0.pid) })
        _ = try requireInstances(1, of: bg, parent: first)
        try require("NFileDescriptorStore=1") { unit.property("NFileDescriptorStore") == "1" }
        // Its children and bg's grandchild (a child of the `sleep` that bg exec'd).
        let old = try require("the old daemon's 4 processes") { () -> [ProcessInfoEntry]? in
            let p = Processes.withServicePrefix(self.prefix)
            return p.count == 4 ? p : nil
        }

        let client = HTTPClientLoop(port: port)
        defer { client.stop() }
        try require("requests served before the kill", timeout: 10) { client.servedCount >= 20 }
        let servedBefore = client.servedCount
        let killedAt = Date()
        XCTAssertEqual(kill(first, SIGKILL), 0)
        let oldGone = waitUntil(timeout: 10, poll: 0.002) { old.allSatisfy { !Processes.isAlive($0.pid) } }
        let goneAfter = Date().timeIntervalSince(killedAt)
        XCTAssertTrue(oldGone, "left behind by the killed daemon: \(old.filter { Processes.isAlive($0.pid) }.map { "\($0.pid) \($0.arguments)" })")

        let second = try unit.requireActive(timeout: 30, differentFrom: first)
        let activeAfter = Date().timeIntervalSince(killedAt)
        // systemd killed them (nothing in ringmasterd's children asks to die with it), before
        // it started the new daemon (RestartSec=500ms).
        XCTAssertLessThan(goneAfter, activeAfter, "the old processes outlived the restart")
        let newWorkers = Set(try requireInstances(2, of: web, parent: second).values.map { String($0.pid) })
        try require("requests served by the new workers", timeout: 15) { client.servedBy(newWorkers) }
        let servingAfter = Date().timeIntervalSince(killedAt)
        let result = client.stop()

        XCTAssertEqual(result.refused, 0, "connections refused while ringmasterd was down (served \(result.served))")
        XCTAssertFalse(result.servedBy.isDisjoint(with: oldWorkers), "the old workers served too")
        XCTAssertEqual(unit.property("NRestarts"), "1")
        XCTAssertEqual(unit.property("NFileDescriptorStore"), "1", "still exactly one stored socket")
        let said = (try? Journal.entries(["_PID=\(second)"]))?.messages.joined(separator: "\n") ?? ""
        XCTAssertTrue(said.contains("taken back from systemd's fd store"), "the new ringmasterd did not reuse the stored socket:\n\(said)")
        // Everything of this test now belongs to the new daemon: its children, and bg's grandchild.
        let now = Processes.withServicePrefix(prefix)
        let newChildren = Set(now.filter { $0.ppid == second }.map(\.pid))
        XCTAssertEqual(newChildren.count, 3)
        for p in now where p.ppid != second {
            XCTAssertTrue(newChildren.contains(p.ppid), "\(p.pid) \(p.arguments) is not the new daemon's (parent \(p.ppid))")
        }

        figure("daemon SIGKILLed under systemd", "binary", binaryFlavour)
        figure("daemon SIGKILLed under systemd", "old children and grandchild gone after", String(format: "%.0f ms (by systemd: KillMode=mixed)", goneAfter * 1000))
        figure("daemon SIGKILLed under systemd", "new ringmasterd active after", String(format: "%.0f ms (RestartSec=500ms)", activeAfter * 1000))
        figure("daemon SIGKILLed under systemd", "new workers serving after", String(format: "%.0f ms", servingAfter * 1000))
        figure("daemon SIGKILLed under systemd", "client connections", "\(result.served) served (\(servedBefore) before the kill), "
               + "\(result.refused) refused, \(result.incomplete.count) cut (accepted by a worker that was then killed)")
        if !result.incomplete.isEmpty { print("cut requests: \(result.incomplete)") }
    }
}
