// The io.ringmaster.Ringmaster1 API through plain busctl: objects, introspection, every
// method, property and signal.
import Foundation
import Glibc
import XCTest

final class DBusManagerTests: DBusTestCase {
    private func startWebAndSleeper(instances: Int = 2) throws -> (web: String, sleeper: String, port: UInt16, daemon: Daemon) {
        let web = service("web"), sleeper = service("sleeper")
        let port = try freePort()
        let daemon = try startBusDaemon(try webAndSleeper(web: web, sleeper: sleeper, port: port, instances: instances))
        return (web, sleeper, port, daemon)
    }

    /// The live introspection of both interfaces is what docs/io.ringmaster.Ringmaster1.xml says.
    func testIntrospectionMatchesTheDocumentedXML() throws {
        let (web, _, _, _) = try startWebAndSleeper()
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/io.ringmaster.Ringmaster1.xml").path
        let documented = try String(contentsOfFile: docs, encoding: .utf8)
        for (path, interface) in [(API.managerPath, API.manager), (API.path(web), API.service)] {
            let live = try call(path, "org.freedesktop.DBus.Introspectable", "Introspect").first as? String ?? ""
            let liveBlock = try XCTUnwrap(Self.interfaceBlock(interface, in: live), "no \(interface) in the live XML")
            let docBlock = try XCTUnwrap(Self.interfaceBlock(interface, in: documented), "no \(interface) in \(docs)")
            XCTAssertEqual(liveBlock, docBlock, "\(interface): docs/io.ringmaster.Ringmaster1.xml is out of date")
        }
    }

