// The per-instance view (SPEC "Per-instance view") and exit reasons in `ringctl status`:
// the D-Bus property InstanceStates, `ringctl status NAME --instances` and its JSON.
import Foundation
import Glibc
import XCTest

final class InstanceViewTests: DBusTestCase {
    private func statusJSON(_ arguments: [String]) throws -> [[String: Any]] {
        let r = try ringctl(["status", "--json"] + arguments)
        guard r.status == 0 || r.status == 3 else { throw HarnessError("ringctl status --json \(arguments): \(r.status) \(r.stderr)") }
        guard let objects = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else {
            throw HarnessError("not a JSON array: \(r.stdout)")
        }
        return objects
    }

    private func instances(_ service: String) throws -> [[String: Any]] {
        let objects = try statusJSON(["--instances", service])
        guard objects.count == 1, let list = objects[0]["instances"] as? [[String: Any]] else {
            throw HarnessError("no instances array for \(service): \(objects)")
        }
        return list
    }

    private func int(_ value: Any?) -> Int? { (value as? NSNumber)?.intValue }

    /// 3 instances; kill -9 one: the view shows its new pid, restarts 1, last exit reason
    /// `signal`, the pid that ended, and the others untouched.
    func testKilledInstanceShowsItsNewPidRestartAndReason() throws {
        let svc = service("pool")
        try startBusDaemon("""
            [services.\(svc)]
            command = ["sleep", "100000"]
            instances = 3
            restart-delay = "50ms"
            stop-timeout = "2s"
            """)
        try requireService(svc, running: 3, instances: 3)
        let before = try instances(svc)
        XCTAssertEqual(before.map { int($0["instance"]) }, [0, 1, 2])
        for i in before {
            XCTAssertEqual(i["state"] as? String, "running", "\(i)")
            XCTAssertNotNil(int(i["pid"]), "\(i)")
            XCTAssertEqual(int(i["restarts"]), 0, "\(i)")
            XCTAssertTrue(i["last_exit_reason"] is NSNull, "\(i)")
            XCTAssertTrue(i["health"] is NSNull, "no probe: no health \(i)")
            XCTAssertNotNil(int(i["uptime_usec"]), "\(i)")
            XCTAssertGreaterThan(int(i["memory_current"]) ?? 0, 0, "sleep has some memory: \(i)")
        }
        let oldPIDs = before.compactMap { int($0["pid"]) }
        XCTAssertEqual(Set(oldPIDs), Set(try pids(svc).map(Int.init)))
        let victim = Int32(oldPIDs[1])

        XCTAssertEqual(kill(victim, SIGKILL), 0)
        let after = try require("instance 1 replaced with restarts 1 in `ringctl status --instances --json`") { () -> [[String: Any]]? in
            let list = try self.instances(svc)
            guard list.count == 3, let pid = self.int(list[1]["pid"]), pid != Int(victim),
                  list[1]["state"] as? String == "running" else { return nil }
            return list
        }
        let one = after[1]
        XCTAssertEqual(int(one["restarts"]), 1, "\(one)")
        XCTAssertEqual(one["last_exit_reason"] as? String, "signal", "\(one)")
        XCTAssertEqual(one["last_exit_code"] as? String, "killed", "\(one)")
        XCTAssertEqual(int(one["last_exit_status"]), Int(SIGKILL), "\(one)")
        XCTAssertEqual(int(one["last_pid"]), Int(victim), "\(one)")
        XCTAssertNotNil(int(one["last_exit_timestamp"]), "\(one)")
        for i in [0, 2] {
            XCTAssertEqual(int(after[i]["pid"]), oldPIDs[i], "instance \(i) kept its process")
            XCTAssertEqual(int(after[i]["restarts"]), 0)
        }
        // Without --instances, "instances" stays the wanted count; with it, the count moves.
        let summary = try statusJSON([svc])[0]
        XCTAssertEqual(int(summary["instances"]), 3)
        XCTAssertEqual(summary["last_exit_reason"] as? String, "signal")
        XCTAssertEqual(int(try statusJSON(["--instances", svc])[0]["instances_wanted"]), 3)

        // The tables: the service row's LAST EXIT, one row per instance.
        let table = try ringctl(["status", svc, "--instances"])
        XCTAssertEqual(table.status, 0, table.stderr)
        let lines = table.stdout.split(separator: "\n").map(String.init)
        let serviceLine = try XCTUnwrap(lines.first { $0.hasPrefix(svc + " ") }, table.stdout)
        XCTAssertTrue(serviceLine.hasSuffix("signal (killed by SIGKILL)"), serviceLine)
        XCTAssertTrue(lines.contains { $0.hasPrefix("INSTANCE") && $0.contains("HEALTH") && $0.contains("LAST EXIT") }, table.stdout)
        let row1 = try XCTUnwrap(lines.first { $0.hasPrefix("\(svc).1 ") }, table.stdout)
        XCTAssertTrue(row1.contains(" \(int(one["pid"])!) ") && row1.contains(" running ") && row1.hasSuffix("signal (killed by SIGKILL)"), row1)
        let row0 = try XCTUnwrap(lines.first { $0.hasPrefix("\(svc).0 ") }, table.stdout)
        XCTAssertTrue(row0.contains(" \(oldPIDs[0]) ") && row0.hasSuffix(" -"), row0)

        // busctl: the documented property, read by Get only (not in GetAll).
        let states = try typedProperty(API.path(svc), API.service, "InstanceStates")
        XCTAssertEqual(states.type, "a(uussussiuttttts)")
        let rows = try XCTUnwrap(states.value as? [[Any]])
        XCTAssertEqual(rows.map { ($0[0] as? NSNumber)?.intValue }, [0, 1, 2])
        XCTAssertEqual((rows[1][1] as? NSNumber)?.intValue, int(one["pid"]))
        XCTAssertEqual(rows[1][5] as? String, "signal")
        XCTAssertEqual((rows[1][8] as? NSNumber)?.int32Value, victim)
        let all = try call(API.path(svc), "org.freedesktop.DBus.Properties", "GetAll", "s", [API.service])
        let names = (all.first as? [String: Any])?.keys.sorted() ?? []
        XCTAssertTrue(names.contains("LastExitReason") && !names.contains("InstanceStates"), "\(names)")
        XCTAssertEqual(try property(svc, "LastExitReason") as? String, "signal")
    }

