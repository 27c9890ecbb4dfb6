import XCTest
import Glibc
@testable import RingmasterCore

typealias InstanceStep = (at: USec, event: InstanceEvent, state: InstanceState, actions: [InstanceAction])

/// Feeds `steps` to a fresh instance, checking the state and the actions after each.
@discardableResult
func runInstance(_ steps: [InstanceStep], config: ServiceConfig, file: StaticString, line: UInt) -> InstanceMachine {
    var m = InstanceMachine(index: 0)
    for (i, step) in steps.enumerated() {
        let actions = m.handle(step.event, config: config, now: step.at)
        XCTAssertEqual(m.state, step.state, "step \(i) (\(step.event)): state", file: file, line: line)
        XCTAssertEqual(actions, step.actions, "step \(i) (\(step.event)): actions", file: file, line: line)
    }
    return m
}

/// `watchdog`: tables of event → state/actions for one instance (as InstanceMachineTests), the
/// notify lines, and the config key.
final class InstanceWatchdogTests: XCTestCase {
    let ms = USec.perMillisecond
    let s = USec.perSecond

    func config(_ edit: (inout ServiceConfig) -> Void = { _ in }) -> ServiceConfig {
        instanceTestConfig { c in
            c.stopTimeout = 5 * USec.perSecond
            c.watchdog = 2 * USec.perSecond
            c.readyTimeout = 0 // the watchdog's actions alone (ready-timeout has its own tables)
            edit(&c)
        }
    }

    @discardableResult
    func run(_ steps: [InstanceStep], config: ServiceConfig, file: StaticString = #filePath, line: UInt = #line) -> InstanceMachine {
        runInstance(steps, config: config, file: file, line: line)
    }

