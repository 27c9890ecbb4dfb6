// Refusals: the API's error names for bad calls, calls from another uid, and a burst of
// malformed calls that must leave the daemon answering.
import Foundation
import Glibc
import XCTest

final class DBusErrorTests: DBusTestCase {
    private func sleeperConfig(_ name: String) -> String {
        """
        [services.\(name)]
        command = ["sleep", "100000"]
        stop-timeout = "2s"
        """
    }

    func testErrorNamesForBadCalls() throws {
        let sleeper = service("sleeper")
        try startBusDaemon(sleeperConfig(sleeper))
        let noSuch = API.error + "NoSuchService", invalid = API.error + "InvalidArgument"
        for method in ["GetService", "StartService", "StopService", "RestartService"] {
            XCTAssertEqual(try managerError(method, ["string:nope"]), noSuch, method)
        }
        XCTAssertEqual(try managerError("ScaleService", ["string:nope", "uint32:2"]), noSuch)
        XCTAssertEqual(try managerError("KillService", ["string:nope", "int32:15"]), noSuch)
        XCTAssertEqual(try managerError("ScaleService", ["string:\(sleeper)", "uint32:10001"]), invalid)
        XCTAssertEqual(try managerError("ScaleService", ["string:\(sleeper)", "uint32:4000000000"]), invalid)
        XCTAssertEqual(try managerError("KillService", ["string:\(sleeper)", "int32:0"]), invalid)
        XCTAssertEqual(try managerError("KillService", ["string:\(sleeper)", "int32:99"]), invalid)
        XCTAssertEqual(try managerError("KillService", ["string:\(sleeper)", "int32:-9"]), invalid)
        XCTAssertEqual(try error(API.path(sleeper), "\(API.service).Kill", ["int32:1000"]).name, invalid)
        XCTAssertEqual(try error(API.path(sleeper), "\(API.service).Scale", ["uint32:10001"]).name, invalid)
        // A service object that does not exist, wrong signatures, unknown members: sd-bus's own names.
        XCTAssertEqual(try error(API.path("nope"), "\(API.service).Start").name, "org.freedesktop.DBus.Error.UnknownObject")
        XCTAssertEqual(try managerError("GetService", ["uint32:3"]), "org.freedesktop.DBus.Error.InvalidArgs")
        XCTAssertEqual(try managerError("ScaleService", ["string:\(sleeper)"]), "org.freedesktop.DBus.Error.InvalidArgs")
        XCTAssertEqual(try managerError("Explode"), "org.freedesktop.DBus.Error.UnknownMethod")
        XCTAssertEqual(try error(API.managerPath, "org.freedesktop.DBus.Properties.Set",
                                 ["string:\(API.manager)", "string:Version", "variant:string:9"]).name,
                       "org.freedesktop.DBus.Error.PropertyReadOnly")
        // Nothing happened to the service.
        try requireService(sleeper, running: 1, instances: 1)
    }

    /// An invalid config on Reload: InvalidConfig with file:line:column in the message, and
    /// nothing changes.
    func testReloadOfAnInvalidConfigIsInvalidConfig() throws {
        let sleeper = service("sleeper")
        let daemon = try startBusDaemon(sleeperConfig(sleeper))
        let pids = try self.pids(sleeper)
        let good = sleeperConfig(sleeper)
        // The bad key is on the line after the good config's last one, in column 1.
        let badLine = good.split(separator: "\n", omittingEmptySubsequences: false).count + 1
        try (good + "\nbogus-key = 1\n").write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        let refusal = try error(API.managerPath, "\(API.manager).Reload")
        XCTAssertEqual(refusal.name, API.error + "InvalidConfig", refusal.message)
        XCTAssertTrue(refusal.message.contains("\(daemon.configPath):\(badLine):1: "),
                      "no \(daemon.configPath):\(badLine):1 in \(refusal.message)")
        XCTAssertTrue(refusal.message.contains("bogus-key"), refusal.message)
        XCTAssertEqual(try self.pids(sleeper), pids)
        // The same daemon still reloads a good file (the refusal came from the file, not the call).
        try good.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try manager("Reload")
    }

