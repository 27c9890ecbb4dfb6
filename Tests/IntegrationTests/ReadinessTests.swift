// ready = "notify" and `after`: a dependent starts only once its dependency said READY=1.
//
// The dependency holds back READY=1 until the test lets it go: while it waits, the test
// asks the daemon (D-Bus) — a reply that comes after the daemon handled the dependency's
// spawn, so a dependent started too early would already be there — instead of sleeping
// and hoping a wrong start shows up in time.
import Foundation
import Glibc
import XCTest

final class ReadinessTests: DBusTestCase {
    /// Nanoseconds since the epoch, from `date +%s%N` in a file the child wrote.
    private func timestamp(_ file: String) -> UInt64? { contents(dir + "/" + file).flatMap { UInt64($0) } }

    /// Waits until the daemon says (on the bus) that `dependency` has a process and is still
    /// `starting`, then checks that `dependent` has no process at all.
    private func requireDependentWaits(_ dependent: String, for dependency: String, daemon: Daemon,
                                       file: StaticString = #filePath, line: UInt = #line) throws {
        do {
            try require("\(dependency) spawned and starting, on the bus", poll: 0.05) {
                guard daemon.isRunning else { throw HarnessError("ringmasterd exited") }
                return (try? self.state(dependency)) == "starting" && (try? self.pids(dependency))?.count == 1
            }
        } catch {
            XCTFail("\(error)\n--- ringmasterd said:\n\(daemon.log())", file: file, line: line)
            throw error
        }
        XCTAssertEqual(try pids(dependent), [], "\(dependent) has a process before \(dependency) is ready", file: file, line: line)
        XCTAssertNotEqual(try state(dependent), "running", file: file, line: line)
        XCTAssertEqual(instances(of: dependent, daemon: daemon).count, 0, file: file, line: line)
    }

    func testDependentStartsAfterDependencyIsReady() throws {
        let db = service("db"), app = service("app")
        // db is not ready until the test creates `go`; then it says so with systemd-notify.
        let daemon = try startDaemon("""
            [services.\(app)]
            command = ["/bin/sh", "-c", "date +%s%N > app.started; exec sleep 1000"]
            after = [\(TOML.string(db))]

            [services.\(db)]
            command = ["/bin/sh", "-c", "date +%s%N > db.started; while [ ! -e go ]; do sleep 0.02; done; date +%s%N > db.ready; systemd-notify --ready; exec sleep 1000"]
            ready = "notify"
            """)
        try requireDependentWaits(app, for: db, daemon: daemon)
        XCTAssertNil(timestamp("app.started"))
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        try require("app.started") { self.timestamp("app.started") != nil }
        let dbStarted = try XCTUnwrap(timestamp("db.started"))
        let dbReady = try XCTUnwrap(timestamp("db.ready"), "app started before db got as far as READY=1")
        let appStarted = try XCTUnwrap(timestamp("app.started"))
        XCTAssertLessThan(dbStarted, dbReady)
        XCTAssertLessThan(dbReady, appStarted, "\(app) started \(Int64(dbReady) - Int64(appStarted)) ns before \(db) was ready")
        try requireLog("\(db): starting -> running", daemon: daemon)
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// Until READY=1 arrives the service is "starting", and its dependents wait.
    func testNotifyServiceIsNotRunningBeforeReady() throws {
        let slow = service("slow"), after = service("after")
        let daemon = try startDaemon("""
            [services.\(slow)]
            command = ["/bin/sh", "-c", "touch waiting; while [ ! -e go ]; do sleep 0.02; done; systemd-notify --ready; exec sleep 1000"]
            ready = "notify"

            [services.\(after)]
            command = ["/bin/sh", "-c", "touch after.started; exec sleep 1000"]
            after = [\(TOML.string(slow))]
            """)
        _ = try requireInstances(1, of: slow, daemon: daemon)
        try require("slow waiting") { FileManager.default.fileExists(atPath: self.dir + "/waiting") }
        try requireDependentWaits(after, for: slow, daemon: daemon)
        XCTAssertTrue(daemon.log().contains("\(slow): stopped -> starting"), daemon.log())
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/after.started"))
        XCTAssertFalse(daemon.log().contains("\(slow): starting -> running"))
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        try requireLog("\(slow): starting -> running", daemon: daemon)
        try require("after.started") { FileManager.default.fileExists(atPath: self.dir + "/after.started") }
        XCTAssertEqual(try state(slow), "running")
        XCTAssertEqual(try daemon.terminate(), 0)
    }
}