    func testArmedWhenReadyRearmedByPingsAbortedOnAMiss() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running), .armTimer(.watchdog, deadline: 1 + 2 * s)]),
            (1 * s, .watchdog(.ping), .running, [.armTimer(.watchdog, deadline: 3 * s)]),
            (2 * s, .watchdog(.ping), .running, [.armTimer(.watchdog, deadline: 4 * s)]),
            (4 * s, .timerFired(.watchdog), .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(SIGABRT), .armTimer(.stopTimeout, deadline: 9 * s)]),
            (4 * s + 1, .watchdog(.ping), .stopping, []),  // too late: it is being aborted
            (4 * s + 2, .processExited(.killed(SIGABRT)), .backoff,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .backoff),
              .armTimer(.restart, deadline: 4 * s + 2 + 100 * ms)]),
            (5 * s, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .spawn]),
            (5 * s + 1, .spawned(pid: 43), .running,
             [.stateChanged(from: .starting, to: .running), .armTimer(.watchdog, deadline: 7 * s + 1)]),
        ], config: config())
        XCTAssertEqual(m.lastExitReason, .watchdog)
        XCTAssertEqual(m.restarts, 1)
        XCTAssertTrue(m.watchdogArmed)
    }

    func testNotifyServiceIsWatchedFromReadyOn() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .starting, []),
            (2, .watchdog(.ping), .starting, []),  // start-up is not watched (systemd: "activated when start-up is completed")
            (3, .readyNotified, .running, [.stateChanged(from: .starting, to: .running), .armTimer(.watchdog, deadline: 3 + 2 * s)]),
        ], config: config { $0.ready = .notify })
    }

    func testTriggerAbortsAtOnce() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running), .armTimer(.watchdog, deadline: 1 + 2 * s)]),
            (5, .watchdog(.trigger), .stopping,
             [.cancelTimer(.watchdog), .stateChanged(from: .running, to: .stopping), .signal(SIGABRT),
              .armTimer(.stopTimeout, deadline: 5 + 5 * s)]),
            (6, .processExited(.killed(SIGABRT)), .backoff,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .backoff),
              .armTimer(.restart, deadline: 6 + 100 * ms)]),
        ], config: config())
        XCTAssertEqual(m.lastExitReason, .watchdog)
    }

    func testTriggerWorksWithoutAConfiguredWatchdogAsInSystemd() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
            (5, .watchdog(.trigger), .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(SIGABRT), .armTimer(.stopTimeout, deadline: 5 + 5 * s)]),
        ], config: config { $0.watchdog = nil })
        XCTAssertEqual(m.endingCause, .watchdog)
    }

    func testPeriodSetByTheProcessLastsForThatProcessOnly() {
        let cfg = config { $0.restart = .always }
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running), .armTimer(.watchdog, deadline: 1 + 2 * s)]),
            (1 * s, .watchdog(.period(10 * s)), .running, [.armTimer(.watchdog, deadline: 11 * s)]),
            (2 * s, .watchdog(.ping), .running, [.armTimer(.watchdog, deadline: 12 * s)]),
            (3 * s, .watchdog(.period(0)), .running, [.cancelTimer(.watchdog)]),  // 0: off
            (4 * s, .watchdog(.ping), .running, []),
            (5 * s, .processExited(.exited(1)), .backoff,
             [.killAll, .stateChanged(from: .running, to: .backoff), .armTimer(.restart, deadline: 5 * s + 100 * ms)]),
            (6 * s, .timerFired(.restart), .starting, [.stateChanged(from: .backoff, to: .starting), .spawn]),
            (6 * s + 1, .spawned(pid: 43), .running,  // the next process has the config's period again
             [.stateChanged(from: .starting, to: .running), .armTimer(.watchdog, deadline: 8 * s + 1)]),
        ], config: cfg)
        XCTAssertNil(m.watchdogOverride)
    }

    func testStopAndExitDisarm() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running), .armTimer(.watchdog, deadline: 1 + 2 * s)]),
            (5, .stopRequested, .stopping,
             [.cancelTimer(.watchdog), .stateChanged(from: .running, to: .stopping), .signal(SIGTERM),
              .armTimer(.stopTimeout, deadline: 5 + 5 * s)]),
            (6, .timerFired(.watchdog), .stopping, []),  // a stale firing does nothing
            (7, .processExited(.killed(SIGTERM)), .stopped,
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .stopped)]),
        ], config: config())
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running), .armTimer(.watchdog, deadline: 1 + 2 * s)]),
            (5, .processExited(.exited(0)), .backoff,
             [.cancelTimer(.watchdog), .killAll, .stateChanged(from: .running, to: .backoff),
              .armTimer(.restart, deadline: 5 + 100 * ms)]),
        ], config: config())
    }

    /// A service without `watchdog` gets no timer and no action from pings.
    func testNothingWithoutAWatchdog() {
        run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
            (2, .watchdog(.ping), .running, []),
            (3, .processExited(.exited(0)), .backoff,
             [.killAll, .stateChanged(from: .running, to: .backoff), .armTimer(.restart, deadline: 3 + 100 * ms)]),
        ], config: config { $0.watchdog = nil })
    }

    func testNotifyLines() {
        XCTAssertEqual(WatchdogMessage(notifyLine: "WATCHDOG=1"), .ping)
        XCTAssertEqual(WatchdogMessage(notifyLine: "WATCHDOG=trigger"), .trigger)
        XCTAssertEqual(WatchdogMessage(notifyLine: "WATCHDOG_USEC=5000000"), .period(5_000_000))
        XCTAssertNil(WatchdogMessage(notifyLine: "WATCHDOG_USEC=soon"))
        XCTAssertNil(WatchdogMessage(notifyLine: "WATCHDOG=0"))
        XCTAssertNil(WatchdogMessage(notifyLine: "READY=1"))
    }

    func testConfigKey() throws {
        func parse(_ key: String) throws -> ServiceConfig {
            try ConfigLoader.parse(text: "[services.w]\ncommand = [\"x\"]\n" + key, file: "c.toml").services[0]
        }
        XCTAssertEqual(try parse("watchdog = \"30s\"").watchdog, 30 * s)
        XCTAssertEqual(try parse("watchdog = \"500ms\"").watchdog, 500 * ms)
        XCTAssertNil(try parse("").watchdog)
        for (key, message) in [
            ("watchdog = \"0\"", "c.toml:3:12: watchdog must be more than 0 (leave the key out for no watchdog)"),
            ("watchdog = 30", "c.toml:3:12:"),
            ("watchdog = \"soon\"", "c.toml:3:12:"),
            ("watchdg = \"1s\"", "c.toml:3:1: unknown key"),
        ] {
            XCTAssertThrowsError(try parse(key), key) { error in
                let text = (error as? ConfigErrors)?.diagnostics.map(\.description).joined(separator: "\n") ?? "\(error)"
                XCTAssertTrue(text.hasPrefix(message), "\(key): \(text)")
            }
        }
    }
}

/// `memory-restart`: one instance's window (InstanceMemoryRestart.swift), and the Stack's
/// rolling replacement of the due instances of a service (StackMemoryRestart.swift).
final class MemoryRestartTests: XCTestCase {
    let ms = USec.perMillisecond
    let s = USec.perSecond
    let M: UInt64 = 1 << 20

    func config(instances: Int = 1) -> ServiceConfig {
        var c = ServiceConfig(name: "web", command: ["sleep", "1000"])
        c.instances = instances
        c.memoryRestart = 100 * M
        c.memoryRestartWindow = 5 * s
        c.stopTimeout = 10 * s
        c.restartDelay = 100 * ms
        return c
    }

    func run(_ steps: [InstanceStep], config: ServiceConfig, file: StaticString = #filePath, line: UInt = #line) -> InstanceMachine {
        runInstance(steps, config: config, file: file, line: line)
    }

