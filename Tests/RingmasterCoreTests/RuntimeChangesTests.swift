import XCTest
@testable import RingmasterCore

/// What survives a restart of ringmasterd: the runtime changes the Stack reports, the file's
/// format, and what a new Stack restores from them.
final class RuntimeChangesTests: XCTestCase {
    let services = [service("db"), service("web", instances: 2, after: ["db"]),
                    service("tool") { $0.autostart = false }]

    func testScaleStopAndStartAreRuntimeChangesAndAReloadOfTheServiceResetsThem() throws {
        var d = StackDriver(services)
        d.boot()
        XCTAssertEqual(d.stack.runtimeChanges(), [])
        try d.scale("web", 5)
        try d.stop("db")
        try d.start("tool")
        d.stopAllStopping()
        let changes = d.stack.runtimeChanges()
        XCTAssertEqual(changes.map(\.service), ["db", "web", "tool"])
        XCTAssertEqual(changes.map(\.instances), [nil, 5, nil])
        XCTAssertEqual(changes.map(\.wanted), [false, nil, true])
        XCTAssertEqual(changes[1].fingerprint, d.entry("web").configured.fingerprint)

        // A reload that leaves web's table alone keeps its scale; one that changes it resets it.
        var config = Config(services: services)
        try d.reload(config)
        XCTAssertEqual(d.stack.runtimeChanges().map(\.service), ["db", "web", "tool"])
        config.services[1].environment = [EnvironmentVariable("RELEASE", "2")]
        try d.reload(config)
        d.stopAllStopping()
        XCTAssertEqual(d.entry("web").machine.instances.count, 2, "the scaled-away instances go, not only the restarted ones")
        XCTAssertEqual(d.alive("web"), 2)
        XCTAssertEqual(d.state("web"), .running)
        XCTAssertEqual(d.stack.runtimeChanges().map(\.service), ["db", "tool"])

        // Shutting down is not a change anyone made.
        d.shutdown()
        XCTAssertNil(d.stack.runtimeChangeSummary())
        XCTAssertEqual(d.stack.runtimeChanges(), [])
    }

    func testTheFileRoundTripsAndSkipsWhatItDoesNotUnderstand() {
        let changes = [RuntimeChange(service: "web", fingerprint: "00ab", instances: 5),
                       RuntimeChange(service: "db", fingerprint: "ffee", wanted: false),
                       RuntimeChange(service: "tool", fingerprint: "1234", instances: 0, wanted: true)]
        let text = RuntimeChangesFile.format(changes)
        XCTAssertEqual(RuntimeChangesFile.parse(text).changes, changes)
        XCTAssertEqual(RuntimeChangesFile.parse(text).skipped, 0)
        let damaged = text + "service 12 x up web\nservice 12 3 sideways web\nnonsense\n"
        XCTAssertEqual(RuntimeChangesFile.parse(damaged).changes, changes)
        XCTAssertEqual(RuntimeChangesFile.parse(damaged).skipped, 3)
        XCTAssertEqual(RuntimeChangesFile.parse("ringmaster-runtime-changes 99\nservice 1 2 up web\n").changes, [],
                       "another version's file gives nothing")
    }

    func testAFingerprintIsStableAndChangesWithTheServicesTable() {
        let a = service("web", instances: 2)
        XCTAssertEqual(a.fingerprint, service("web", instances: 2).fingerprint)
        XCTAssertEqual(a.fingerprint.count, 16)
        XCTAssertNotEqual(a.fingerprint, service("web", instances: 3).fingerprint)
        XCTAssertNotEqual(a.fingerprint, service("web", instances: 2) { $0.command = ["/bin/other"] }.fingerprint)
        XCTAssertNotEqual(a.fingerprint, service("web", instances: 2) { $0.envFileEnvironment = [EnvironmentVariable("A", "1")] }.fingerprint)
    }

    func testARestartedStackRestoresWhatStillAppliesBeforeItBoots() throws {
        var before = StackDriver(services)
        before.boot()
        try before.scale("web", 4)
        try before.stop("db")
        try before.start("tool")
        let saved = RuntimeChangesFile.parse(RuntimeChangesFile.format(before.stack.runtimeChanges())).changes

        // Same config: everything comes back, and boot acts on it.
        var after = StackDriver(services)
        let notes = after.stack.restore(saved)
        XCTAssertEqual(notes.map(\.message), [
            "db: restored from before the restart of ringmasterd: stopped",
            "web: restored from before the restart of ringmasterd: scaled to 4",
            "tool: restored from before the restart of ringmasterd: started",
        ])
        after.boot()
        XCTAssertEqual(after.state("db"), .stopped)
        XCTAssertEqual(Set(after.spawned(in: after.all)), ["web.0", "web.1", "web.2", "web.3", "tool.0"],
                       "web does not wait for a dependency that is not wanted")
        XCTAssertEqual(after.entry("web").machine.instances.count, 4)
        XCTAssertEqual(after.stack.runtimeChanges().map(\.service), ["db", "web", "tool"], "kept for the next restart")

        // web's table changed while the daemon was down: its scale is dropped, the rest stays.
        var edited = services
        edited[1].command = ["/bin/web-v2"]
        var changed = StackDriver(edited)
        let dropped = changed.stack.restore(saved + [RuntimeChange(service: "gone", fingerprint: "1", instances: 2)])
        XCTAssertTrue(dropped.contains { $0.message == "web: its config changed; its runtime changes (scaled to 4) are dropped" }, "\(dropped)")
        XCTAssertTrue(dropped.contains { $0.message.hasPrefix("gone: not in the config any more") }, "\(dropped)")
        changed.boot()
        XCTAssertEqual(changed.entry("web").machine.instances.count, 2)
        XCTAssertEqual(changed.state("db"), .stopped)
        XCTAssertEqual(changed.stack.runtimeChanges().map(\.service), ["db", "tool"])
    }

    func testARestoredScaleBeyondTheFileLimitIsRefused() {
        var d = StackDriver([service("web")], limits: StackLimits(fileLimit: 266, filesPerInstance: 1, filesReserved: 256))
        let web = d.entry("web").configured
        let notes = d.stack.restore([RuntimeChange(service: "web", fingerprint: web.fingerprint, instances: 50)])
        XCTAssertEqual(notes.map(\.level), [.warning])
        XCTAssertEqual(d.entry("web").machine.instances.count, 1)
    }
}
