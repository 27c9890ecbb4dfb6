// Memory restarts of a service (`memory-restart`), rolling: an instance whose memory stayed
// above the figure (`InstanceMachine.memoryRestartDue`) is replaced gracefully — its stop
// signal, then a new process at once, reason `memory-restart` — and the next due instance of
// the same service only once that replacement is ready. The others keep serving meanwhile
// (a shared socket stays with the daemon, so a connection waits in its backlog, never refused).
// Not while a rolling restart replaces everything anyway.

public struct MemoryRestarts: Equatable, Sendable {
    /// due instances, in the order they became due
    public internal(set) var queue: [Int] = []
    /// the instance being replaced and its spawn count when told to
    public internal(set) var current: (index: Int, generation: Int)? = nil

    public init() {}

    public static func == (a: MemoryRestarts, b: MemoryRestarts) -> Bool {
        a.queue == b.queue && a.current?.index == b.current?.index && a.current?.generation == b.current?.generation
    }
}

extension Stack {
    /// After an event of instance `instance` of a service with `memory-restart`: queue it if it
    /// became due, and start the next replacement if none is under way.
    mutating func stepMemoryRestarts(_ id: ServiceID, instance: Int, now: USec, into out: inout [StackAction]) {
        // Read in place: a copy of the instances alive across `feed` would copy every one of them.
        guard let p = position[id] else { return }
        let count = entries[p].machine.instances.count
        func at(_ i: Int) -> InstanceMachine { entries[p].machine.instances[i] }
        if instance < count, at(instance).memoryRestartDue, !entries[p].memoryRestarts.queue.contains(instance),
           entries[p].memoryRestarts.current?.index != instance {
            entries[p].memoryRestarts.queue.append(instance)
        }
        // The replacement under way: done once its new process is ready; over if it gave up.
        if let (index, generation) = entries[p].memoryRestarts.current {
            if index < count {
                let i = at(index)
                switch i.state {
                case .running where i.generation > generation, .failed, .stopped, .exited: break
                default: return
                }
            }
            entries[p].memoryRestarts.current = nil
        }
        guard entries[p].rolling == nil, entries[p].machine.wanted, !shuttingDown else { return }
        while !entries[p].memoryRestarts.queue.isEmpty {
            let index = entries[p].memoryRestarts.queue.removeFirst()
            guard index < count, at(index).memoryRestartDue, at(index).state == .running else { continue }
            entries[p].memoryRestarts.current = (index, at(index).generation)
            let cfg = entries[p].machine.config
            let figure = cfg.memoryRestart.map { ResourceLimits.Size.bytes($0).description } ?? "?"
            out.append(.note(id, StackNote(.info, "memory-restart",
                "\(cfg.name).\(index): memory above memory-restart (\(figure)) for \(formatDuration(cfg.memoryRestartWindow)): restarting it")))
            feed(.gracefulRestart(.memoryRestart), to: id, instance: index, now: now, into: &out)
            return
        }
    }
}