    /// A service that exits with a status: reason exit-code, shown in every view.
    func testExitCodeReasonAndUnknownNames() throws {
        let svc = service("exits")
        try startBusDaemon("""
            [services.\(svc)]
            command = ["sh", "-c", "exit 3"]
            restart = "never"

            [services.\(svc)-limited]
            command = ["sleep", "100000"]
            autostart = false
            memory-max = "64M"
            cpu-max = "12.5%"
            pids-max = 64
            """)
        let limits = try typedProperty(API.path(svc + "-limited"), API.service, "Limits")
        XCTAssertEqual(limits.type, "a(ss)")
        XCTAssertEqual((limits.value as? [[String]]) ?? [], [["memory-max", "64M"], ["cpu-max", "12.5%"], ["pids-max", "64"]])
        XCTAssertEqual((try property(svc, "Limits") as? [Any])?.count, 0)
        try requireService(svc, state: "failed")
        let one = try instances(svc)
        XCTAssertEqual(one.count, 1)
        XCTAssertEqual(one[0]["state"] as? String, "failed")
        XCTAssertEqual(one[0]["last_exit_reason"] as? String, "exit-code")
        XCTAssertEqual(int(one[0]["last_exit_status"]), 3)
        XCTAssertTrue(one[0]["pid"] is NSNull)
        XCTAssertTrue((one[0]["failure_reason"] as? String)?.contains("exited with status 3") == true, "\(one[0])")
        let table = try ringctl(["status", svc, "--instances"])
        XCTAssertEqual(table.status, 3, "a named service that is not running")
        XCTAssertTrue(table.stdout.contains("exit-code (status 3)"), table.stdout)
        let missing = try ringctl(["status", "--instances", "nope"])
        XCTAssertEqual(missing.status, 4)
        XCTAssertEqual(missing.stderr, "ringctl: no service named \"nope\"\n")
    }
}

/// With a delegated cgroup (ringmasterd as a unit with Delegate=yes), an instance's CPU and
/// memory are its own cgroup's: a process it left behind, no descendant of its main process
/// any more, is counted too.
final class InstanceViewCgroupTests: SystemdUnitTestCase {
    func testInstanceMetricsComeFromItsCgroup() throws {
        let svc = service("orphans")
        let unit = try installUnits("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", "(setsid sleep 1000 & echo $! > orphan.pid); exec sleep 1000"]
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        let daemon = try unit.requireActive()
        let main = try XCTUnwrap(try requireInstances(1, of: svc, parent: daemon)[0]).pid
        let orphan = try require("orphan.pid") { contents(self.dir + "/orphan.pid").flatMap { Int32($0) } }
        try require("both processes exec'd sleep") {
            [main, orphan].allSatisfy { contents("/proc/\($0)/comm")?.trimmingCharacters(in: .whitespacesAndNewlines) == "sleep" }
        }
        let mount = try XCTUnwrap(cgroup2MountPoint())
        let instanceDir = mount + unit.property("ControlGroup") + "/services/\(svc)/0"
        XCTAssertEqual(cgroupPath(of: orphan).map { mount + $0 }, instanceDir, "the orphan stays in the instance's cgroup")
        func usageNSec() throws -> Int {
            let stat = try String(contentsOfFile: instanceDir + "/cpu.stat", encoding: .utf8)
            let line = try XCTUnwrap(stat.split(separator: "\n").first { $0.hasPrefix("usage_usec ") })
            return try XCTUnwrap(Int(line.dropFirst("usage_usec ".count))) * 1000
        }
        let before = try usageNSec()
        let rows = try XCTUnwrap(try property(svc, "InstanceStates") as? [[Any]])
        let after = try usageNSec()
        XCTAssertEqual(rows.count, 1)
        XCTAssertEqual((rows[0][1] as? NSNumber)?.int32Value, main)
        let cpu = try XCTUnwrap((rows[0][12] as? NSNumber)?.intValue)
        XCTAssertTrue(before <= cpu && cpu <= after, "CPU \(cpu) ns is the cgroup's usage (\(before)…\(after))")
        // Memory: memory.current with the memory controller; else the RSS of every process in
        // the cgroup — the orphan's included, which the main process's descendants would miss.
        let memory = try XCTUnwrap((rows[0][13] as? NSNumber)?.intValue)
        if let current = contents(instanceDir + "/memory.current").flatMap({ Int($0) }) {
            XCTAssertGreaterThan(memory, 0, "memory.current was \(current)")
        } else {
            let rss = { (pid: Int32) in (ProcSample.of(pid)?.rssKiB).map { Int($0) * 1024 } ?? 0 }
            let mainRSS = rss(main), orphanRSS = rss(orphan)
            XCTAssertGreaterThan(orphanRSS, 0)
            XCTAssertEqual(Double(memory), Double(mainRSS + orphanRSS), accuracy: Double(mainRSS + orphanRSS) * 0.1,
                           "memory counts both processes: main \(mainRSS), orphan \(orphanRSS)")
        }
    }
}