    /// Hundreds of bad calls at once (wrong types, missing and extra arguments, unknown
    /// members and objects, huge strings), then the daemon must still answer at once and
    /// its service be untouched.
    func testBurstOfMalformedCallsLeavesTheDaemonResponsive() throws {
        let sleeper = service("sleeper")
        let daemon = try startBusDaemon(sleeperConfig(sleeper))
        let pids = try self.pids(sleeper)
        let long = String(repeating: "x", count: 60_000)
        let calls: [[String]] = [
            [API.managerPath, "\(API.manager).GetService", "uint32:1"],
            [API.managerPath, "\(API.manager).GetService"],
            [API.managerPath, "\(API.manager).GetService", "string:a", "string:b"],
            [API.managerPath, "\(API.manager).StartService", "string:\(long)"],
            [API.managerPath, "\(API.manager).ScaleService", "string:\(sleeper)", "int32:-1"],
            [API.managerPath, "\(API.manager).ScaleService", "string:\(sleeper)", "uint32:10001"],
            [API.managerPath, "\(API.manager).KillService", "string:\(sleeper)", "int32:2147483647"],
            [API.managerPath, "\(API.manager).KillService", "string:\(sleeper)", "string:TERM"],
            [API.managerPath, "\(API.manager).Nope"],
            [API.managerPath, "org.freedesktop.DBus.Properties.Get", "string:\(API.manager)", "string:Nope"],
            [API.managerPath, "org.freedesktop.DBus.Properties.GetAll", "string:no.such.Interface"],
            [API.path(sleeper) + "x", "\(API.service).Start"],
            [API.path(sleeper), "\(API.service).Scale", "string:3"],
            [API.path(sleeper), "\(API.service).Kill", "int32:-1"],
            [API.managerPath + "/service/_zz", "\(API.service).Stop"],
            ["/io/ringmaster/Ringmaster1/service", "\(API.service).Stop"],
        ]
        // As one shell running them all concurrently: hundreds of clients at the same moment.
        var script = ""
        for round in 0..<20 {
            for call in calls {
                let args = call.map { "'\($0)'" }.joined(separator: " ")
                script += "dbus-send --session --print-reply --reply-timeout=20000 --dest=\(API.name) \(args) >/dev/null 2>&1 &\n"
            }
            if round % 5 == 4 { script += "wait\n" }
        }
        script += "wait\n"
        let started = Date()
        let scriptPath = dir + "/burst.sh"
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        _ = try runCommand(["bash", scriptPath], timeout: 120)
        XCTAssertTrue(daemon.isRunning, "ringmasterd died: \(daemon.log())")
        let answered = Date()
        let list = try manager("ListServices")
        XCTAssertLessThan(Date().timeIntervalSince(answered), 2, "ListServices after the burst was slow")
        XCTAssertEqual((list.first as? [[Any]])?.first?[0] as? String, sleeper)
        XCTAssertEqual(try self.pids(sleeper), pids, "a malformed call changed the service")
        print("burst of \(20 * calls.count) malformed calls took \(answered.timeIntervalSince(started))s")
    }

    /// On a bus whose policy lets a second user in, that user may read but not command:
    /// AccessDenied, from the uid the bus vouches for.
    func testCallFromAnotherUIDIsRefused() throws {
        let busDir = dir + "/bus"
        try FileManager.default.createDirectory(atPath: busDir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        chmod(busDir, 0o755)
        let socketPath = busDir + "/socket"
        let config = busDir + "/bus.conf"
        try """
            <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
             "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
            <busconfig>
              <type>session</type>
              <listen>unix:path=\(socketPath)</listen>
              <auth>EXTERNAL</auth>
              <policy context="default">
                <allow user="*"/>
                <allow send_destination="*" eavesdrop="true"/>
                <allow eavesdrop="true"/>
                <allow own="*"/>
              </policy>
            </busconfig>
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let bus = Process()
        bus.executableURL = URL(fileURLWithPath: "/usr/bin/dbus-daemon")
        bus.arguments = ["--config-file=\(config)", "--nofork", "--nopidfile", "--nosyslog"]
        bus.standardInput = FileHandle.nullDevice
        bus.standardOutput = FileHandle.nullDevice
        bus.standardError = FileHandle.nullDevice
        try bus.run()
        defer { bus.terminate(); bus.waitUntilExit() }
        try require("the test bus socket") { FileManager.default.fileExists(atPath: socketPath) }
        chmod(socketPath, 0o777)
        busAddress = "unix:path=\(socketPath)"

        let sleeper = service("sleeper")
        try startBusDaemon(sleeperConfig(sleeper))
        let nobody: uid_t = 65534
        // Reading is for everyone on the bus.
        let list = try call(API.managerPath, API.manager, "ListServices", asUser: nobody)
        XCTAssertEqual((list.first as? [[Any]])?.first?[0] as? String, sleeper)
        // Commanding is not.
        let denied = API.error + "AccessDenied"
        XCTAssertEqual(try managerError("StopService", ["string:\(sleeper)"], asUser: nobody), denied)
        XCTAssertEqual(try managerError("ScaleService", ["string:\(sleeper)", "uint32:2"], asUser: nobody), denied)
        XCTAssertEqual(try managerError("KillService", ["string:\(sleeper)", "int32:9"], asUser: nobody), denied)
        XCTAssertEqual(try managerError("Reload", asUser: nobody), denied)
        XCTAssertEqual(try error(API.path(sleeper), "\(API.service).Stop", asUser: nobody).name, denied)
        let r = try ringctl(["stop", sleeper], asUser: nobody)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.hasPrefix("ringctl: permission denied: "), r.stderr)
        try requireService(sleeper, running: 1)
        // Root (the daemon's own uid here) may.
        try manager("StopService", "s", [sleeper])
        try requireService(sleeper, state: "stopped", running: 0)
    }
}
