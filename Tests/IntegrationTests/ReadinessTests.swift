// ready = "notify" and `after`: a dependent starts only once its dependency said READY=1.
import Foundation
import Glibc
import XCTest

final class ReadinessTests: IntegrationTestCase {
    /// Nanoseconds since the epoch, from `date +%s%N` in a file the child wrote.
    private func timestamp(_ file: String) -> UInt64? { contents(dir + "/" + file).flatMap { UInt64($0) } }

    func testDependentStartsAfterDependencyIsReady() throws {
        let db = service("db"), app = service("app")
        // db takes a while before it is ready, and says so with systemd-notify from a shell.
        let daemon = try startDaemon("""
            [services.\(app)]
            command = ["/bin/sh", "-c", "date +%s%N > app.started; exec sleep 1000"]
            after = [\(TOML.string(db))]

            [services.\(db)]
            command = ["/bin/sh", "-c", "date +%s%N > db.started; sleep 0.5; date +%s%N > db.ready; systemd-notify --ready; exec sleep 1000"]
            ready = "notify"
            """)
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
            command = ["/bin/sh", "-c", "sleep 0.3; touch waiting; while [ ! -e go ]; do sleep 0.05; done; systemd-notify --ready; exec sleep 1000"]
            ready = "notify"

            [services.\(after)]
            command = ["/bin/sh", "-c", "touch after.started; exec sleep 1000"]
            after = [\(TOML.string(slow))]
            """)
        _ = try requireInstances(1, of: slow, daemon: daemon)
        // slow has been up (and not ready) for a while once it says "waiting": long enough for
        // a dependent that would wrongly start to have started.
        try require("slow waiting") { FileManager.default.fileExists(atPath: self.dir + "/waiting") }
        XCTAssertTrue(daemon.log().contains("\(slow): stopped -> starting"), daemon.log())
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/after.started"))
        XCTAssertFalse(daemon.log().contains("\(slow): starting -> running"))
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        try requireLog("\(slow): starting -> running", daemon: daemon)
        try require("after.started") { FileManager.default.fileExists(atPath: self.dir + "/after.started") }
        XCTAssertEqual(try daemon.terminate(), 0)
    }
}
