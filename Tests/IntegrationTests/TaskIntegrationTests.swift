// `type = "oneshot"` and `pre-start` in the real session (issue 12): a migration that must
// finish before the web tier starts; a failing one leaves the web tier failed with the
// dependency reason, and `ringctl start` after a fix brings both up; a pre-start that
// prepares what the main command needs, and one that fails (reason `pre-start`).
import Foundation
import Glibc
import XCTest

final class TaskIntegrationTests: DBusTestCase {
    /// `migrate` (oneshot) writes a marker then exits 0; `web` checks the marker is there at
    /// its start: it starts only after migrate exited 0, and migrate is `exited`.
    func testWebStartsOnlyAfterTheMigrationExitedZero() throws {
        let migrate = service("migrate"), web = service("web")
        let go = dir + "/go", migrated = dir + "/migrated", webSaw = dir + "/web-saw"
        try startDaemon("""
            [services.\(migrate)]
            type = "oneshot"
            command = ["/bin/sh", "-c", "while [ ! -e \(go) ]; do sleep 0.02; done; touch \(migrated); exit 0"]

            [services.\(web)]
            command = ["/bin/sh", "-c", "if [ -e \(migrated) ]; then echo yes > \(webSaw); else echo no > \(webSaw); fi; exec sleep 100000"]
            after = [\(TOML.string(migrate))]
            instances = 2
            stop-timeout = "2s"
            """, mode: .journal)
        try require("\(migrate) running", timeout: 15, poll: 0.05) { (try? self.pids(migrate))?.count == 1 }
        XCTAssertEqual(try state(migrate), "starting", "a oneshot that runs is starting")
        XCTAssertEqual(try state(web), "starting")
        XCTAssertEqual(try pids(web), [], "\(web) started before \(migrate) finished")
        XCTAssertEqual(try managerProperty("State") as? String, "starting", "READY=1 waits for the task")
        _ = FileManager.default.createFile(atPath: go, contents: nil)
        try requireService(web, state: "running", running: 2, instances: 2)
        try requireService(migrate, state: "exited", running: 0)
        XCTAssertEqual(contents(webSaw), "yes", "\(web) started before \(migrate) had finished")
        XCTAssertEqual(try property(migrate, "LastExitCode") as? String, "exited")
        XCTAssertEqual(try number(migrate, "LastExitStatus"), 0)
        XCTAssertEqual(try number(migrate, "Restarts"), 0, "a oneshot is not restarted after success")
        try require("the manager running", timeout: 10) { (try? self.managerProperty("State")) as? String == "running" }
    }

