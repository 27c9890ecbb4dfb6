import XCTest
@testable import RingmasterCore

/// The probe policy (`ProbeBoard`) step by step: when probes run, timeouts, the counts in a
/// row, readiness → ready, liveness → abort, and one liveness restart at a time.
final class ProbePolicyTests: XCTestCase {
    private let s: USec = USec.perSecond

    private func config(liveness: ProbeConfig? = nil, readiness: ProbeConfig? = nil, instances: Int = 1) -> ServiceConfig {
        var c = ServiceConfig(name: "web", command: ["x"])
        c.instances = instances
        c.liveness = liveness
        c.readiness = readiness
        if readiness != nil { c.ready = .probe }
        return c
    }

    private func probe(_ check: ProbeCheck = .tcp("127.0.0.1:1"), interval: USec = 10_000_000, timeout: USec = 1_000_000,
                       initialDelay: USec = 0, failures: Int = 3, successes: Int = 1) -> ProbeConfig {
        var p = ProbeConfig(check: check)
        p.interval = interval; p.timeout = timeout; p.initialDelay = initialDelay
        p.failures = failures; p.successes = successes
        return p
    }

    private func L(_ i: Int) -> ProbeKey { ProbeKey(i, .liveness) }
    private func R(_ i: Int) -> ProbeKey { ProbeKey(i, .readiness) }

    /// Runs one probe of `key` due at `at` that ends at `at + took` with `passed`.
    private func cycle(_ b: inout ProbeBoard, _ key: ProbeKey, at: USec, took: USec = 1_000, passed: Bool) -> [ProbeOutput] {
        let started = b.timerFired(key, now: at)
        XCTAssertTrue(started.contains(.run(key)), "\(key) did not run at \(at): \(started)")
        return b.finished(key, passed: passed, detail: passed ? "ok" : "HTTP 503", now: at + took)
    }

    func testNoProbeNoBoard() {
        XCTAssertNil(ProbeBoard(config: config()))
        // A readiness table without ready = "probe" (rejected by the config) would not run.
        var c = config(readiness: probe()); c.ready = .started
        XCTAssertNil(ProbeBoard(config: c)?.readiness)
    }