    /// `<interface name="NAME">…</interface>`, one trimmed line per element, comments dropped.
    static func interfaceBlock(_ name: String, in xml: String) -> [String]? {
        let lines = xml.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("<!--") }
        guard let start = lines.firstIndex(of: "<interface name=\"\(name)\">"),
              let end = lines[start...].firstIndex(of: "</interface>") else { return nil }
        return Array(lines[start...end])
    }

    func testTreeListsTheManagerAndEveryService() throws {
        let (web, sleeper, _, _) = try startWebAndSleeper()
        let tree = try busctl(["tree", API.name]).stdout
        for path in [API.managerPath, API.path(web), API.path(sleeper)] {
            XCTAssertTrue(tree.contains(path), "\(path) missing from busctl tree:\n\(tree)")
        }
        XCTAssertTrue(API.path(web).hasSuffix("_2dweb"), "the name is sd_bus_path_encode'd: \(API.path(web))")
    }

    func testListServicesGetServiceAndEveryProperty() throws {
        let (web, sleeper, _, daemon) = try startWebAndSleeper()
        let list = try XCTUnwrap(try manager("ListServices").first as? [[Any]])
        let rows = Dictionary(uniqueKeysWithValues: list.map { ($0[0] as? String ?? "", $0) })
        XCTAssertEqual(rows[web]?[1] as? String, "running")
        XCTAssertEqual((rows[web]?[2] as? NSNumber)?.intValue, 2)
        XCTAssertEqual((rows[web]?[3] as? NSNumber)?.intValue, 2)
        XCTAssertEqual(rows[web]?[4] as? String, API.path(web))
        XCTAssertEqual(rows[sleeper]?[4] as? String, API.path(sleeper))
        XCTAssertEqual(try manager("GetService", "s", [web]).first as? String, API.path(web))

        // Manager properties.
        XCTAssertEqual(try typedProperty(API.managerPath, API.manager, "Version").type, "s")
        XCTAssertEqual(try managerProperty("State") as? String, "running")
        XCTAssertEqual(try managerProperty("ConfigFiles") as? [String], [daemon.configPath])

        // Every Service property, with its type.
        let types = ["Name": "s", "State": "s", "Instances": "u", "Running": "u", "PIDs": "au", "Restarts": "u",
                     "LastExitCode": "s", "LastExitStatus": "i", "StateChangeTimestamp": "t",
                     "CPUUsageNSec": "t", "MemoryCurrent": "t", "FailureReason": "s", "StatusText": "s",
                     "LastExitReason": "s", "Limits": "a(ss)", "InstanceStates": "a(uussussiuttttts)"]
        for (name, type) in types {
            XCTAssertEqual(try typedProperty(API.path(web), API.service, name).type, type, name)
        }
        XCTAssertEqual(try property(web, "Name") as? String, web)
        let pids = try pids(web)
        XCTAssertEqual(Set(pids), Set(instances(of: web, daemon: daemon).values.map(\.pid)))
        XCTAssertEqual(try number(web, "Restarts"), 0)
        XCTAssertEqual(try property(web, "LastExitCode") as? String, "")
        let since = try XCTUnwrap(try property(web, "StateChangeTimestamp") as? NSNumber).uint64Value
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        XCTAssertTrue(since <= now && now - since < 60_000_000, "StateChangeTimestamp \(since) is not µs realtime (now \(now))")
        XCTAssertGreaterThan(try XCTUnwrap(try property(web, "MemoryCurrent") as? NSNumber).uint64Value, 1_000_000,
                             "two python processes take more than 1 MB")
        XCTAssertNotNil(try property(web, "CPUUsageNSec") as? NSNumber)

        // GetAll has them all but InstanceStates, which is read by Get only (per-instance reads).
        let all = try call(API.path(web), "org.freedesktop.DBus.Properties", "GetAll", "s", [API.service])
        let dict = try XCTUnwrap(all.first as? [String: Any])
        XCTAssertEqual(Set(dict.keys), Set(types.keys).subtracting(["InstanceStates"]))
    }

    func testManagerMethodsStartStopRestartScaleKill() throws {
        let (web, sleeper, _, daemon) = try startWebAndSleeper()

        try manager("StopService", "s", [sleeper])
        try requireService(sleeper, state: "stopped", running: 0)
        XCTAssertTrue(instances(of: sleeper, daemon: daemon).isEmpty)
        try manager("StartService", "s", [sleeper])
        try requireService(sleeper, running: 1)
        let first = try pids(sleeper)

        try manager("RestartService", "s", [sleeper])   // one instance: stop, then start
        try require("a new pid for \(sleeper)") { let p = try self.pids(sleeper); return p.count == 1 && p != first }
        try requireService(sleeper, running: 1)

        try manager("ScaleService", "su", [web, "4"])
        try requireService(web, running: 4, instances: 4)
        _ = try requireInstances(4, of: web, daemon: daemon)
        try manager("ScaleService", "su", [web, "1"])
        try requireService(web, running: 1, instances: 1)
        _ = try requireInstances(1, of: web, daemon: daemon)

        let before = try pids(sleeper)
        try manager("KillService", "si", [sleeper, String(SIGKILL)])
        try require("the killed \(sleeper) replaced") { let p = try self.pids(sleeper); return p.count == 1 && p != before }
        try requireService(sleeper, running: 1)
        XCTAssertEqual(try property(sleeper, "LastExitCode") as? String, "killed")
        XCTAssertEqual(try number(sleeper, "LastExitStatus"), Int(SIGKILL))
        XCTAssertEqual(try number(sleeper, "Restarts"), 1)
    }

    func testServiceObjectMethods() throws {
        let (web, sleeper, _, daemon) = try startWebAndSleeper()
        let path = API.path(sleeper)
        try call(path, API.service, "Stop")
        try requireService(sleeper, state: "stopped", running: 0)
        try call(path, API.service, "Start")
        try requireService(sleeper, running: 1)
        let old = try pids(sleeper)
        try call(path, API.service, "Restart")
        try require("a new pid for \(sleeper)") { let p = try self.pids(sleeper); return p.count == 1 && p != old }
        try call(API.path(web), API.service, "Scale", "u", ["3"])
        try requireService(web, running: 3, instances: 3)
        _ = try requireInstances(3, of: web, daemon: daemon)
        let before = try pids(sleeper)
        try call(path, API.service, "Kill", "i", [String(SIGTERM)])
        try require("the signalled \(sleeper) replaced") { let p = try self.pids(sleeper); return p.count == 1 && p != before }
        XCTAssertEqual(try property(sleeper, "LastExitCode") as? String, "killed")
        XCTAssertEqual(try number(sleeper, "LastExitStatus"), Int(SIGTERM))
    }

    /// ServiceStateChanged, ProcessStarted, ProcessExited, Reloaded and PropertiesChanged, as
    /// `busctl monitor` sees them on the bus.
    func testSignalsAndPropertiesChanged() throws {
        let (_, sleeper, _, daemon) = try startWebAndSleeper()
        let monitor = try EventFollower(["/usr/bin/busctl", busAddress.map { "--address=\($0)" } ?? "--user",
                                         "--json=short", "monitor", API.name])
        try require("busctl monitor to be listening", timeout: 10, poll: 0.1) {
            _ = try? self.manager("Reload")
            return monitor.objects.contains { $0["member"] as? String == "Reloaded" }
        }
        let old = try XCTUnwrap(try pids(sleeper).first)
        try manager("KillService", "si", [sleeper, String(SIGKILL)])
        try requireService(sleeper, running: 1)
        let new = try XCTUnwrap(try pids(sleeper).first)

        func signals(_ member: String) -> [[Any]] {
            monitor.objects.filter { $0["type"] as? String == "signal" && $0["member"] as? String == member }
                .compactMap { ($0["payload"] as? [String: Any])?["data"] as? [Any] }
        }
        try require("ProcessExited, ProcessStarted and ServiceStateChanged for \(sleeper)", poll: 0.05) {
            signals("ProcessExited").contains { $0.count == 5 && $0[0] as? String == sleeper && ($0[2] as? NSNumber)?.int32Value == old
                && $0[3] as? String == "killed" && ($0[4] as? NSNumber)?.int32Value == SIGKILL }
            && signals("ProcessStarted").contains { $0.count == 3 && $0[0] as? String == sleeper && ($0[2] as? NSNumber)?.int32Value == new }
            && signals("ServiceStateChanged").contains { $0.count == 2 && $0[0] as? String == sleeper && $0[1] as? String == "backoff" }
            && signals("ServiceStateChanged").contains { $0.count == 2 && $0[0] as? String == sleeper && $0[1] as? String == "running" }
        }
        // The reloads of the unchanged, valid file: ok, and nothing changed.
        let reloaded = signals("Reloaded")
        XCTAssertFalse(reloaded.isEmpty)
        for signal in reloaded {
            XCTAssertEqual(signal.count, 2, "\(signal)")
            XCTAssertEqual(signal.first as? Bool, true, "Reloaded of a valid file: \(signal)")
            XCTAssertEqual(signal.last as? String, "nothing changed", "\(signal)")
        }
        // A file that does not validate: Reloaded(false, its file:line:column problem).
        let good = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        let badLine = good.split(separator: "\n", omittingEmptySubsequences: false).count + 1
        try (good + "\nbogus-key = 1\n").write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        XCTAssertEqual(try managerError("Reload"), API.error + "InvalidConfig")
        let refused = try require("Reloaded(false, …) for the invalid file", poll: 0.05) {
            signals("Reloaded").first { $0.first as? Bool == false }
        }
        XCTAssertEqual(refused.count, 2)
        let message = refused.last as? String ?? ""
        XCTAssertTrue(message.contains("\(daemon.configPath):\(badLine):1: ") && message.contains("bogus-key"),
                      "Reloaded(false, \(message.debugDescription)) does not say where the problem is")
        try good.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)

        // PropertiesChanged on the service object carries the new values.
        let changes = monitor.objects.filter {
            $0["member"] as? String == "PropertiesChanged" && $0["path"] as? String == API.path(sleeper)
        }.compactMap { ($0["payload"] as? [String: Any])?["data"] as? [Any] }
        let changed = changes.compactMap { $0.count == 3 ? $0[1] as? [String: Any] : nil }
        XCTAssertTrue(changed.contains { ($0["State"] as? [String: Any])?["data"] as? String == "backoff" },
                      "no PropertiesChanged with State=backoff: \(changed)")
        XCTAssertTrue(changed.contains { (($0["PIDs"] as? [String: Any])?["data"] as? [NSNumber])?.map(\.int32Value) == [new] },
                      "no PropertiesChanged with the new PIDs: \(changed)")
        XCTAssertTrue(changed.contains { ($0["LastExitCode"] as? [String: Any])?["data"] as? String == "killed" })
        XCTAssertTrue(changed.contains { (($0["Restarts"] as? [String: Any])?["data"] as? NSNumber)?.intValue == 1 })
    }

    /// Reload adds and removes service objects (tree, InterfacesAdded/Removed) and says so
    /// (Reloaded); the removed service's processes still report their exit.
    func testReloadAddsAndRemovesServiceObjects() throws {
        let (web, sleeper, _, daemon) = try startWebAndSleeper(instances: 1)
        let events = try followEvents()
        let monitor = try EventFollower(["/usr/bin/busctl", "--user", "--json=short", "monitor", API.name])
        try require("busctl monitor to be listening", timeout: 10, poll: 0.1) {
            _ = try? self.manager("Reload")
            return monitor.objects.contains { $0["member"] as? String == "Reloaded" }
        }
        let old = try XCTUnwrap(try pids(sleeper).first)
        let extra = service("extra")
        var config = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        config = config.replacingOccurrences(of: "[services.\(sleeper)]", with: "[services.\(extra)]")
        try config.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        try manager("Reload")
        try requireService(extra, running: 1)
        try require("\(sleeper)'s object gone") { !((try? self.busctl(["tree", API.name]).stdout) ?? "").contains(API.path(sleeper)) }
        XCTAssertTrue(try busctl(["tree", API.name]).stdout.contains(API.path(extra)))
        XCTAssertEqual(try managerError("GetService", ["string:\(sleeper)"]), API.error + "NoSuchService")
        _ = web
        try require("Reloaded(true, …) naming both, and the removed sleeper's exit", poll: 0.05) {
            events.objects.contains { $0["event"] as? String == "Reloaded" && $0["ok"] as? Bool == true
                && ($0["message"] as? String ?? "").contains(extra) && ($0["message"] as? String ?? "").contains(sleeper) }
            && events.events("ProcessExited", service: sleeper).contains { ($0["pid"] as? NSNumber)?.int32Value == old }
            && events.events("ProcessStarted", service: extra).count == 1
        }
        try require("InterfacesAdded for \(extra) and InterfacesRemoved for \(sleeper)", poll: 0.05) {
            let paths = { (member: String) in
                monitor.objects.filter { $0["member"] as? String == member }
                    .compactMap { (($0["payload"] as? [String: Any])?["data"] as? [Any])?.first as? String }
            }
            return paths("InterfacesAdded").contains(API.path(extra)) && paths("InterfacesRemoved").contains(API.path(sleeper))
        }
    }
}
