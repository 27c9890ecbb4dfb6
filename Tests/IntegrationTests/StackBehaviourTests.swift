// Issue 9, the service state and the commands as users meet them (SPEC "Version 0.2 —
// Service state"), in the real session: a partly serving service is `running`; a clean end
// under on-failure is `exited` and settles dependents; scaling down, a killed instance and
// scaling to 0 keep the state and the count right; a dependent of a failed dependency is
// `failed` with `dependency NAME failed`; a reload that does not change a service does not
// touch it. The 10,000-instance scale-up under the real unit is FaultSlowScaleTests.
//
// "Never left running" and "no process event" are checked up to a marker (the ProcessExited
// of another service's process the test kills: everything the daemon sent before it is in
// the event follower's lines then), not by sleeping and hoping.
import Foundation
import Glibc
import XCTest

final class StackBehaviourTests: SystemdUnitTestCase {
    // MARK: a partly serving service is running

    /// `instances = 2`, `restart = "on-failure"`, instance 0 exits 0 before it was ever ready
    /// while instance 1 serves: the service is `running` (not `starting` forever), the service
    /// `after` it starts, and the daemon under the real unit sends READY=1 (active).
    func testCleanExitOfOneOfTwoInstancesUnderOnFailureIsRunningAndSettles() throws {
        let pair = service("pair"), app = service("app")
        let go = dir + "/go"
        let unit = try installUnits("""
            [services.\(pair)]
            command = ["/bin/sh", "-c", "if [ \\"$RINGMASTER_INSTANCE\\" = 0 ]; then exit 0; fi; while [ ! -e \(go) ]; do sleep 0.02; done; systemd-notify --ready; exec sleep 100000"]
            instances = 2
            restart = "on-failure"
            ready = "notify"
            restart-delay = "10ms"
            stop-timeout = "2s"

            [services.\(app)]
            command = ["sleep", "100000"]
            after = [\(TOML.string(pair))]
            stop-timeout = "2s"
            """)
        try unit.systemctl("start", "--no-block", RingmasterUnit.service)
        let daemon = try require("the unit's MainPID", timeout: 15) { unit.mainPID > 0 ? unit.mainPID : nil }
        // Instance 0 ended cleanly and stays ended (on-failure); instance 1 waits for `go`.
        try require("\(pair).0 exited 0, \(pair).1 still up", timeout: 15, poll: 0.05) {
            (try? self.property(pair, "LastExitCode")) as? String == "exited"
                && (try? self.number(pair, "LastExitStatus")) == 0 && (try? self.pids(pair))?.count == 1
        }
        XCTAssertEqual(try pids(app), [], "\(app) started before \(pair) had a ready instance")
        XCTAssertEqual(unit.activeState, "activating", "READY=1 before \(pair) was ready")
        _ = FileManager.default.createFile(atPath: go, contents: nil)

        try requireService(pair, state: "running", running: 1, instances: 2)
        try requireService(app, state: "running", running: 1)
        try unit.requireActive(timeout: 15)
        XCTAssertEqual(unit.mainPID, daemon)
        XCTAssertEqual(unit.property("NRestarts"), "0")
        XCTAssertEqual(Array(instances(of: pair, parent: daemon).keys), [1], "instance 0 is not restarted (on-failure, exit 0)")
        XCTAssertEqual(try state(pair), "running")
    }

    /// `instances = 1`, on-failure, exit 0: `exited` (not `stopped`: it is still wanted), and
    /// `exited` counts as settled — a dependent started afterwards runs.
    func testCleanExitOfTheOnlyInstanceIsExitedAndSettlesADependent() throws {
        let task = service("task"), app = service("app")
        let go = dir + "/go"
        try startBusDaemon("""
            [services.\(task)]
            command = ["/bin/sh", "-c", "while [ ! -e \(go) ]; do sleep 0.02; done; exit 0"]
            restart = "on-failure"
            restart-delay = "10ms"

            [services.\(app)]
            command = ["sleep", "100000"]
            after = [\(TOML.string(task))]
            autostart = false
            stop-timeout = "2s"
            """)
        let events = try followEvents()
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        try requireService(task, state: "exited", running: 0, instances: 1)
        XCTAssertEqual(try pids(task), [])
        XCTAssertEqual(try property(task, "LastExitCode") as? String, "exited")
        let start = try ringctl(["start", app])
        XCTAssertEqual(start.status, 0, start.stderr)
        try requireService(app, state: "running", running: 1)
        try flushEvents(events, killing: app)
        XCTAssertEqual(stateChanges(events, task).last, "exited", "\(stateChanges(events, task))")
        XCTAssertFalse(stateChanges(events, task).contains("starting"), "not restarted: \(stateChanges(events, task))")
    }

    // MARK: scale down, a killed instance: still running

