import Glibc
import RingmasterCore
import RingmasterRuntime
import Systemd
import XCTest

/// Spawn first, announce after: the supervisor holds its journal entries, D-Bus process
/// events and `onChange` while it spawns, and from an exit until the restart it made due
/// has spawned. Checked with the real loop and real children, from what the EventLog
/// emitted at the moment of each spawn.
final class AnnouncementTests: XCTestCase {
    private var previousMask = sigset_t()

    override func setUp() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGCHLD)
        pthread_sigmask(SIG_BLOCK, &set, &previousMask)
    }

    override func tearDown() {
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
    }

    func testHeldEntriesAndWorkGoOutInOrderWhenTheLastHoldEnds() {
        let log = EventLog(target: .console)
        log.verbose = true
        var seen: [String] = []
        log.onEmit = { seen.append($0.event) }
        log.hold()
        log.write(LogEvent(.debug, "a", "a"))
        log.afterHold { seen.append("work-b") }
        log.hold()
        log.write(LogEvent(.debug, "c", "c"))
        log.release()
        XCTAssertEqual(seen, [], "still held by the outer hold")
        log.afterHold {
            seen.append("work-d")
            log.write(LogEvent(.debug, "e", "e")) // written by held work: goes out right away
        }
        log.write(LogEvent(.debug, "f", "f"))
        log.release()
        XCTAssertEqual(seen, ["a", "work-b", "c", "work-d", "e", "f"])
        log.write(LogEvent(.debug, "g", "g"))
        log.afterHold { seen.append("work-h") }
        XCTAssertEqual(seen.suffix(2), ["g", "work-h"], "not held: at once")
        XCTAssertEqual(log.holds, 0)
    }

    /// restart-delay 0: when the replacement is spawned, nothing of the exit has gone out
    /// yet (no journal entry, no ProcessExited, no STATUS=/PropertiesChanged); right after,
    /// everything has, in the order it happened — the same entries as without the hold.
    func testARestartSpawnsBeforeAnythingOfTheExitIsAnnounced() throws {
        let f = try Fixture()
        defer { f.shutdown() }
        let (first, emittedBeforeKill, changesBeforeKill) = try f.startAndKillTheFirst()

        try f.run { f.spawner.spawns.count == 2 }
        let second = try XCTUnwrap(f.spawner.spawns.dropFirst().first, "the replacement")
        XCTAssertEqual(second.emitted, emittedBeforeKill, "entries out before the replacement was spawned: \(f.emitted[emittedBeforeKill...])")
        XCTAssertEqual(second.processEvents, [.started(pid: first.pid)])
        XCTAssertEqual(second.changes, changesBeforeKill)

        // The dispatch that spawned ended the hold: everything went out, in order.
        XCTAssertEqual(f.emitted[emittedBeforeKill...].map { "\($0.event): \($0.message)" }, [
            "exited: w.0 (pid \(first.pid)) killed by SIGKILL",
            "instance-state: w.0: running -> backoff",
            "state: w: running -> backoff",
            "instance-state: w.0: backoff -> starting",
            "spawned: w.0 started (pid \(second.pid))",
            "instance-state: w.0: starting -> running",
            "state: w: backoff -> running",
        ])
        XCTAssertEqual(f.processEvents, [.started(pid: first.pid), .exited(pid: first.pid, .killed(SIGKILL)),
                                         .started(pid: second.pid)])
        XCTAssertGreaterThan(f.changes, changesBeforeKill)
        XCTAssertEqual(f.log.holds, 0)
    }

    /// The restart the hold waits for may be called off before its timer fires (here: the
    /// service is stopped in between): the hold then ends in the next iteration anyway.
    func testAHoldKeptForACancelledRestartEndsInTheNextIteration() throws {
        let f = try Fixture()
        defer { f.shutdown() }
        let (first, emittedBeforeKill, _) = try f.startAndKillTheFirst()
        // Only the exit's dispatch: the instance waits in backoff for its (due) timer.
        try f.run { f.supervisor.slot(named: "w")?.machine.instances.first?.state == .backoff }
        XCTAssertEqual(f.emitted.count, emittedBeforeKill, "held for the restart")

        try f.supervisor.stopService("w")
        XCTAssertEqual(f.emitted.count, emittedBeforeKill, "still held: the restart hold ends in the loop")
        try f.loop.runOnce(timeout: 100_000)
        XCTAssertEqual(f.log.holds, 0)
        XCTAssertEqual(f.emitted[emittedBeforeKill...].map { "\($0.event): \($0.message)" }, [
            "exited: w.0 (pid \(first.pid)) killed by SIGKILL",
            "instance-state: w.0: running -> backoff",
            "state: w: running -> backoff",
            "instance-state: w.0: backoff -> stopped",
            "state: w: backoff -> stopped",
        ])
        XCTAssertEqual(f.spawner.spawns.count, 1, "no restart after the stop")
    }
}

/// A supervisor of one service `w` (`sleep`, restart-delay 0) on a real loop, with a
/// spawner that notes what had been announced when it was called.
private final class Fixture {
    let loop: EventLoop
    let log = EventLog(target: .console)
    let spawner: RecordingSpawner
    let supervisor: Supervisor
    var emitted: [LogEvent] = []
    var processEvents: [ProcessEvent] = []
    var changes = 0

    init() throws {
        loop = try EventLoop()
        log.verbose = true
        let config = try ConfigLoader.parse(text: """
            [services.w]
            command = ["sleep", "1000"]
            restart-delay = "0"
            """, file: "/tmp/announcements.toml")
        spawner = RecordingSpawner()
        supervisor = Supervisor(config: config, loop: loop, log: log, spawner: spawner,
                                environment: try ChildEnvironment(configDirectory: "/tmp"))
        log.onEmit = { [unowned self] in emitted.append($0) }
        supervisor.onProcessEvent = { [unowned self] _, _, event in processEvents.append(event) }
        supervisor.onChange = { [unowned self] in changes += 1 }
        spawner.snapshot = { [unowned self] in (emitted.count, processEvents, changes) }
    }

    func run(until done: () -> Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        try loop.run(until: done, file: file, line: line)
    }

    /// Starts `w`, then SIGKILLs its first process; returns that spawn, and how many entries
    /// and changes had gone out before the kill.
    func startAndKillTheFirst() throws -> (RecordingSpawner.Spawn, emitted: Int, changes: Int) {
        supervisor.start()
        try run { changes > 0 }
        let first = try XCTUnwrap(spawner.spawns.first)
        let before = (emitted.count, changes)
        XCTAssertEqual(kill(first.pid, SIGKILL), 0)
        return (first, before.0, before.1)
    }

    /// Stops everything and reaps the children, so that none outlives the test (deferred:
    /// a failed test too).
    func shutdown() {
        var stopped = false
        supervisor.shutdown { stopped = true }
        XCTAssertNoThrow(try run { stopped })
    }
}

private final class RecordingSpawner: Spawner {
    struct Spawn {
        var pid: Int32
        /// how many entries the EventLog had emitted, the process events and the changes
        /// announced, when this spawn was asked for
        var emitted: Int
        var processEvents: [ProcessEvent]
        var changes: Int
    }
    var spawns: [Spawn] = []
    var snapshot: () -> (Int, [ProcessEvent], Int) = { (0, [], 0) }

    func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        let (emitted, processEvents, changes) = snapshot()
        let process = try PosixSpawner().spawn(request)
        spawns.append(Spawn(pid: process.pid, emitted: emitted, processEvents: processEvents, changes: changes))
        return process
    }
}
