import Glibc
import XCTest
import TestSupport
@testable import RingmasterCore

/// Model-based runs of the `Stack`: seeded random sequences of commands, exits, READY=1,
/// timer firings, batches, reloads and shutdown, against the invariants that must always
/// hold. A failure prints the seed and the steps that led to it; `StackModel.run(seed:)`
/// replays one.
final class StackModelTests: XCTestCase {
    func testSeededRunsKeepEveryInvariant() {
        let runs = Int(ProcessInfoLite.environment("RINGMASTER_MODEL_RUNS") ?? "") ?? 1_000
        runSeeds(0..<UInt64(runs), steps: 150)
    }
}

/// The long version for `make faults`: 10,000 runs of up to 300 steps.
final class FaultStackModelTests: XCTestCase {
    func testTenThousandSeededRunsKeepEveryInvariant() {
        runSeeds(1_000_000..<1_010_000, steps: 300)
    }
}

func runSeeds(_ seeds: Range<UInt64>, steps: Int, file: StaticString = #filePath, line: UInt = #line) {
    var failures = 0
    for seed in seeds {
        var model = StackModel(seed: seed)
        if let failure = model.run(steps: steps) {
            failures += 1
            XCTFail("seed \(seed): \(failure)\n  steps:\n    " + model.history.suffix(25).joined(separator: "\n    "),
                    file: file, line: line)
            if failures >= 3 { return }
        }
    }
}

enum ProcessInfoLite {
    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
}

struct StackModel {
    var rng: SplitMix64
    var driver: StackDriver
    var config: Config
    var history: [String] = []
    var nextService = 0
    var nextJob: UInt32 = 0

    init(seed: UInt64) {
        rng = SplitMix64(state: seed)
        var services: [ServiceConfig] = []
        let n = Int.random(in: 1...5, using: &rng)
        for _ in 0..<n { services.append(StackModel.randomService(&rng, index: nextService, existing: services)); nextService += 1 }
        config = Config(services: services)
        driver = StackDriver(config, limits: StackLimits(workPerStep: 3))
        driver.autoDrain = false
    }

    static func randomService(_ rng: inout SplitMix64, index: Int, existing: [ServiceConfig]) -> ServiceConfig {
        service("s\(index)", instances: Int.random(in: 0...3, using: &rng),
                after: existing.map(\.name).filter { _ in Int.random(in: 0..<3, using: &rng) == 0 },
                ready: Bool.random(using: &rng) ? .started : .notify,
                restart: RestartPolicy.allCases.randomElement(using: &rng)!) { c in
            c.startLimit = StartLimit(count: Int.random(in: 2...4, using: &rng), interval: 10 * .perSecond)
            c.restartDelay = Bool.random(using: &rng) ? 0 : 100 * .perMillisecond
            c.stopTimeout = 1 * .perSecond
            c.readyTimeout = [0, 2 * .perSecond, 90 * .perSecond].randomElement(using: &rng)!
            c.autostart = Int.random(in: 0..<5, using: &rng) > 0
            // tasks: a oneshot (never "always"), a pre-start before each spawn
            if Int.random(in: 0..<4, using: &rng) == 0 {
                c.type = .oneshot
                if c.restart == .always { c.restart = Bool.random(using: &rng) ? .never : .onFailure }
            }
            if Int.random(in: 0..<4, using: &rng) == 0 { c.preStart = ["/bin/pre"] }
            // Health: a watchdog, a memory restart (both driven by the health events below).
            if Int.random(in: 0..<4, using: &rng) == 0 { c.watchdog = 2 * .perSecond }
            if Int.random(in: 0..<3, using: &rng) == 0 {
                c.memoryRestart = 100 << 20
                c.memoryRestartWindow = 1 * .perSecond
            }
        }
    }

    /// Runs `steps` random steps; returns the first broken invariant.
    mutating func run(steps: Int) -> String? {
        driver.boot()
        history.append("boot")
        if let broken = check(before: nil, step: "boot") { return broken }
        for _ in 0..<steps {
            let before = driver.stack
            driver.last = []
            let step = randomStep()
            history.append(step)
            if let broken = check(before: before, step: step) { return broken }
        }
        return nil
    }