    /// `ringctl scale web 2` on 3 instances that serve the whole time: web never leaves
    /// `running`, instance 2 goes (cleanly), 0 and 1 are not touched, no request fails.
    func testScaleDownOfAServingServiceStaysRunning() throws {
        let (web, sleeper, port, daemon, before) = try startServingWeb(instances: 3)
        let events = try followEvents()
        let load = HTTPClientLoop(port: port)
        defer { load.stop() }
        try require("requests flowing") { load.servedCount > 5 }

        let r = try ringctl(["scale", web, "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        try require("instance 2 of \(web) gone, 2 of 2 running", timeout: 15, poll: 0.05) {
            self.instances(of: web, daemon: daemon).keys.sorted() == [0, 1]
                && (try? self.number(web, "Running")) == 2 && (try? self.number(web, "Instances")) == 2
        }
        try flushEvents(events, killing: sleeper)
        XCTAssertEqual(stateChanges(events, web).filter { $0 != "running" }, [],
                       "\(web) left `running` while it served throughout: \(stateChanges(events, web))")
        XCTAssertEqual(try state(web), "running")
        XCTAssertEqual(Set(instances(of: web, daemon: daemon).values.map(\.pid)), Set([before[0]!.pid, before[1]!.pid]))
        let exits = events.events("ProcessExited", service: web)
        XCTAssertEqual(exits.compactMap { ($0["pid"] as? NSNumber)?.int32Value }, [before[2]!.pid])
        XCTAssertEqual(exits.first?["code"] as? String, "exited", "instance 2 stopped cleanly: \(exits)")
        XCTAssertEqual(events.events("ProcessStarted", service: web).count, 0)
        let result = load.stop()
        XCTAssertEqual(result.refused, 0)
        XCTAssertEqual(result.incomplete, [])
    }

    /// `kill -9` of one of 3 instances: web stays `running` (never `backoff`), the instance is
    /// replaced, the other two are not touched.
    func testKillOfOneOfThreeInstancesStaysRunning() throws {
        let (web, sleeper, port, daemon, before) = try startServingWeb(instances: 3)
        let events = try followEvents()
        let victim = before[1]!.pid
        XCTAssertEqual(kill(victim, SIGKILL), 0)
        try require("instance 1 of \(web) replaced and ready", timeout: 15, poll: 0.05) {
            let now = self.instances(of: web, daemon: daemon)
            return now.count == 3 && now[1].map { $0.pid != victim } == true && (try? self.number(web, "Running")) == 3
        }
        try flushEvents(events, killing: sleeper)
        XCTAssertEqual(stateChanges(events, web).filter { $0 != "running" }, [],
                       "\(web) left `running` while two of three instances served: \(stateChanges(events, web))")
        XCTAssertEqual(try state(web), "running")
        let now = instances(of: web, daemon: daemon)
        XCTAssertEqual(now[0]?.pid, before[0]!.pid)
        XCTAssertEqual(now[2]?.pid, before[2]!.pid)
        XCTAssertTrue(events.events("ProcessExited", service: web).contains {
            ($0["pid"] as? NSNumber)?.int32Value == victim && $0["code"] as? String == "killed"
        })
        XCTAssertEqual(try number(web, "Restarts"), 1)
        XCTAssertEqual(try httpGet(port: port).status, 200)
    }

    // MARK: scale to 0

    /// `ScaleService(web, 0)` through plain busctl is accepted (`instances = 0` is valid in a
    /// config too): no process left, Instances 0; back to 2: two ready instances.
    func testScaleToZeroThroughBusctlAndBack() throws {
        let (web, _, port, daemon, _) = try startServingWeb(instances: 2)
        let r = try busctl(["call", API.name, API.managerPath, API.manager, "ScaleService", "su", web, "0"])
        XCTAssertEqual(r.status, 0, "ScaleService(\(web), 0) refused: \(r.stderr)")
        guard r.status == 0 else { return }
        try require("no process of \(web) left", timeout: 15, poll: 0.05) {
            Processes.of(service: web).isEmpty && (try? self.pids(web)) == []
        }
        XCTAssertEqual(try number(web, "Instances"), 0)
        XCTAssertEqual(try number(web, "Running"), 0)
        try manager("ScaleService", "su", [web, "2"])
        try requireService(web, state: "running", running: 2, instances: 2)
        _ = try requireInstances(2, of: web, daemon: daemon)
        XCTAssertEqual(try httpGet(port: port).status, 200)
    }

    // MARK: a failed dependency

    /// A dependency that hits its start limit before it was ever ready (`ready = "notify"`: a
    /// `started` one would be ready, and its dependents started, at its first exec): its
    /// dependent never spawns and is `failed` with `dependency NAME failed` (FailureReason,
    /// `ringctl status`); once the dependency runs, `ringctl start` of the dependent tries
    /// again and it runs.
    func testDependentOfAFailedDependencyIsFailedAndStartTriesAgain() throws {
        let db = service("db"), app = service("app")
        let fixed = dir + "/fixed", appStarted = dir + "/app.started"
        try startBusDaemon("""
            [services.\(db)]
            command = ["/bin/sh", "-c", "[ -e \(fixed) ] && exec python3 -c \\"$READY\\"; exit 1"]
            environment = { READY = "import os, socket, time; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', os.environ['NOTIFY_SOCKET']); time.sleep(100000)" }
            ready = "notify"
            restart-delay = "10ms"
            start-limit = { count = 2, interval = "10s" }
            stop-timeout = "2s"

            [services.\(app)]
            command = ["/bin/sh", "-c", "touch \(appStarted); exec sleep 100000"]
            after = [\(TOML.string(db))]
            stop-timeout = "2s"
            """)
        try requireService(db, state: "failed")
        let reason = "dependency \(db) failed"
        do {
            try require("\(app) failed with \"\(reason)\"", timeout: 10, poll: 0.05) {
                (try? self.state(app)) == "failed" && ((try? self.property(app, "FailureReason")) as? String ?? "").contains(reason)
            }
        } catch {
            XCTFail("\(error); \(app) is \((try? self.state(app)) ?? "?"), FailureReason "
                    + "\(((try? self.property(app, "FailureReason")) as? String ?? "?").debugDescription)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: appStarted), "\(app) was spawned although \(db) failed")
        XCTAssertEqual(try pids(app), [])
        XCTAssertEqual(try Journal.events(service: app).event("spawned").count, 0, "\(app) was spawned")
        let status = try ringctl(["status", app])
        XCTAssertTrue(status.stdout.contains(reason), "ringctl status does not say why: \(status.stdout)")

        _ = FileManager.default.createFile(atPath: fixed, contents: nil)
        XCTAssertEqual(try ringctl(["start", db]).status, 0)
        try requireService(db, state: "running", running: 1)
        let start = try ringctl(["start", app])
        XCTAssertEqual(start.status, 0, start.stderr)
        try requireService(app, state: "running", running: 1)
        try require("\(app) really spawned") { FileManager.default.fileExists(atPath: appStarted) }
        XCTAssertEqual(try property(app, "FailureReason") as? String, "")
    }

    // MARK: a reload that changes nothing for a service

    /// A reload that changes another service: web's processes get no event at all.
    func testReloadLeavesAnUnchangedServiceAlone() throws {
        let (web, sleeper, _, daemon, before) = try startServingWeb(instances: 2)
        let events = try followEvents()
        try assertReloadLeaves(web, alone: before, changing: sleeper, daemon: daemon, events: events)
    }

    /// The same after `ringctl scale web 3`: a reload that does not change web's config keeps
    /// what the command set (SPEC: runtime changes last "until a reload changes that
    /// service's config") — no instance stopped, none started.
    func testReloadLeavesAScaledUnchangedServiceAlone() throws {
        let (web, sleeper, _, daemon, _) = try startServingWeb(instances: 2)
        XCTAssertEqual(try ringctl(["scale", web, "3"]).status, 0)
        try requireService(web, running: 3, instances: 3)
        let before = try requireInstances(3, of: web, daemon: daemon)
        let events = try followEvents()
        try assertReloadLeaves(web, alone: before, changing: sleeper, daemon: daemon, events: events)
        XCTAssertEqual(try number(web, "Instances"), 3)
    }

    /// Changes `other`'s command in the file, reloads, and checks that `other` was restarted
    /// while `service` got no ProcessStarted/ProcessExited and kept exactly `processes`.
    private func assertReloadLeaves(_ service: String, alone processes: [Int: ProcessInfoEntry], changing other: String,
                                    daemon: Daemon, events: EventFollower,
                                    file: StaticString = #filePath, line: UInt = #line) throws {
        let otherPID = try XCTUnwrap(try pids(other).first, file: file, line: line)
        let config = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        let changed = config.replacingOccurrences(of: "command = [\"sleep\", \"100000\"]", with: "command = [\"sleep\", \"100001\"]")
        XCTAssertNotEqual(changed, config, file: file, line: line)
        try changed.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try manager("Reload")
        try require("\(other) restarted by the reload", poll: 0.05) {
            let now = try self.pids(other)
            let state = try self.state(other)
            return now.count == 1 && now != [otherPID] && state == "running"
        }
        try flushEvents(events, killing: other)
        XCTAssertTrue(events.objects.contains { $0["event"] as? String == "Reloaded" && $0["ok"] as? Bool == true
            && ($0["message"] as? String ?? "").contains(other) }, "the reload named \(other)", file: file, line: line)
        XCTAssertEqual(events.events("ProcessStarted", service: service).count, 0, "\(events.events("ProcessStarted", service: service))",
                       file: file, line: line)
        XCTAssertEqual(events.events("ProcessExited", service: service).count, 0, "\(events.events("ProcessExited", service: service))",
                       file: file, line: line)
        XCTAssertEqual(instances(of: service, daemon: daemon).mapValues(\.pid), processes.mapValues(\.pid), file: file, line: line)
        XCTAssertEqual(Set(try pids(service)), Set(processes.values.map(\.pid)), file: file, line: line)
        XCTAssertEqual(stateChanges(events, service), [], file: file, line: line)
    }
}