    func testStaysAboveForTheWindowThenDue() {
        let up: [InstanceStep] = [
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
        ]
        // Below the figure: nothing, no timer.
        var m = run(up + [(2 * s, .memorySampled(bytes: 90 * M), .running, [])], config: config())
        XCTAssertNil(m.memoryAboveSince)
        // Above: the window starts; more samples above within it change nothing; the timer
        // asks for a sample; still above: due.
        m = run(up + [
            (2 * s, .memorySampled(bytes: 120 * M), .running, [.armTimer(.memoryCheck, deadline: 7 * s)]),
            (3 * s, .memorySampled(bytes: 130 * M), .running, []),
            (7 * s, .timerFired(.memoryCheck), .running, [.sampleMemory]),
            (7 * s + 1, .memorySampled(bytes: 125 * M), .running, []),
        ], config: config())
        XCTAssertTrue(m.memoryRestartDue)
        // Fell back below within the window: over, and the timer goes.
        m = run(up + [
            (2 * s, .memorySampled(bytes: 120 * M), .running, [.armTimer(.memoryCheck, deadline: 7 * s)]),
            (4 * s, .memorySampled(bytes: 80 * M), .running, [.cancelTimer(.memoryCheck)]),
        ], config: config())
        XCTAssertFalse(m.memoryRestartDue)
        XCTAssertNil(m.memoryAboveSince)
        // Below when the timer asks: over.
        m = run(up + [
            (2 * s, .memorySampled(bytes: 120 * M), .running, [.armTimer(.memoryCheck, deadline: 7 * s)]),
            (7 * s, .timerFired(.memoryCheck), .running, [.sampleMemory]),
            (7 * s + 1, .memorySampled(bytes: 99 * M), .running, []),
        ], config: config())
        XCTAssertFalse(m.memoryRestartDue)
        // Samples of a service without memory-restart are ignored.
        var plain = config()
        plain.memoryRestart = nil
        _ = run(up + [(2 * s, .memorySampled(bytes: 500 * M), .running, [])], config: plain)
    }

    func testGracefulRestartIsAnAutomaticRestartWithItsReason() {
        let m = run([
            (0, .startRequested, .starting, [.stateChanged(from: .stopped, to: .starting), .spawn]),
            (1, .spawned(pid: 42), .running, [.stateChanged(from: .starting, to: .running)]),
            (2 * s, .memorySampled(bytes: 120 * M), .running, [.armTimer(.memoryCheck, deadline: 7 * s)]),
            (8 * s, .memorySampled(bytes: 120 * M), .running, [.cancelTimer(.memoryCheck)]),
            (9 * s, .gracefulRestart(.memoryRestart), .stopping,
             [.stateChanged(from: .running, to: .stopping), .signal(SIGTERM), .armTimer(.stopTimeout, deadline: 19 * s)]),
            (10 * s, .processExited(.killed(SIGTERM)), .starting,  // at once: no backoff
             [.killAll, .cancelTimer(.stopTimeout), .stateChanged(from: .stopping, to: .starting), .spawn]),
        ], config: config())
        XCTAssertEqual(m.lastExitReason, .memoryRestart)
        XCTAssertEqual(m.restarts, 1, "an automatic restart")
        XCTAssertEqual(m.consecutiveFailures, 0, "not a failure")
        XCTAssertFalse(m.memoryRestartDue)
    }

    /// Two instances due at once: the second is replaced only once the first one's
    /// replacement is ready (ready = notify, so "ready" is its READY=1).
    func testRollingOneInstanceAtATime() {
        var c = config(instances: 2)
        c.ready = .notify
        var d = StackDriver(Config(services: [c]))
        d.boot()
        let id = d.id("web")
        d.run(d.stack.handle(.readyNotified, service: id, instance: 0, now: d.now))
        d.run(d.stack.handle(.readyNotified, service: id, instance: 1, now: d.now))
        let pids = d.stack.entry(id)!.machine.pids
        XCTAssertEqual(pids.count, 2)
        for i in 0..<2 {
            d.run(d.stack.handle(.memorySampled(bytes: 200 * M), service: id, instance: i, now: d.now))
        }
        d.now += 6 * s
        for i in 0..<2 {
            d.run(d.stack.handle(.memorySampled(bytes: 200 * M), service: id, instance: i, now: d.now))
        }
        func states() -> [InstanceState] { d.stack.entry(id)!.machine.instances.map(\.state) }
        XCTAssertEqual(states(), [.stopping, .running], "one at a time")
        XCTAssertEqual(d.stack.entry(id)!.memoryRestarts.queue, [1])
        // The first one's process goes; its replacement spawns but is not ready yet: 1 still waits.
        d.exit("web", 0, .killed(SIGTERM))
        XCTAssertEqual(states(), [.starting, .running])
        XCTAssertEqual(d.stack.entry(id)!.machine.instances[0].lastExitReason, .memoryRestart)
        d.run(d.stack.handle(.memorySampled(bytes: 200 * M), service: id, instance: 1, now: d.now))
        XCTAssertEqual(states(), [.starting, .running], "the second waits for the first replacement to be ready")
        d.run(d.stack.handle(.readyNotified, service: id, instance: 0, now: d.now))
        XCTAssertEqual(states(), [.running, .stopping], "then the second goes")
        d.exit("web", 1, .killed(SIGTERM))
        d.run(d.stack.handle(.readyNotified, service: id, instance: 1, now: d.now))
        XCTAssertEqual(states(), [.running, .running])
        XCTAssertEqual(d.stack.entry(id)!.machine.restarts, 2)
        XCTAssertEqual(d.stack.entry(id)!.machine.lastExitReason, .memoryRestart)
        XCTAssertTrue(Set(d.stack.entry(id)!.machine.pids).isDisjoint(with: pids))
    }
}
