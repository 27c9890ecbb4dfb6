import TestSupport
import XCTest
@testable import RingmasterCore

/// Seeded random runs of the probe policy against a pretend runtime (timers, probes in
/// flight, instance states moved as the instance machine would): after every step, no probe
/// is stuck without a timer, none runs for an instance in a state it does not run in, at most
/// one instance is being replaced for its liveness, an abort never goes to another, and the
/// health fed to the machines is the board's. A failure prints the seed and the last steps.
final class ProbeModelTests: XCTestCase {
    private struct World {
        var board: ProbeBoard
        var states: [InstanceState]
        var timers: [ProbeKey: USec] = [:]
        var inFlight: Set<ProbeKey> = []
        var health: [Int: InstanceHealth] = [:]
        var now: USec = 0
        var trail: [String] = []
        /// the instance being replaced for its liveness before the board's last step
        var replacingBefore: Int?

        mutating func apply(_ outputs: [ProbeOutput]) throws {
            for o in outputs {
                switch o {
                case let .arm(key, at): timers[key] = at
                case let .run(key):
                    guard !inFlight.contains(key) else { throw Failure("\(key) run twice") }
                    inFlight.insert(key)
                case let .stop(key):
                    timers[key] = nil
                    inFlight.remove(key)
                case let .event(i, .probed(h)):
                    guard health[i] != h else { throw Failure("health \(h) of \(i) reported twice") }
                    health[i] = h
                case let .event(i, .abort(reason, _)):
                    guard reason == .liveness, replacingBefore == nil || replacingBefore == i, board.replacing == i else {
                        throw Failure("abort of \(i) while replacing \(String(describing: replacingBefore))")
                    }
                    guard states[i] == .running else { throw Failure("abort of \(i) in \(states[i])") }
                    try move(i, to: .stopping)
                case let .event(i, .readinessProbePassed):
                    guard states[i] == .starting else { throw Failure("ready of \(i) in \(states[i])") }
                    try move(i, to: .running)
                case let .event(i, e):
                    throw Failure("unexpected event \(e) for \(i)")
                case .note:
                    break
                }
            }
        }

        mutating func move(_ i: Int, to state: InstanceState) throws {
            states[i] = state
            if state == .starting { health[i] = nil }
            if state == .stopped || state == .failed || state == .exited { health[i] = nil }
            trail.append("\(i) -> \(state)")
            replacingBefore = board.replacing
            try apply(board.instanceChanged(i, to: state, now: now))
        }

        func check() throws {
            for (key, s) in board.probes {
                let runsIn: InstanceState = key.kind == .liveness ? .running : .starting
                switch s.phase {
                case .idle:
                    if inFlight.contains(key) { throw Failure("\(key) idle with a probe in flight") }
                case .waiting:
                    if states[key.instance] != runsIn { throw Failure("\(key) waiting in \(states[key.instance])") }
                    if timers[key] == nil { throw Failure("\(key) waiting without a timer") }
                    if inFlight.contains(key) { throw Failure("\(key) waiting with a probe in flight") }
                case .running:
                    if states[key.instance] != runsIn { throw Failure("\(key) running in \(states[key.instance])") }
                    if timers[key] == nil || !inFlight.contains(key) { throw Failure("\(key) running without timer or probe") }
                }
            }
            for key in inFlight where board.state(key.instance, key.kind).map({ if case .running = $0.phase { return false } else { return true } }) ?? true {
                throw Failure("\(key) in flight but not running")
            }
            if let r = board.replacing, [.stopped, .failed, .exited].contains(states[r]) {
                throw Failure("replacing \(r), which is \(states[r])")
            }
            for (i, h) in board.health where health[i] != h { throw Failure("health of \(i): board \(h), fed \(String(describing: health[i]))") }
        }
    }

    private struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    private func run(seed: UInt64, steps: Int) throws {
        var rng = SplitMix64(state: seed)
        var c = ServiceConfig(name: "w", command: ["x"])
        c.instances = Int.random(in: 1...4, using: &rng)
        var p = ProbeConfig(check: .tcp("127.0.0.1:1"))
        p.interval = USec.random(in: 1...5, using: &rng) * 100_000
        p.timeout = min(p.interval, USec.random(in: 1...5, using: &rng) * 50_000)
        p.initialDelay = USec.random(in: 0...2, using: &rng) * 100_000
        p.failures = Int.random(in: 1...3, using: &rng)
        p.successes = Int.random(in: 1...2, using: &rng)
        c.liveness = p
        if Bool.random(using: &rng) { c.readiness = p; c.ready = .probe }
        var w = World(board: try XCTUnwrap(ProbeBoard(config: c)), states: Array(repeating: .stopped, count: c.instances))
        do {
            for i in 0..<c.instances { try w.move(i, to: .starting) }
            if c.ready != .probe { for i in 0..<c.instances { try w.move(i, to: .running) } }
            for _ in 0..<steps {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<4: // the earliest timer fires (a little late, as coalescing allows)
                    guard let (key, at) = w.timers.min(by: { $0.value < $1.value }) else { continue }
                    w.now = max(w.now, at) + USec.random(in: 0...20_000, using: &rng)
                    w.timers[key] = nil
                    w.trail.append("timer \(key.instance).\(key.kind) at \(w.now)")
                    w.replacingBefore = w.board.replacing
                    try w.apply(w.board.timerFired(key, now: w.now))
                case 4..<8: // a probe in flight ends
                    guard let key = w.inFlight.randomElement(using: &rng) else { continue }
                    w.inFlight.remove(key)
                    w.now += USec.random(in: 0...10_000, using: &rng)
                    let passed = Int.random(in: 0..<3, using: &rng) > 0
                    w.trail.append("result \(key.instance).\(key.kind) \(passed)")
                    w.replacingBefore = w.board.replacing
                    try w.apply(w.board.finished(key, passed: passed, detail: "", now: w.now))
                default: // the instance machine moves on its own (exit, restart, stop, start)
                    let i = Int.random(in: 0..<c.instances, using: &rng)
                    let next: InstanceState
                    switch w.states[i] {
                    case .starting: next = c.ready == .probe ? [.backoff, .stopping][Int.random(in: 0...1, using: &rng)] : .running
                    case .running: next = [.stopping, .backoff][Int.random(in: 0...1, using: &rng)]
                    case .stopping: next = [.starting, .stopped, .backoff][Int.random(in: 0...2, using: &rng)]
                    case .backoff: next = [.starting, .failed][Int.random(in: 0...1, using: &rng)]
                    case .stopped, .failed, .exited: next = .starting
                    }
                    try w.move(i, to: next)
                    if next == .starting, c.ready != .probe { try w.move(i, to: .running) }
                }
                try w.check()
            }
        } catch {
            XCTFail("seed \(seed): \(error)\nlast steps:\n" + w.trail.suffix(25).joined(separator: "\n"))
        }
    }

    func testRandomRuns() throws {
        for seed in UInt64(1)...1_000 { try run(seed: seed, steps: 200) }
    }
}
