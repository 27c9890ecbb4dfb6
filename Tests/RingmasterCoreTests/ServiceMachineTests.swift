import XCTest
@testable import RingmasterCore

final class ServiceMachineTests: XCTestCase {
    func config(instances: Int = 3) -> ServiceConfig {
        var c = ServiceConfig(name: "web", command: ["sleep", "1000"])
        c.instances = instances
        return c
    }

    func spawnAll(_ m: inout ServiceMachine, _ actions: [ServiceAction], pid: inout Int32, now: USec = 0) {
        for a in actions where a.action == .spawn {
            pid += 1
            _ = m.handle(.spawned(pid: pid), instance: a.instance, now: now)
        }
    }

    func testStartStartsEveryInstanceAndAggregatesState() {
        var m = ServiceMachine(config: config())
        XCTAssertEqual(m.state, .stopped)
        XCTAssertFalse(m.isSettled == false && m.wanted)
        let actions = m.start(now: 0)
        XCTAssertEqual(actions.filter { $0.action == .spawn }.map(\.instance), [0, 1, 2])
        XCTAssertEqual(m.state, .starting)
        XCTAssertFalse(m.isReady)
        var pid: Int32 = 100
        spawnAll(&m, actions, pid: &pid)
        XCTAssertEqual(m.state, .running)
        XCTAssertTrue(m.isReady)
        XCTAssertEqual(m.pids, [101, 102, 103])
        XCTAssertEqual(m.running, 3)
    }

    func testStopGoesHighestInstanceFirst() {
        var m = ServiceMachine(config: config())
        var pid: Int32 = 0
        spawnAll(&m, m.start(now: 0), pid: &pid)
        let stops = m.stop(now: 1).filter { if case .signal = $0.action { return true } else { return false } }
        XCTAssertEqual(stops.map(\.instance), [2, 1, 0])
        XCTAssertEqual(m.state, .stopping)
        for i in 0..<3 { _ = m.handle(.processExited(.killed(15)), instance: i, now: 2) }
        XCTAssertEqual(m.state, .stopped)
        XCTAssertTrue(m.isDown)
    }

    func testScaleUpAndDown() {
        var m = ServiceMachine(config: config(instances: 2))
        var pid: Int32 = 0
        spawnAll(&m, m.start(now: 0), pid: &pid)
        let up = m.scale(to: 4, now: 1)
        XCTAssertEqual(up.filter { $0.action == .spawn }.map(\.instance), [2, 3])
        spawnAll(&m, up, pid: &pid, now: 1)
        XCTAssertEqual(m.running, 4)

        let down = m.scale(to: 1, now: 2)
        let signalled = down.filter { if case .signal = $0.action { return true } else { return false } }.map(\.instance)
        XCTAssertEqual(signalled, [3, 2, 1])
        XCTAssertEqual(m.instances.count, 4, "kept until their processes are gone")
        for i in [3, 2, 1] { _ = m.handle(.processExited(.killed(15)), instance: i, now: 3) }
        XCTAssertEqual(m.instances.count, 1)
        XCTAssertEqual(m.state, .running)
        XCTAssertTrue(m.isReady)
    }

    func testFailedInstanceFailsTheServiceAndSettlesIt() {
        var c = config(instances: 2)
        c.restart = .never
        var m = ServiceMachine(config: c)
        var pid: Int32 = 0
        spawnAll(&m, m.start(now: 0), pid: &pid)
        _ = m.handle(.processExited(.exited(2)), instance: 1, now: 5)
        XCTAssertEqual(m.state, .failed)
        XCTAssertTrue(m.isSettled)
        XCTAssertEqual(m.failureReason, "exited with status 2; restart = \"never\"")
        XCTAssertEqual(m.lastExit, .exited(2))
    }

    func testZeroInstancesIsReadyAtOnce() {
        var m = ServiceMachine(config: config(instances: 0))
        XCTAssertEqual(m.start(now: 0), [])
        XCTAssertTrue(m.isReady)
        XCTAssertEqual(m.state, .running)
    }

    func testUpdateWithOnlyInstancesChangedScales() {
        var m = ServiceMachine(config: config(instances: 1))
        var pid: Int32 = 0
        spawnAll(&m, m.start(now: 0), pid: &pid)
        var new = config(instances: 2)
        new.stopTimeout = 1
        let actions = m.update(config: new, now: 1)
        XCTAssertEqual(actions.filter { $0.action == .spawn }.map(\.instance), [1])
        XCTAssertEqual(m.config.stopTimeout, 1)
        XCTAssertEqual(m.config.instances, 2)
    }

    func testLastExitSurvivesAScaleDown() {
        var m = ServiceMachine(config: config(instances: 2))
        var pid: Int32 = 0
        spawnAll(&m, m.start(now: 0), pid: &pid)
        _ = m.scale(to: 1, now: 1)
        _ = m.handle(.processExited(.killed(15)), instance: 1, now: 2)
        XCTAssertEqual(m.instances.count, 1)
        XCTAssertEqual(m.lastExit, .killed(15))
    }
}
