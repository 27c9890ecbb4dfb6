// Jobs: a command given with a job id (by a client that waits for its result) is followed
// until it is done, and its end is reported as `.jobFinished(id, result)` — in the step that
// settles it. Each job is a list of goals, one per service it changes:
//
//   up        started: wanted, and settled (every wanted instance ready, or ended for good)
//   down      stopped: not wanted, no process left (a removed service: gone)
//   replaced  restarted: every instance that was there has a new process, and settled
//   count     scaled: the new count reached (and settled, if wanted)
//
// A goal fails when the service fails (a start limit, `dependency X failed`), when a
// rolling restart's canary is rolled back or the restart abandoned, when another command
// takes the service elsewhere (stopped while starting, scaled again), or at shutdown. A job
// is done when every goal is; it failed if any did, with every failure in its message.
// Only goals of services a step touched are looked at.

/// A client's handle on a command (the runtime numbers them).
public struct JobID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let raw: UInt32
    public init(_ raw: UInt32) { self.raw = raw }
    public static func < (a: JobID, b: JobID) -> Bool { a.raw < b.raw }
    public var description: String { "job \(raw)" }
}

public enum JobResult: Equatable, Sendable {
    case done
    /// one line: what failed and why ("web: rolled back: web.3 exited with status 1 before it was ready")
    case failed(String)
}

struct Job: Equatable, Sendable {
    struct Goal: Equatable, Sendable {
        enum Kind: Equatable, Sendable {
            case up
            case down
            /// each instance's spawn count when the restart began
            case replaced(generations: [Int])
            case count(Int)
        }
        var service: ServiceID
        var name: String
        var kind: Kind
        /// nil while pending
        var outcome: JobResult? = nil
    }

    var id: JobID
    var goals: [Goal]
}

extension Stack {
    /// Follows `goals` as job `id` (a job without goals is done at the end of this step).
    mutating func addJob(_ id: JobID?, _ goals: [Job.Goal]) {
        guard let id else { return }
        jobs.append(Job(id: id, goals: goals))
        for g in goals { jobTouched.insert(g.service) }
        jobsAdded = true
    }

    func goal(_ id: ServiceID, _ kind: Job.Goal.Kind) -> Job.Goal {
        Job.Goal(service: id, name: entry(id)?.name ?? "?", kind: kind)
    }

    /// The goal of a restart of the entry: its instances replaced (the rolling restart under
    /// way counts from its own start).
    func replacedGoal(_ id: ServiceID) -> Job.Goal {
        guard let e = entry(id) else { return goal(id, .up) }
        return goal(id, .replaced(generations: e.rolling?.generations ?? e.machine.instances.map(\.generation)))
    }

    /// Fails the pending restart goals of the entry (its rolling restart was rolled back or abandoned).
    mutating func failJobs(of id: ServiceID, _ message: String) {
        for j in jobs.indices {
            for g in jobs[j].goals.indices where jobs[j].goals[g].service == id && jobs[j].goals[g].outcome == nil {
                if case .replaced = jobs[j].goals[g].kind { jobs[j].goals[g].outcome = .failed(message) }
            }
        }
        jobTouched.insert(id)
    }

    /// Settles the goals the step touched; reports every job whose goals are all settled.
    mutating func settleJobs(into out: inout [StackAction]) {
        guard !jobs.isEmpty, !jobTouched.isEmpty || jobsAdded else { return }
        let touchedNow = jobTouched
        jobTouched.removeAll(keepingCapacity: true)
        jobsAdded = false
        var finished: [Int] = []
        for j in jobs.indices {
            for g in jobs[j].goals.indices where jobs[j].goals[g].outcome == nil && touchedNow.contains(jobs[j].goals[g].service) {
                jobs[j].goals[g].outcome = outcome(of: jobs[j].goals[g])
            }
            let goals = jobs[j].goals
            guard goals.allSatisfy({ $0.outcome != nil }) else { continue }
            var failures: [String] = []
            for g in goals { if case let .failed(why)? = g.outcome { failures.append(why) } }
            out.append(.jobFinished(jobs[j].id, failures.isEmpty ? .done : .failed(failures.joined(separator: "; "))))
            finished.append(j)
        }
        for j in finished.reversed() { jobs.remove(at: j) }
    }

    /// nil: not settled yet.
    private func outcome(of goal: Job.Goal) -> JobResult? {
        let name = goal.name
        guard let e = entry(goal.service) else {
            return goal.kind == .down ? .done : .failed("\(name) was removed by a reload")
        }
        let m = e.machine
        if goal.kind == .down {
            if m.wanted && !e.retiring { return .failed("\(name) was started again meanwhile") }
            return m.isDown && !e.pendingStop && backlog.count(of: e.id) == 0 ? .done : nil
        }
        if shuttingDown { return .failed(CommandError.shuttingDown.description) }
        if e.retiring { return .failed("\(name) was removed by a reload") }
        if !m.wanted { return .failed("\(name) was stopped meanwhile") }
        if let dependency = m.dependencyFailure { return .failed("\(name): \(dependency)") }
        if e.state == .failed { return .failed("\(name) failed: \(m.failureReason ?? "an instance gave up")") }
        if case let .count(n) = goal.kind, m.wantedInstances != n, e.rolling == nil || e.rolling!.target != n {
            return .failed("\(name) was scaled to \(e.instancesWanted) meanwhile")
        }
        guard isSettled(e) else { return nil }
        switch goal.kind {
        case .up, .down, .count:
            return .done
        case let .replaced(generations):
            for (i, g) in generations.enumerated() where i < m.instances.count && m.instances[i].generation <= g {
                return .failed("\(name).\(i) was not replaced: the restart was interrupted")
            }
            return .done
        }
    }
}