    func testLivenessScheduleFromReadyWithInitialDelay() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(initialDelay: 5 * s))))
        XCTAssertEqual(b.instanceChanged(0, to: .starting, now: 0), [], "liveness waits for the instance to be ready")
        XCTAssertEqual(b.instanceChanged(0, to: .running, now: 2 * s), [.arm(L(0), at: 7 * s)])
        XCTAssertEqual(b.timerFired(L(0), now: 7 * s), [.arm(L(0), at: 8 * s), .run(L(0))])
        // Passed after 40 ms: health reported once, next probe an interval after the start.
        XCTAssertEqual(b.finished(L(0), passed: true, detail: "HTTP 200", now: 7 * s + 40_000),
                       [.event(instance: 0, .probed(.passing)), .arm(L(0), at: 17 * s)])
        XCTAssertEqual(cycle(&b, L(0), at: 17 * s, passed: true), [.arm(L(0), at: 27 * s)], "no repeated health report")
        // A timer that fires early (coalescing) re-arms for the due time.
        XCTAssertEqual(b.timerFired(L(0), now: 26 * s), [.arm(L(0), at: 27 * s)])
        // A late result: the next probe is due at once.
        _ = b.timerFired(L(0), now: 27 * s)
        XCTAssertEqual(b.finished(L(0), passed: true, detail: "", now: 37 * s + 5),
                       [.arm(L(0), at: 37 * s + 5)])
    }

    /// Timers fire late (coalescing): the probes stay due every `interval`, on the same grid.
    func testLateTimersKeepTheCadence() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(interval: s, timeout: s / 2))))
        _ = b.instanceChanged(0, to: .running, now: 0)
        var due: USec = 0
        for n in 0..<5 {
            let late = USec(n % 3) * 90_000
            XCTAssertEqual(cycle(&b, L(0), at: due + late, took: 2_000, passed: true).last, .arm(L(0), at: due + s))
            due += s
        }
    }

    func testTimeoutIsAFailureAndCancelsTheProbe() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(interval: 2 * s, timeout: s))))
        _ = b.instanceChanged(0, to: .running, now: 0)
        XCTAssertEqual(b.timerFired(L(0), now: 0), [.arm(L(0), at: s), .run(L(0))])
        XCTAssertEqual(b.timerFired(L(0), now: s),
                       [.stop(L(0)), .event(instance: 0, .probed(.failing)), .arm(L(0), at: 2 * s)])
        XCTAssertEqual(b.state(0, .liveness)?.failuresInRow, 1)
        // A result that comes after its timeout is ignored.
        XCTAssertEqual(b.finished(L(0), passed: true, detail: "", now: s + 1), [])
        XCTAssertEqual(b.state(0, .liveness)?.failuresInRow, 1)
    }

    /// failures in a row restart the instance; a pass in between resets the count.
    func testLivenessFailuresInARow() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(failures: 3))))
        _ = b.instanceChanged(0, to: .running, now: 0)
        let steps: [(Bool, Int)] = [(false, 1), (false, 2), (true, 0), (false, 1), (false, 2)]
        var t: USec = 0
        for (passed, count) in steps {
            let out = cycle(&b, L(0), at: t, passed: passed)
            XCTAssertFalse(out.contains { if case .event(_, .abort) = $0 { return true } else { return false } })
            XCTAssertEqual(b.state(0, .liveness)?.failuresInRow, count)
            t += 10 * s
        }
        XCTAssertEqual(cycle(&b, L(0), at: t, passed: false), [
            .note(instance: 0, StackNote(.warning, "liveness", "failed its liveness probe 3 times in a row (HTTP 503): restarting it")),
            .event(instance: 0, .abort(.liveness, signal: nil)),
        ])
        XCTAssertEqual(b.replacing, 0)
        // The abort stops the process: probes stop; the replacement probes from its readiness.
        XCTAssertEqual(b.instanceChanged(0, to: .stopping, now: t + 1), [])
        XCTAssertEqual(b.instanceChanged(0, to: .backoff, now: t + 2), [])
        XCTAssertEqual(b.instanceChanged(0, to: .starting, now: t + 3), [])
        XCTAssertEqual(b.instanceChanged(0, to: .running, now: t + 4), [.arm(L(0), at: t + 4)])
        XCTAssertEqual(b.state(0, .liveness)?.failuresInRow, 0, "a new process starts from zero")
        XCTAssertEqual(cycle(&b, L(0), at: t + 4, passed: true), [
            .event(instance: 0, .probed(.passing)),
            .note(instance: 0, StackNote(.info, "liveness", "passes its liveness probe again")),
            .arm(L(0), at: t + 4 + 10 * s),
        ])
        XCTAssertNil(b.replacing)
    }

    /// With `successes = 2`, one pass between failures does not clear the count.
    func testLivenessSuccessesClearTheCount() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(failures: 3, successes: 2))))
        _ = b.instanceChanged(0, to: .running, now: 0)
        let table: [(Bool, Int)] = [(false, 1), (true, 1), (false, 2), (true, 2), (true, 0), (false, 1)]
        for (n, (passed, count)) in table.enumerated() {
            _ = cycle(&b, L(0), at: USec(n) * 10 * s, passed: passed)
            XCTAssertEqual(b.state(0, .liveness)?.failuresInRow, count, "step \(n)")
        }
    }

    func testReadinessMakesTheInstanceReadyThenStops() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(), readiness: probe(interval: s, successes: 2))))
        XCTAssertEqual(b.instanceChanged(0, to: .starting, now: 0), [.arm(R(0), at: 0)])
        XCTAssertEqual(cycle(&b, R(0), at: 0, passed: false), [.event(instance: 0, .probed(.failing)), .arm(R(0), at: s)])
        // Readiness failures never restart (ready-timeout does).
        for n in 1...10 { XCTAssertEqual(cycle(&b, R(0), at: USec(n) * s, passed: false), [.arm(R(0), at: USec(n + 1) * s)]) }
        XCTAssertEqual(cycle(&b, R(0), at: 11 * s, passed: true), [.event(instance: 0, .probed(.passing)), .arm(R(0), at: 12 * s)])
        XCTAssertEqual(cycle(&b, R(0), at: 12 * s, passed: true), [.event(instance: 0, .readinessProbePassed)])
        XCTAssertEqual(b.state(0, .readiness)?.phase, .idle)
        // Ready: readiness is done, liveness begins.
        XCTAssertEqual(b.instanceChanged(0, to: .running, now: 12 * s + 1_000), [.arm(L(0), at: 12 * s + 1_000)])
        XCTAssertEqual(b.timerFired(R(0), now: 13 * s), [], "no readiness probe once ready")
    }

    func testEndingStatesStopEverything() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(), readiness: probe())))
        _ = b.instanceChanged(0, to: .starting, now: 0)
        _ = b.timerFired(R(0), now: 0)
        XCTAssertEqual(b.instanceChanged(0, to: .stopping, now: 1), [.stop(R(0))], "a probe in flight is cancelled")
        XCTAssertEqual(b.instanceChanged(0, to: .stopped, now: 2), [])
        XCTAssertNil(b.state(0, .readiness))
        XCTAssertEqual(b.timerFired(R(0), now: 3), [])
        XCTAssertEqual(b.finished(R(0), passed: true, detail: "", now: 4), [])
    }

    /// Every instance fails at once (their database went away): one is restarted at a time,
    /// the others keep their processes until the replacement passes.
    func testOneLivenessRestartAtATime() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(failures: 2), instances: 3)))
        for i in 0..<3 { _ = b.instanceChanged(i, to: .running, now: 0) }
        func aborts(_ out: [ProbeOutput]) -> [Int] {
            out.compactMap { if case let .event(i, .abort(.liveness, _)) = $0 { return i } else { return nil } }
        }
        var restarted: [Int] = []
        var notes: [String] = []
        for round in 0..<2 {
            for i in 0..<3 {
                let out = cycle(&b, L(i), at: USec(round) * 10 * s + USec(i), passed: false)
                restarted += aborts(out)
                for case let .note(_, n) in out { notes.append(n.message) }
            }
        }
        XCTAssertEqual(restarted, [0], "only the first to reach `failures` is restarted")
        XCTAssertEqual(b.replacing, 0)
        XCTAssertEqual(b.held, [1, 2])
        XCTAssertEqual(notes.count, 3)
        XCTAssertEqual(notes[1], "failed its liveness probe 2 times in a row (HTTP 503); not restarted while instance 0, "
                       + "restarted for its liveness, has not passed it again (one at a time)")
        // Still failing: held, noted once, probed on.
        let again = cycle(&b, L(1), at: 20 * s + 1, passed: false)
        XCTAssertEqual(again, [.arm(L(1), at: 30 * s)], "due every interval from the first (a late timer does not shift it)")
        // Instance 0's replacement is up and fails too (the database is still down): it is the
        // one tried again, and still only it.
        _ = b.instanceChanged(0, to: .stopping, now: 20 * s)
        _ = b.instanceChanged(0, to: .starting, now: 21 * s)
        _ = b.instanceChanged(0, to: .running, now: 21 * s)
        XCTAssertEqual(aborts(cycle(&b, L(0), at: 21 * s, passed: false)), [])
        XCTAssertEqual(aborts(cycle(&b, L(0), at: 31 * s, passed: false)), [0])
        XCTAssertEqual(aborts(cycle(&b, L(2), at: 31 * s, passed: false)), [])
        // The database is back: instance 0's next process passes, the others pass and stay.
        _ = b.instanceChanged(0, to: .stopping, now: 32 * s)
        _ = b.instanceChanged(0, to: .running, now: 33 * s)
        _ = cycle(&b, L(0), at: 33 * s, passed: true)
        XCTAssertNil(b.replacing)
        XCTAssertEqual(aborts(cycle(&b, L(1), at: 40 * s, passed: true)), [])
        XCTAssertEqual(b.state(1, .liveness)?.failuresInRow, 0)
        // Had instance 2 kept failing, it would go next, at its next failure.
        XCTAssertEqual(aborts(cycle(&b, L(2), at: 41 * s, passed: false)), [2])
        XCTAssertEqual(b.replacing, 2)
        XCTAssertEqual(b.held, [1], "instance 1 was noted before; a pass does not clear the note")
    }

    /// The instance being replaced stops for good (stopped, scaled away, gave up): the next may go.
    func testReplacementSlotFreedWhenTheInstanceEnds() throws {
        var b = try XCTUnwrap(ProbeBoard(config: config(liveness: probe(failures: 1), instances: 2)))
        for i in 0..<2 { _ = b.instanceChanged(i, to: .running, now: 0) }
        XCTAssertTrue(cycle(&b, L(0), at: 0, passed: false).contains(.event(instance: 0, .abort(.liveness, signal: nil))))
        XCTAssertFalse(cycle(&b, L(1), at: 1, passed: false).contains(.event(instance: 1, .abort(.liveness, signal: nil))))
        _ = b.instanceChanged(0, to: .failed, now: 2)
        XCTAssertNil(b.replacing)
        XCTAssertTrue(cycle(&b, L(1), at: 10 * s + 1, passed: false).contains(.event(instance: 1, .abort(.liveness, signal: nil))))
    }
}