    // MARK: - steps

    private func names() -> [String] { driver.stack.services.map(\.name) }

    private mutating func newJob() -> JobID {
        nextJob += 1
        return JobID(nextJob)
    }

    private mutating func randomStep() -> String {
        let roll = Int.random(in: 0..<100, using: &rng)
        let name = names().randomElement(using: &rng) ?? "none"
        do {
            switch roll {
            case 0..<6: driver.run(try driver.stack.start(name, now: driver.now, job: newJob())); return "start \(name)"
            case 6..<10: driver.run(try driver.stack.stop(name, now: driver.now, job: newJob())); return "stop \(name)"
            case 10..<15: driver.run(try driver.stack.restart(name, now: driver.now, job: newJob())); return "restart \(name)"
            case 15..<20:
                let n = Int.random(in: 0...4, using: &rng)
                driver.run(try driver.stack.scale(name, to: n, now: driver.now, job: newJob())); return "scale \(name) \(n)"
            case 20..<24: return reload()
            case 24: driver.shutdown(); return "shutdown"
            case 25..<27:
                if driver.failingSpawns.contains(name) { driver.failingSpawns.remove(name) } else { driver.failingSpawns.insert(name) }
                return "spawns of \(name) \(driver.failingSpawns.contains(name) ? "fail" : "work")"
            case 27..<50:
                let status = [ExitStatus.exited(0), .exited(1), .killed(9), .killed(15)].randomElement(using: &rng)!
                let keys = driver.pids.keys.map { ($0, false) } + driver.preStartPids.keys.map { ($0, true) }
                guard let (key, preStart) = keys.randomElement(using: &rng) else { return "no process to exit" }
                if preStart {
                    driver.preStartExit(key.id, key.instance, status)
                    return "pre-start exit \(key.id).\(key.instance) \(status)"
                }
                driver.exit(key.id, key.instance, status)
                return "exit \(key.id).\(key.instance) \(status)"
            case 50..<70:
                let waiting = driver.pids.keys.filter { k in
                    driver.stack.entry(k.id)?.machine.instances.indices.contains(k.instance) == true
                        && driver.stack.entry(k.id)!.machine.instances[k.instance].state == .starting
                }
                guard let key = waiting.randomElement(using: &rng) else { return "nothing to ready" }
                driver.ready(key.id, key.instance)
                return "ready \(key.id).\(key.instance)"
            case 85..<90:
                return healthEvent()
            case 70..<85:
                guard let (key, _) = driver.timers.min(by: { $0.value < $1.value || ($0.value == $1.value && "\($0.key)" < "\($1.key)") })
                else { return "no timer" }
                driver.fire(key)
                return "timer \(key.id).\(key.instance) \(key.timer)"
            default:
                guard driver.continuationPending else { return "no backlog" }
                driver.continueWork()
                return "continue"
            }
        } catch {
            return "refused: \(error)"
        }
    }