    /// A failing migration: `web` never spawns, is `failed` with "dependency migrate failed";
    /// the test fixes the script and `ringctl start migrate` brings both up.
    func testAFailingMigrationFailsWebAndAStartAfterTheFixBringsBothUp() throws {
        let migrate = service("migrate"), web = service("web")
        let script = dir + "/migrate.sh", webStarted = dir + "/web.started"
        try "#!/bin/sh\necho 'migration 0042 failed' >&2\nexit 3\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        try startBusDaemon("""
            [services.\(migrate)]
            type = "oneshot"
            command = [\(TOML.string(script))]

            [services.\(web)]
            command = ["/bin/sh", "-c", "touch \(webStarted); exec sleep 100000"]
            after = [\(TOML.string(migrate))]
            stop-timeout = "2s"
            """)
        try requireService(migrate, state: "failed")
        try require("\(web) failed with its dependency's reason", timeout: 10, poll: 0.05) {
            (try? self.state(web)) == "failed"
                && (try? self.property(web, "FailureReason")) as? String == "dependency \(migrate) failed"
        }
        XCTAssertEqual(try number(migrate, "LastExitStatus"), 3)
        XCTAssertTrue((try property(migrate, "FailureReason") as? String ?? "").contains("exited with status 3"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: webStarted), "\(web) was spawned although \(migrate) failed")
        XCTAssertEqual(try pids(web), [])
        let status = try ringctl(["status"])
        XCTAssertTrue(status.stdout.contains("dependency \(migrate) failed"), status.stdout)

        try "#!/bin/sh\nexit 0\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let start = try ringctl(["start", migrate])
        XCTAssertEqual(start.status, 0, start.stderr)
        try requireService(web, state: "running", running: 1)
        try requireService(migrate, state: "exited")
        XCTAssertTrue(FileManager.default.fileExists(atPath: webStarted))
    }

    /// `ready-timeout` limits a oneshot's run: a migration still running then is stopped, a
    /// failed start with reason `ready-timeout`, and what waits for it fails with it.
    func testAMigrationPastItsReadyTimeoutFailsWithThatReason() throws {
        let migrate = service("migrate"), web = service("web")
        let started = Date()
        try startBusDaemon("""
            [services.\(migrate)]
            type = "oneshot"
            command = ["sleep", "100000"]
            ready-timeout = "1s"

            [services.\(web)]
            command = ["sleep", "100000"]
            after = [\(TOML.string(migrate))]
            """)
        try requireService(migrate, state: "failed")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 1.0, "failed before its ready-timeout")
        XCTAssertEqual(try property(migrate, "LastExitReason") as? String, "ready-timeout")
        try require("\(web) failed with its dependency's reason", timeout: 10, poll: 0.05) {
            (try? self.property(web, "FailureReason")) as? String == "dependency \(migrate) failed"
        }
        XCTAssertEqual(try pids(web), [])
    }

    /// `restart = "on-failure"`: a migration that fails twice, then succeeds, is retried
    /// (with backoff) and `web` waits it out, then starts.
    func testAOneshotUnderOnFailureIsRetriedAndItsDependentWaits() throws {
        let migrate = service("migrate"), web = service("web")
        let tries = dir + "/tries"
        try startDaemon("""
            [services.\(migrate)]
            type = "oneshot"
            restart = "on-failure"
            restart-delay = "50ms"
            command = ["/bin/sh", "-c", "echo x >> \(tries); [ $(wc -l < \(tries)) -ge 3 ]"]

            [services.\(web)]
            command = ["sleep", "100000"]
            after = [\(TOML.string(migrate))]
            stop-timeout = "2s"
            """, mode: .journal)
        try requireService(web, state: "running", running: 1)
        XCTAssertEqual(try state(migrate), "exited")
        XCTAssertEqual(contents(tries)?.split(separator: "\n").count, 3)
        XCTAssertEqual(try number(migrate, "Restarts"), 2)
    }

    /// `pre-start` writes a file the main command needs, with the instance's environment and
    /// working directory; it runs again before each spawn.
    func testPreStartPreparesWhatTheMainCommandNeeds() throws {
        let web = service("web")
        let work = dir + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try startBusDaemon("""
            [services.\(web)]
            command = ["/bin/sh", "-c", "test -s prepared-$RINGMASTER_INSTANCE || exit 9; cat prepared-$RINGMASTER_INSTANCE >> ran; exec sleep 100000"]
            pre-start = ["/bin/sh", "-c", "echo \\"$GREETING {instance}\\" >> prepared-$RINGMASTER_INSTANCE"]
            environment = { GREETING = "hello" }
            working-directory = \(TOML.string(work))
            instances = 2
            restart-delay = "10ms"
            stop-timeout = "2s"
            """)
        try requireService(web, state: "running", running: 2, instances: 2)
        XCTAssertEqual(contents(work + "/prepared-0"), "hello 0")
        XCTAssertEqual(contents(work + "/prepared-1"), "hello 1")
        XCTAssertEqual(try property(web, "LastExitReason") as? String, "")
        // A crash: the pre-start runs again before the new process.
        let before = try pids(web)
        XCTAssertEqual(kill(before[0], SIGKILL), 0)
        try require("\(web) replaced an instance", timeout: 15, poll: 0.05) {
            let now = (try? self.pids(web)) ?? []
            return now.count == 2 && !now.contains(before[0]) && (try? self.number(web, "Running")) == 2
        }
        let prepared = [contents(work + "/prepared-0") ?? "", contents(work + "/prepared-1") ?? ""]
        XCTAssertEqual(prepared.map { $0.split(separator: "\n").count }.reduce(0, +), 3, "one more pre-start: \(prepared)")
        try require("three pre-start ends in the journal", timeout: 10, poll: 0.05) {
            try Journal.events(service: web).event("pre-start-exited").count >= 3
        }
    }

    /// A failing pre-start: the main command never runs, the start fails with reason
    /// `pre-start` (LastExitReason, FailureReason), the exit is in the journal.
    func testAFailingPreStartIsAFailedStartWithReasonPreStart() throws {
        let web = service("web")
        let ran = dir + "/ran"
        try startBusDaemon("""
            [services.\(web)]
            command = ["/bin/sh", "-c", "touch \(ran); exec sleep 100000"]
            pre-start = ["/bin/sh", "-c", "echo 'not ready to start' >&2; exit 4"]
            restart-delay = "10ms"
            start-limit = { count = 2, interval = "10s" }
            stop-timeout = "2s"
            """)
        try requireService(web, state: "failed")
        XCTAssertEqual(try property(web, "LastExitReason") as? String, "pre-start")
        XCTAssertEqual(try number(web, "LastExitStatus"), 4)
        let reason = try property(web, "FailureReason") as? String ?? ""
        XCTAssertTrue(reason.contains("pre-start exited with status 4"), reason)
        XCTAssertFalse(FileManager.default.fileExists(atPath: ran), "the main command ran after a failed pre-start")
        try require("two failed pre-starts in the journal", timeout: 10, poll: 0.05) {
            let ends = try Journal.events(service: web).event("pre-start-exited")
            return ends.count == 2 && ends.allSatisfy { $0["RINGMASTER_EXIT_STATUS"] == "4" }
        }
    }

    /// `ringctl stop` while the pre-start runs: it is killed, nothing is left, the service is
    /// stopped (not failed).
    func testAStopWhileThePreStartRunsKillsIt() throws {
        let web = service("web")
        let marker = dir + "/pre-start-pid"
        try startBusDaemon("""
            [services.\(web)]
            command = ["sleep", "100000"]
            pre-start = ["/bin/sh", "-c", "echo $$ > \(marker); exec sleep 100000"]
            stop-timeout = "2s"
            autostart = false
            """)
        let start = try ringctl(["start", "--no-block", web]) // (it would wait for the pre-start)
        XCTAssertEqual(start.status, 0, start.stderr)
        let pid = try require("the pre-start's pid", timeout: 10) { contents(marker).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
        XCTAssertEqual(try state(web), "starting", "starting while the pre-start runs")
        let stop = try ringctl(["stop", web])
        XCTAssertEqual(stop.status, 0, stop.stderr)
        try requireService(web, state: "stopped")
        try require("the pre-start gone", timeout: 10) { !Processes.isAlive(pid) }
        XCTAssertEqual(try pids(web), [])
        XCTAssertEqual(try property(web, "LastExitReason") as? String, "")
    }
}

/// Under the real unit (a delegated cgroup): the pre-start runs in the instance's own cgroup,
/// the one its main process then runs in.
final class TaskSystemdTests: SystemdUnitTestCase {
    func testPreStartRunsInTheInstancesCgroup() throws {
        let web = service("web")
        let pre = dir + "/pre-start.cgroup", main = dir + "/main.cgroup"
        let unit = try installUnits("""
            [services.\(web)]
            command = ["/bin/sh", "-c", "cat /proc/self/cgroup > \(main); exec sleep 100000"]
            pre-start = ["/bin/sh", "-c", "cat /proc/self/cgroup > \(pre)"]
            stop-timeout = "2s"
            """)
        try unit.systemctl("start", RingmasterUnit.service)
        try unit.requireActive()
        try requireService(web, state: "running", running: 1)
        let preCgroup = try require("the pre-start's cgroup") { contents(pre) }
        let mainCgroup = try require("the main process's cgroup") { contents(main) }
        XCTAssertTrue(preCgroup.hasSuffix("/services/\(web)/0"), preCgroup)
        XCTAssertEqual(preCgroup, mainCgroup)
    }
}
