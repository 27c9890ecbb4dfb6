import Glibc
import RingmasterCore
import Systemd

// The per-instance view on D-Bus: the Service property `InstanceStates` (docs/dbus.md).
// Read only when asked for (Get; it is left out of GetAll and GetManagedObjects), so its cost —
// CPU and memory read per instance — is paid by the client that wants it, never by an exit.

extension InstanceProcess {
    /// Its main process ended (`pid`), or a spawn made none (nil).
    func noteEnd(pid: Int32?) {
        lastPID = pid
        lastExitRealtime = realtimeNow()
    }
}

extension ServiceSlot {
    /// `InstanceStates`' element: (instance, pid, state, health, restarts, last exit reason,
    /// last exit code, last exit status, last pid, last exit time, start time, next restart
    /// time, CPU ns, memory bytes, failure reason); times are CLOCK_REALTIME µs, 0 for none.
    static let instanceStateSignature = "(uussussiuttttts)"

    /// Every instance of the service, by number (a rolling restart's extra one and instances
    /// being scaled away included while they are there).
    func instanceStates(_ supervisor: Supervisor) -> BusValue {
        let machine = self.machine
        let clock = WallClock()
        var rows: [BusValue] = []
        rows.reserveCapacity(machine.instances.count)
        for instance in machine.instances {
            let view = instance.view
            let process = processes[view.instance]
            let metrics = view.pid.map { instanceMetrics(pid: $0, cgroup: process?.cgroup, delegated: supervisor.cgroups != nil) }
                ?? ProcessMetrics()
            rows.append(.structure([
                .uint32(UInt32(clamping: view.instance)),
                .uint32(UInt32(bitPattern: view.pid ?? 0)),
                .string(view.state.rawValue),
                .string(view.health?.rawValue ?? ""),
                .uint32(UInt32(clamping: view.restarts)),
                .string(view.lastExitReason?.rawValue ?? ""),
                .string(view.lastExit?.code.rawValue ?? ""),
                .int32(view.lastExit?.status ?? 0),
                .uint32(UInt32(bitPattern: process?.lastPID ?? 0)),
                .uint64(process?.lastExitRealtime ?? 0),
                .uint64(view.startedAt.map(clock.wall) ?? 0),
                .uint64(view.restartAt.map(clock.wall) ?? 0),
                .uint64(metrics.cpuNSec),
                .uint64(metrics.memoryBytes),
                .string(view.failureReason ?? ""),
            ]))
        }
        return .array(element: Self.instanceStateSignature, rows)
    }

    /// CPU time and memory of one instance: from its own cgroup where delegated (every process
    /// of it, and the CPU time of those that ended; memory.current with the memory
    /// controller), else from /proc over its main process and descendants.
    private func instanceMetrics(pid: Int32, cgroup: InstanceCgroup?, delegated: Bool) -> ProcessMetrics {
        guard delegated, let cgroup else { return ProcessMetrics.of(pids: [pid], descendants: true) }
        let cpu = cgroup.cpuUsageNSec
        let memory = CgroupFS.readMemoryCurrent(cgroup.path)
        if let cpu, let memory { return ProcessMetrics(cpuNSec: cpu, memoryBytes: memory) }
        let counted = ProcessMetrics.of(pids: cgroup.pids, descendants: false)
        return ProcessMetrics(cpuNSec: cpu ?? counted.cpuNSec, memoryBytes: memory ?? counted.memoryBytes)
    }

    /// The limits each instance runs under, as config keys and values (`Limits`).
    var limitEntries: BusValue {
        .array(element: "(ss)", machine.config.limits.configEntries.map { .structure([.string($0.key), .string($0.value)]) })
    }
}

/// Monotonic times of the core as CLOCK_REALTIME µs, both clocks read once.
private struct WallClock {
    let monotonic = monotonicNow()
    let now = realtimeNow()

    func wall(_ t: USec) -> USec {
        t <= monotonic ? now &- (monotonic - t) : now &+ (t - monotonic)
    }
}
