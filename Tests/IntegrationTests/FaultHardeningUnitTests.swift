// Notify attribution under the real unit (Delegate=yes: one cgroup per instance), issue 13
// item 2: only the instance's cgroup speaks for it — even a process that left its session and
// process group and is no longer below its main process; nothing outside it does.
import Foundation
import Glibc
import XCTest

final class FaultHardeningUnitTests: SystemdUnitTestCase {
    /// A string property of a service, from `busctl get-property` (`s "value"`).
    private func busProperty(_ service: String, _ name: String) -> String {
        let r = try? runCommand(["busctl", "--user", "get-property", API.name, API.path(service), API.service, name])
        return r?.stdout.split(separator: "\"").dropFirst().first.map(String.init) ?? ""
    }

    private func busState(_ service: String) -> String { busProperty(service, "State") }

    func testInADelegatedCgroupOnlyTheInstancesCgroupSpeaksForIt() throws {
        let b = service("b")
        // ready.py: on `ping` sends STATUS=, on `go` READY=1, to $NOTIFY_SOCKET, then stays
        // (its messages are read while it lives). Started double-forked and setsid: an orphan in its own
        // session, reparented away from the instance's main process.
        try #"""
            import os, socket, sys, time
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            for name, message in (("ping", b"STATUS=orphan waiting"), ("go", b"READY=1\nSTATUS=ready from an orphan")):
                while not os.path.exists(name):
                    time.sleep(0.02)
                s.sendto(message, os.environ["NOTIFY_SOCKET"])
            time.sleep(100000)
            """#.write(toFile: dir + "/ready.py", atomically: true, encoding: .utf8)
        let unit = try installUnits("""
            [services.\(b)]
            ready = "notify"
            command = ["/bin/sh", "-c", "( setsid python3 ready.py & ) ; exec sleep 100000"]
            """)
        try unit.systemctl("start", "--no-block", RingmasterUnit.service)
        let main = try requireInstances(1, of: b, parent: try require("ringmasterd's MainPID", timeout: 20) {
            Int32(unit.property("MainPID")).flatMap { $0 > 0 ? $0 : nil }
        })[0]!
        let orphan = try require("the setsid orphan", timeout: 10) {
            Processes.all().first { $0.arguments.last == "ready.py" && $0.environment["RINGMASTER_SERVICE"] == b }
        }
        XCTAssertNotEqual(orphan.ppid, main.pid, "not below the main process")
        XCTAssertNotEqual(getpgid(orphan.pid), main.pid, "not in its process group")
        XCTAssertEqual(cgroupPath(of: orphan.pid), cgroupPath(of: main.pid), "in the instance's cgroup")

        // A process of the same user outside the cgroup: ignored. The orphan's STATUS= comes
        // after it on the same socket: once it shows, the spoof was read.
        let address = try XCTUnwrap(Processes.read(main.pid)?.environment["NOTIFY_SOCKET"])
        let spoof = try runCommand(["python3", "-c", #"import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1\nSTATUS=spoofed", sys.argv[1])"#, address])
        XCTAssertEqual(spoof.status, 0, spoof.stderr)
        _ = FileManager.default.createFile(atPath: dir + "/ping", contents: nil)
        try require("the orphan's STATUS=", timeout: 10, poll: 0.05) { self.busProperty(b, "StatusText") == "orphan waiting" }
        XCTAssertEqual(busState(b), "starting", "READY=1 from outside the instance's cgroup was taken")
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        try require("\(b) running from the orphan's READY=1", timeout: 10, poll: 0.05) { self.busState(b) == "running" }
        _ = try unit.requireActive()
        try unit.systemctl("stop", RingmasterUnit.service)
        figure("notify attribution, delegated cgroup", "READY=1 from a setsid orphan in the instance's cgroup / a process outside", "taken / ignored")
    }
}
