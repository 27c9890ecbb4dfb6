// SIGTERM to the daemon: everything stops, in reverse dependency order, nothing is left.
import Foundation
import Glibc
import XCTest

final class ShutdownTests: IntegrationTestCase {
    private func timestamp(_ file: String) -> UInt64? { contents(dir + "/" + file).flatMap { UInt64($0) } }

    func testSigtermStopsEverythingInReverseDependencyOrder() throws {
        let db = service("db"), app = service("app"), stubborn = service("stubborn")
        // app and db note when they got SIGTERM; app leaves a grandchild that ignores SIGTERM
        // in its process group; stubborn ignores SIGTERM altogether.
        let trapAndWait = { (name: String) in
            "trap 'date +%s%N > \(name).stopped; exit 0' TERM; date +%s%N > \(name).started; while :; do sleep 0.05; done"
        }
        let daemon = try startDaemon("""
            [services.\(db)]
            command = ["/bin/sh", "-c", \(TOML.string(trapAndWait("db")))]

            [services.\(app)]
            command = ["/bin/sh", "-c", \(TOML.string("(trap '' TERM; exec sleep 1000) & echo $! > grandchild.pid; " + trapAndWait("app")))]
            after = [\(TOML.string(db))]
            instances = 2

            [services.\(stubborn)]
            command = ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"]
            stop-timeout = "300ms"
            """, mode: .journal)
        _ = try requireInstances(1, of: db, daemon: daemon)
        _ = try requireInstances(2, of: app, daemon: daemon)
        let stubbornPid = try requireInstances(1, of: stubborn, daemon: daemon)[0]!.pid
        let grandchild = try require("grandchild.pid") { contents(self.dir + "/grandchild.pid").flatMap { Int32($0) } }
        XCTAssertTrue(Processes.isAlive(grandchild))
        try require("app.started and db.started") { self.timestamp("app.started") != nil && self.timestamp("db.started") != nil }

        let sent = Date()
        let status = try daemon.terminate(timeout: 20)
        let took = Date().timeIntervalSince(sent)
        XCTAssertEqual(status, 0, "ringmasterd's exit status after SIGTERM")

        // app before db: db got SIGTERM only once app was down.
        let appStopped = try XCTUnwrap(timestamp("app.stopped"), "app never got SIGTERM")
        let dbStopped = try XCTUnwrap(timestamp("db.stopped"), "db never got SIGTERM")
        XCTAssertLessThan(appStopped, dbStopped, "\(db) was stopped before its dependent \(app)")

        // The grandchild that ignored SIGTERM went with its instance.
        XCTAssertTrue(waitUntil(timeout: 1) { !Processes.isAlive(grandchild) }, "grandchild \(grandchild) of \(app) survived")

        // stubborn ignored SIGTERM: SIGKILL after its stop-timeout.
        XCTAssertGreaterThanOrEqual(took, 0.3, "stubborn cannot be gone before its stop-timeout")
        XCTAssertTrue(waitUntil(timeout: 1) { !Processes.isAlive(stubbornPid) }, "\(stubborn) survived")
        let exited = try requireJournal("the exit of \(stubborn)", { try Journal.events(service: stubborn) }) {
            $0["RINGMASTER_EVENT"] == "exited"
        }
        XCTAssertEqual(exited["RINGMASTER_EXIT_CODE"], "killed")
        XCTAssertEqual(exited["RINGMASTER_EXIT_STATUS"], String(SIGKILL))

        // Nothing of this test is left (tearDown checks again and kills leftovers).
        let left = Processes.withServicePrefix(prefix)
        XCTAssertEqual(left.map(\.pid), [], "left running: \(left.map { "\($0.pid) \($0.arguments)" })")
    }

    /// SIGINT (Ctrl-C on a terminal) does the same as SIGTERM.
    func testSigintStopsToo() throws {
        let svc = service("sleeper")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["sleep", "1000"]
            instances = 2
            """)
        let pids = try requireInstances(2, of: svc, daemon: daemon).values.map(\.pid)
        daemon.signal(SIGINT)
        XCTAssertEqual(daemon.waitForExit(timeout: 15), 0)
        for pid in pids { XCTAssertTrue(waitUntil(timeout: 1) { !Processes.isAlive(pid) }, "\(pid) survived") }
    }
}
