// `reload-signal` and `ringctl reload NAME` / Service.Reload() / Manager.ReloadService: the
// signal reaches each instance's main process, nothing is restarted; without the key, an error.
import Foundation
import Glibc
import XCTest

final class ReloadSignalTests: DBusTestCase {
    /// Counts the SIGHUPs it gets in DIR/hup-PID (written whole: a temporary file renamed);
    /// DIR/up-PID once its handler is in place.
    private let hupCounter = """
        import os, signal, sys
        d = sys.argv[1]
        count = 0
        def on_hup(*args):
            global count
            count += 1
            tmp = "%s/.hup-%d" % (d, os.getpid())
            with open(tmp, "w") as f:
                f.write(str(count))
            os.rename(tmp, "%s/hup-%d" % (d, os.getpid()))
        signal.signal(signal.SIGHUP, on_hup)
        open("%s/up-%d" % (d, os.getpid()), "w").close()
        while True:
            signal.pause()
        """

    private func config(_ svc: String, script: String, reloadSignal: String?) -> String {
        """
        [services.\(svc)]
        command = ["python3", \(TOML.string(script)), \(TOML.string(dir))]
        instances = 2
        stop-timeout = "2s"
        \(reloadSignal.map { "reload-signal = \(TOML.string($0))" } ?? "")
        """
    }

    private func hups(_ pid: Int32) -> Int {
        Int((try? String(contentsOfFile: "\(dir)/hup-\(pid)", encoding: .utf8)) ?? "0") ?? -1
    }

    private func requireHUPs(_ count: Int, _ pids: [Int32], after what: String) throws {
        try require("\(count) SIGHUP(s) counted by each of \(pids) after \(what)") {
            pids.allSatisfy { self.hups($0) == count }
        }
    }

    func testReloadNameSendsTheSignalToEachMainProcessWithoutARestart() throws {
        let svc = service("counter")
        let script = dir + "/hup.py"
        try hupCounter.write(toFile: script, atomically: true, encoding: .utf8)
        let daemon = try startBusDaemon(config(svc, script: script, reloadSignal: nil))
        try requireService(svc, running: 2)
        let pids = try pids(svc).sorted()
        XCTAssertEqual(pids.count, 2)
        try require("both counters ready for SIGHUP") {
            pids.allSatisfy { FileManager.default.fileExists(atPath: "\(self.dir)/up-\($0)") }
        }

        // Without the key: an error saying so, from ringctl and on D-Bus; nothing is sent.
        let refused = try ringctl(["reload", svc])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.stderr, "ringctl: \(svc) has no reload-signal: set reload-signal (e.g. \"HUP\") in "
                       + "[services.\(svc)] to reload it without a restart, or restart it\n")
        let noKey = API.error + "NoReloadSignal"
        XCTAssertEqual(try error(API.path(svc), "\(API.service).Reload").name, noKey)
        XCTAssertEqual(try managerError("ReloadService", ["string:\(svc)"]), noKey)
        XCTAssertEqual(try managerError("ReloadService", ["string:nope"]), API.error + "NoSuchService")
        let unknown = try ringctl(["reload", "nope"])
        XCTAssertEqual(unknown.status, 4)
        XCTAssertEqual(unknown.stderr, "ringctl: no service named \"nope\"\n")

        // Adding the key and reloading the config (no name, as before) restarts nothing.
        try config(svc, script: script, reloadSignal: "HUP").write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let reload = try ringctl(["reload"])
        XCTAssertEqual(reload.status, 0, reload.stderr)

        // ringctl reload NAME, Service.Reload(), Manager.ReloadService: one SIGHUP each, same pids.
        let r = try ringctl(["reload", svc])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout + r.stderr, "")
        try requireHUPs(1, pids, after: "ringctl reload \(svc)")
        try call(API.path(svc), API.service, "Reload")
        try requireHUPs(2, pids, after: "Service.Reload()")
        try manager("ReloadService", "s", [svc])
        try requireHUPs(3, pids, after: "Manager.ReloadService")

        XCTAssertEqual(try self.pids(svc).sorted(), pids, "reloading replaced no process")
        XCTAssertEqual(try number(svc, "Restarts"), 0)
        for pid in pids { XCTAssertEqual(kill(pid, 0), 0, "\(pid) still runs") }
        XCTAssertEqual(try state(svc), "running")
    }
}