    /// A watchdog message, or a memory sample (memory.events changed) of a live process,
    /// its memory set above or below the figure first.
    private mutating func healthEvent() -> String {
        guard let key = driver.pids.keys.sorted(by: { "\($0)" < "\($1)" }).randomElement(using: &rng) else { return "no process for health" }
        let event: InstanceEvent
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: event = .watchdog(.ping)
        case 1: event = Int.random(in: 0..<4, using: &rng) == 0 ? .watchdog(.trigger) : .watchdog(.period(USec(Int.random(in: 0...3, using: &rng)) * .perSecond))
        default:
            driver.memoryBytes[key] = Bool.random(using: &rng) ? 200 << 20 : 50 << 20
            event = .memorySampled(bytes: driver.memoryBytes[key]!)
        }
        driver.now += USec(Int.random(in: 0...1500, using: &rng)) * .perMillisecond
        driver.run(driver.stack.handle(event, service: key.id, instance: key.instance, now: driver.now))
        return "health \(key.id).\(key.instance) \(event)"
    }

    private mutating func reload() -> String {
        var services = driver.stack.config.services
        switch Int.random(in: 0..<5, using: &rng) {
        case 0 where !services.isEmpty:
            let i = Int.random(in: services.indices, using: &rng)
            services[i].command = ["/bin/v\(Int.random(in: 0..<1000, using: &rng))"]
        case 1 where !services.isEmpty:
            let i = Int.random(in: services.indices, using: &rng)
            services[i].instances = Int.random(in: 0...4, using: &rng)
        case 2 where !services.isEmpty:
            let gone = services.remove(at: Int.random(in: services.indices, using: &rng)).name
            for i in services.indices { services[i].after.removeAll { $0 == gone } }
        case 3 where !services.isEmpty:
            let i = Int.random(in: services.indices, using: &rng)
            services[i].autostart.toggle()
        default:
            services.append(StackModel.randomService(&rng, index: nextService, existing: services))
            nextService += 1
        }
        do {
            let (_, actions) = try driver.stack.reload(to: Config(services: services), changedSockets: [], now: driver.now, job: newJob())
            driver.run(actions)
            return "reload (\(driver.last.count) actions)"
        } catch {
            return "reload refused: \(error)"
        }
    }

    // MARK: - invariants

    private func check(before: Stack?, step: String) -> String? {
        let stack = driver.stack
        let actions = driver.last
        // The runtime's view and the core's agree on every process.
        for (key, pid) in driver.pids {
            guard let e = stack.entry(key.id), e.machine.instances.indices.contains(key.instance),
                  e.machine.instances[key.instance].pid == pid else {
                return "process \(key.id).\(key.instance) (pid \(pid)) is not known to the core"
            }
        }
        for (key, pid) in driver.preStartPids {
            guard let e = stack.entry(key.id), e.machine.instances.indices.contains(key.instance),
                  e.machine.instances[key.instance].preStartPid == pid else {
                return "pre-start \(key.id).\(key.instance) (pid \(pid)) is not known to the core"
            }
        }
        for e in stack.entries {
            let m = e.machine
            // The service state always equals the table's answer, and was reported.
            let expected = oracleState(m)
            if m.state != expected { return "\(e.name): state \(m.state), the table says \(expected)" }
            if e.reportedState != m.state { return "\(e.name): state \(m.state) not reported (still \(e.reportedState))" }
            // No stuck state: every transient instance has a process or a timer.
            for inst in m.instances {
                let key = StackDriver.InstanceKey(id: e.id, instance: inst.index)
                let hasPID = driver.pids[key] != nil || driver.preStartPids[key] != nil
                if driver.pids[key] != nil && driver.preStartPids[key] != nil { return "\(e.name).\(inst.index): a pre-start beside its process" }
                if inst.preStartPid != nil && driver.preStartPids[key] == nil { return "\(e.name).\(inst.index): a pre-start the runtime does not have" }
                func timer(_ t: InstanceTimer) -> Bool { driver.timers[.init(id: e.id, instance: inst.index, timer: t)] != nil }
                switch inst.state {
                case .starting: if !hasPID { return "\(e.name).\(inst.index) starting without a process" }
                case .running:
                    if driver.pids[key] == nil { return "\(e.name).\(inst.index) running without a process" }
                    if m.config.type == .oneshot { return "\(e.name).\(inst.index): a oneshot is never running" }
                case .stopping:
                    if !hasPID || !(timer(.stopTimeout) || driver.killed.contains(key)) {
                        return "\(e.name).\(inst.index) stopping without a process, its stop timer or a SIGKILL"
                    }
                case .backoff:
                    if !timer(.restart) { return "\(e.name).\(inst.index) in backoff without a restart timer" }
                    // The per-instance view's next restart is the timer armed.
                    let armed = driver.timers[.init(id: e.id, instance: inst.index, timer: .restart)]
                    if inst.restartAt != armed { return "\(e.name).\(inst.index): restartAt \(inst.restartAt.map(String.init) ?? "nil") is not the armed restart timer \(armed.map(String.init) ?? "nil")" }
                case .stopped, .exited, .failed:
                    if hasPID || timer(.restart) || timer(.stopTimeout) { return "\(e.name).\(inst.index) \(inst.state) with a process or a timer left" }
                }
            }
            if m.awaitingDependencies && !stack.shuttingDown {
                let deps = stack.graph.dependencies(of: e.name).compactMap { stack.entry(named: $0) }
                if !e.retiring && m.dependencyFailure == nil && deps.allSatisfy({ stack.isSettled($0) }) {
                    return "\(e.name) waits for dependencies that are all settled"
                }
            }
            if e.pendingStop {
                let dependents = stack.graph.dependents(of: e.name).compactMap { stack.entry(named: $0) }
                    + stack.entries.filter { $0.retiring && $0.machine.config.after.contains(e.name) }
                if !e.retiring && dependents.allSatisfy({ !$0.pendingStop && $0.machine.isDown }) {
                    return "\(e.name) waits to stop, with every dependent down"
                }
            }
            // Health: a watchdog is armed only for a ready process (with its timer); at most one
            // memory restart of a service at a time.
            for inst in m.instances {
                let armed = driver.timers[.init(id: e.id, instance: inst.index, timer: .watchdog)] != nil
                if inst.watchdogArmed != armed { return "\(e.name).\(inst.index): watchdog armed \(inst.watchdogArmed), timer \(armed)" }
                if armed && (inst.state != .running || inst.pid == nil) { return "\(e.name).\(inst.index) \(inst.state): a watchdog timer" }
                let checking = driver.timers[.init(id: e.id, instance: inst.index, timer: .memoryCheck)] != nil
                if inst.memoryCheckArmed != checking { return "\(e.name).\(inst.index): memory check armed \(inst.memoryCheckArmed), timer \(checking)" }
            }
            // (a replacement is under way until its new process is ready: `current`)
            for inst in m.instances where inst.replacing && inst.endingCause == .memoryRestart
                && e.memoryRestarts.current?.index != inst.index {
                return "\(e.name).\(inst.index) memory-restarted while \(e.name).\(e.memoryRestarts.current.map { "\($0.index)" } ?? "none") is the one being replaced"
            }
            // A rolling restart never runs more than instances + 1 processes.
            if let r = e.rolling, m.alive > r.target + 1 { return "\(e.name): \(m.alive) processes in a rolling restart of \(r.target)" }
        }
        if stack.hasBacklog && !driver.continuationPending { return "work in the backlog and no continuation asked for" }

        // Every job is reported once; none is left once everything is down after a shutdown.
        var finishedJobs = Set<JobID>()
        for case let .jobFinished(job, _) in actions {
            if !finishedJobs.insert(job).inserted { return "\(job) finished twice in one step" }
            if before?.jobs.contains(where: { $0.id == job }) == false && !step.hasPrefix("start") && !step.hasPrefix("stop")
                && !step.hasPrefix("restart") && !step.hasPrefix("scale") && !step.hasPrefix("reload") {
                return "\(job) finished, but it was not pending"
            }
        }
        if driver.shutdownComplete && !stack.jobs.isEmpty { return "\(stack.jobs.count) jobs left after the shutdown: \(stack.jobs)" }

        guard let before else { return nil }
        // A canary that failed leaves every old ready instance as it was: running, same process.
        for case let .rolledBack(id, _, _) in actions {
            guard let old = before.entry(id), let now = stack.entry(id) else { continue }
            for i in old.machine.instances.indices where i < (old.rolling?.target ?? 0) && old.machine.instances[i].state == .running {
                guard now.machine.instances.indices.contains(i), now.machine.instances[i].state == .running,
                      now.machine.instances[i].pid == old.machine.instances[i].pid else {
                    return "\(now.name).\(i) was ready before the canary was rolled back, and is not now"
                }
            }
        }
        // Bounded work per step.
        let spawns = actions.filter { if case .instance(_, _, .spawn) = $0 { return true }; return false }.count
        if spawns > stack.limits.workPerStep + stack.entries.count + 1 { return "\(spawns) spawns in one step" }

        for e in stack.entries {
            guard let old = before.entry(e.id) else { continue }
            // No service starts before its dependencies are settled.
            if old.machine.awaitingDependencies && !e.machine.awaitingDependencies && e.machine.wanted
                && !step.hasPrefix("reload") && !stack.shuttingDown {
                for dep in stack.graph.dependencies(of: e.name) {
                    guard let now = stack.entry(named: dep) else { continue }
                    let then = before.entry(named: dep)
                    if !stack.isSettled(now) && !(then.map { before.isSettled($0) } ?? true) {
                        func describe(_ m: ServiceMachine?) -> String {
                            guard let m else { return "-" }
                            return "\(m.instances.map { "\($0.state)" }) of \(m.wantedInstances), wanted \(m.wanted), awaiting \(m.awaitingDependencies)"
                        }
                        return "\(e.name) started while its dependency \(dep) is \(now.state): before \(describe(then?.machine)), after \(describe(now.machine))"
                    }
                }
            }
            for case let .instance(id, i, action) in actions where id == e.id && (action == .spawn || action == .preStart) {
                // (the spawn that follows a pre-start belongs to the start the pre-start began)
                if action == .spawn, old.machine.instances.indices.contains(i), old.machine.instances[i].inPreStart { continue }
                if e.machine.awaitingDependencies, e.machine.instances.indices.contains(i), e.machine.instances[i].generation <= 1 {
                    return "\(e.name).\(i) spawned for the first time while waiting for its dependencies"
                }
            }
            // A rolling restart stops an old process only with enough others ready.
            // (the same restart: a reload that changed the service began a new one, with its own floor)
            if let r = old.rolling, case let .replacing(i, nil) = r.phase, let now = e.rolling,
               case .replacing(i, _?) = now.phase, now.generations == r.generations {
                let others = e.machine.instances.indices.filter { $0 != i && e.machine.instances[$0].state == .running }.count
                if others < r.readyFloor { return "\(e.name).\(i) stopped for a rolling restart with \(others) others ready" }
            }
        }
        // During shutdown, no dependency is stopped while a dependent has a live process
        // (a ready-timeout ends a failed start whenever it passes: that is no orderly stop).
        if stack.shuttingDown && !step.hasSuffix(" readyTimeout") {
            for case let .instance(id, _, .signal) in actions {
                guard let e = stack.entry(id) else { continue }
                let dependents = e.retiring ? [] : stack.graph.dependents(of: e.name).compactMap { stack.entry(named: $0) }
                if let alive = dependents.first(where: { !$0.machine.isDown }) {
                    return "\(e.name) stopped while its dependent \(alive.name) is up"
                }
            }
        }
        // A reload emits no action for a service it did not change.
        if step.hasPrefix("reload (") {
            let plan = before.plan(for: stack.config, changedSockets: [])
            for e in stack.services where plan.verdict(of: e.name) == .unchanged && !plan.startsNow.contains(e.name) {
                // (one waiting for a dependency the reload changed may start: that is its dependency's doing)
                // (nor one whose canary failed at once: its config is the old one again)
                let rolledBack = actions.contains { if case .rolledBack(e.id, _, _) = $0 { return true }; return false }
                guard !rolledBack, let old = before.entry(named: e.name), old.id == e.id, !old.machine.awaitingDependencies,
                      before.queuedWork(of: old.id) == 0, old.rolling == nil else { continue }
                let acted = actions.filter { if case let .instance(id, _, _) = $0 { return id == e.id }; return false }
                if !acted.isEmpty { return "the reload acted on \(e.name), which it did not change: \(acted)" }
            }
        }
        return nil
    }

    /// SPEC's table, read straight off the instances (not through `ServiceFacts`).
    private func oracleState(_ m: ServiceMachine) -> ServiceState {
        let states = m.instances.map(\.state)
        if states.contains(.failed) || (m.wanted && m.dependencyFailure != nil) { return .failed }
        let alive = m.instances.contains { $0.pid != nil || $0.state == .starting || $0.state == .stopping }
        if !m.wanted { return alive ? .stopping : .stopped }
        let ready = states.contains(.running)
        if states.contains(.stopping) && !ready { return .stopping }
        if ready { return .running }
        if alive { return .starting }
        if states.contains(.backoff) { return .backoff }
        if states.isEmpty { return .stopped }
        if states.allSatisfy({ $0 == .exited }) { return .exited }
        return .starting
    }
}
