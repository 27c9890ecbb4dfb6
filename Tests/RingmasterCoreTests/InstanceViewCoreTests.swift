import XCTest
@testable import RingmasterCore

/// The per-instance view read off the machines: the restart deadline is the timer the
/// machine armed, exit summaries and limits read as users write them.
final class InstanceViewCoreTests: XCTestCase {
    let ms = USec.perMillisecond
    let s = USec.perSecond

    func testRestartDeadlineIsTheArmedTimerWhileBackingOff() {
        var c = ServiceConfig(name: "web", command: ["x"])
        c.restartDelay = 100 * ms
        c.restartDelayMax = 1 * s
        var m = InstanceMachine(index: 2)
        _ = m.handle(.startRequested, config: c, now: 0)
        _ = m.handle(.spawned(pid: 7), config: c, now: 1)
        XCTAssertNil(m.restartAt)
        var armed: [USec] = []
        // Three quick failures: 100 ms, 200 ms, 400 ms, each deadline the one the machine armed.
        var now: USec = 2
        for pid in Int32(8)...10 {
            let actions = m.handle(.processExited(.killed(9)), config: c, now: now)
            for case let .armTimer(.restart, deadline) in actions { armed.append(deadline) }
            XCTAssertEqual(m.restartAt, armed.last)
            let view = m.view
            XCTAssertEqual(view.state, .backoff)
            XCTAssertEqual(view.restartAt, armed.last)
            XCTAssertNil(view.pid)
            XCTAssertEqual(view.lastExitReason, .signal)
            now = armed.last!
            _ = m.handle(.timerFired(.restart), config: c, now: now)
            _ = m.handle(.spawned(pid: pid), config: c, now: now)
            now += 1
        }
        XCTAssertEqual(armed, [2 + 100 * ms, 2 + 100 * ms + 1 + 200 * ms, 2 + 300 * ms + 2 + 400 * ms])
        let view = m.view
        XCTAssertEqual(view.instance, 2)
        XCTAssertEqual(view.pid, 10)
        XCTAssertEqual(view.restarts, 3)
        XCTAssertEqual(view.state, .running)
        XCTAssertNil(view.restartAt)
        XCTAssertEqual(view.startedAt, now - 1)
    }

    func testHealthIsTheCurrentProcessesLastProbe() {
        let c = ServiceConfig(name: "web", command: ["x"])
        var m = InstanceMachine(index: 0)
        _ = m.handle(.startRequested, config: c, now: 0)
        XCTAssertNil(m.view.health, "no process yet")
        _ = m.handle(.probed(.passing), config: c, now: 1)
        XCTAssertNil(m.view.health, "a probe without a process is not recorded")
        _ = m.handle(.spawned(pid: 7), config: c, now: 1)
        XCTAssertNil(m.view.health, "no probe ran")
        _ = m.handle(.probed(.failing), config: c, now: 2)
        XCTAssertEqual(m.view.health, .failing)
        _ = m.handle(.probed(.passing), config: c, now: 3)
        XCTAssertEqual(m.view.health, .passing)
        _ = m.handle(.processExited(.exited(1)), config: c, now: 4)
        _ = m.handle(.timerFired(.restart), config: c, now: 5)
        XCTAssertNil(m.view.health, "a new process starts without a result")
    }

    func testExitSummary() {
        XCTAssertEqual(exitSummary(reason: "", code: "", status: 0), "")
        XCTAssertEqual(exitSummary(reason: "signal", code: "killed", status: 9), "signal (killed by SIGKILL)")
        XCTAssertEqual(exitSummary(reason: "exit-code", code: "exited", status: 3), "exit-code (status 3)")
        XCTAssertEqual(exitSummary(reason: "core-dump", code: "dumped", status: 11), "core-dump (dumped core on SIGSEGV)")
        XCTAssertEqual(exitSummary(reason: "watchdog", code: "killed", status: 6), "watchdog (killed by SIGABRT)")
        XCTAssertEqual(exitSummary(reason: "", code: "exited", status: 1), "status 1")
        XCTAssertEqual(exitSummary(reason: "spawn", code: "", status: 0), "spawn")
        XCTAssertEqual(exitSummary(reason: "x", code: "odd", status: 2), "x (odd 2)")
    }

    func testLimitsAsConfigEntries() {
        XCTAssertTrue(ResourceLimits().configEntries.isEmpty)
        var l = ResourceLimits()
        l.memoryMax = .bytes(64 << 20)
        l.memoryHigh = .infinity
        l.cpuWeight = 200
        l.pidsMax = 64
        for (text, shown) in [("50%", "50%"), ("12.5%", "12.5%"), ("200%", "200%"), ("1.05%", "1.05%")] {
            guard case let .success(quota) = ResourceLimits.parseCPUMax(text) else { return XCTFail(text) }
            l.cpuQuota = quota
            XCTAssertEqual(l.configEntries.map { "\($0.key)=\($0.value)" },
                           ["memory-max=64M", "memory-high=infinity", "cpu-weight=200", "cpu-max=\(shown)", "pids-max=64"])
        }
    }
}
