// `watchdog`: real clients keep an instance alive with WATCHDOG=1 and lose it when they stop —
// a Python worker speaking the sd_notify protocol itself (and asking libsystemd's
// sd_watchdog_enabled() what it sees), and a shell loop calling `systemd-notify WATCHDOG=1`
// (a short-lived sender of its own pid: NotifyAccess must take it, as systemd's
// NotifyAccess=all does). Each writes files the test waits on: env.PID, start.PID, pings.PID
// (count), last.PID (time of its last ping); stop.PID makes it stop pinging and stay.
import Foundation
import Glibc
import XCTest

final class WatchdogTests: DBusTestCase {
    private static let pythonWorker = #"""
        import ctypes, os, socket, time
        pid = os.getpid()
        open(f"start.{pid}", "w").write(f"{time.time():.6f}")
        usec = ctypes.c_uint64(0)
        enabled = ctypes.CDLL("libsystemd.so.0").sd_watchdog_enabled(0, ctypes.byref(usec))
        open(f"env.{pid}", "w").write(f"{os.environ.get('WATCHDOG_USEC')} {os.environ.get('WATCHDOG_PID')} {enabled} {usec.value}")
        address = os.environ["NOTIFY_SOCKET"]
        if address.startswith("@"):
            address = "\0" + address[1:]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(b"READY=1", address)
        n = 0
        while not os.path.exists(f"stop.{pid}"):
            s.sendto(b"WATCHDOG=1", address)
            n += 1
            open(f"last.{pid}", "w").write(f"{time.time():.6f}")
            open(f"pings.{pid}", "w").write(str(n))
            time.sleep(0.2)
        time.sleep(100000)
        """#

    private static let shellWorker = #"""
        date +%s.%N > start.$$
        echo "$WATCHDOG_USEC $WATCHDOG_PID" > env.$$
        n=0
        while [ ! -e stop.$$ ]; do
            systemd-notify WATCHDOG=1
            date +%s.%N > last.$$
            n=$((n + 1)); echo $n > pings.$$
            sleep 0.2
        done
        exec sleep 100000
        """#

    private func number(_ file: String) -> Double? {
        contents(dir + "/" + file).flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The one process of `svc`, once there is one.
    private func onlyPID(_ svc: String) throws -> Int32 {
        try require("the first process of \(svc)", timeout: 15) { () -> Int32? in
            let p = try self.pids(svc)
            return p.count == 1 && p[0] > 0 ? p[0] : nil
        }
    }

    /// Kept alive by its pings for over two periods, then restarted within period + 1 s of
    /// its last ping once it stops, reason `watchdog` on D-Bus and in the journal.
    private func checkWatchdog(_ svc: String, daemon: Daemon, period: Double) throws -> Int32 {
        let first = try onlyPID(svc)
        try require("\(svc) pinging for over two periods", timeout: 20) {
            guard daemon.isRunning else { throw HarnessError("ringmasterd exited: \(daemon.log())") }
            return (self.number("pings.\(first)") ?? 0) * 0.2 > 2 * period + 0.4
        }
        XCTAssertEqual(try pids(svc), [first], "pinged within its period, yet replaced")
        XCTAssertEqual(try number(svc, "Restarts"), 0)
        XCTAssertEqual(try state(svc), "running")

        _ = FileManager.default.createFile(atPath: dir + "/stop.\(first)", contents: nil)
        let second = try require("\(svc) replaced after its pings stopped", timeout: period + 5, poll: 0.02) { () -> Int32? in
            let p = try self.pids(svc)
            return p.count == 1 && p[0] > 0 && p[0] != first ? p[0] : nil
        }
        let started = try require("start.\(second)") { self.number("start.\(second)") }
        let lastPing = try XCTUnwrap(number("last.\(first)"))
        XCTAssertLessThanOrEqual(started - lastPing, period + 1, "replaced \(started - lastPing) s after its last ping")
        XCTAssertGreaterThanOrEqual(started - lastPing, period - 0.05, "replaced before its period was over")
        XCTAssertEqual(try property(svc, "LastExitReason") as? String, "watchdog")
        let exited = try requireJournal("the exited entry of pid \(first)", { try Journal.events(service: svc) }) {
            $0["RINGMASTER_EVENT"] == "exited" && $0["RINGMASTER_PID"] == String(first)
        }
        XCTAssertEqual(exited["RINGMASTER_EXIT_REASON"], "watchdog")
        XCTAssertEqual(exited["RINGMASTER_EXIT_STATUS"], String(SIGABRT), "the watchdog's signal is SIGABRT")
        return first
    }

    func testPythonWorkerSpeakingSdNotify() throws {
        let svc = service("py")
        try Self.pythonWorker.write(toFile: dir + "/worker.py", atomically: true, encoding: .utf8)
        let daemon = try startBusDaemon("""
            [services.\(svc)]
            command = ["python3", "worker.py"]
            ready = "notify"
            watchdog = "1s"
            """)
        let first = try checkWatchdog(svc, daemon: daemon, period: 1)
        // As systemd sets them for the main process: sd_watchdog_enabled() says yes, with the period.
        XCTAssertEqual(contents(dir + "/env.\(first)"), "1000000 \(first) 1 1000000")
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    func testShellLoopCallingSystemdNotify() throws {
        let svc = service("sh")
        let daemon = try startBusDaemon("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", \(TOML.string(Self.shellWorker))]
            watchdog = "1s"
            """)
        let first = try checkWatchdog(svc, daemon: daemon, period: 1)
        XCTAssertEqual(contents(dir + "/env.\(first)"), "1000000 \(first)")
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// WATCHDOG=trigger aborts at once (reason watchdog), even where no watchdog is configured,
    /// as systemd does; a service without `watchdog` gets no WATCHDOG_* variables.
    func testTriggerAndNoVariablesWithoutAWatchdog() throws {
        let svc = service("trig")
        let script = #"""
            echo "${WATCHDOG_USEC-unset} ${WATCHDOG_PID-unset}" > env.$$
            while [ ! -e go ]; do sleep 0.02; done
            [ -e triggered ] && exec sleep 100000
            touch triggered
            exec python3 -c "import os, socket, time; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'WATCHDOG=trigger', os.environ['NOTIFY_SOCKET']); time.sleep(1000)"
            """#
        let daemon = try startBusDaemon("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", \(TOML.string(script))]
            """)
        let first = try onlyPID(svc)
        try require("env.\(first)") { contents(self.dir + "/env.\(first)") }
        XCTAssertEqual(contents(dir + "/env.\(first)"), "unset unset")
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        try require("\(svc) aborted by WATCHDOG=trigger and restarted", timeout: 10) {
            (try? self.property(svc, "LastExitReason")) as? String == "watchdog" && (try? self.number(svc, "Restarts")) == 1
        }
        XCTAssertEqual(try daemon.terminate(), 0)
    }
}
