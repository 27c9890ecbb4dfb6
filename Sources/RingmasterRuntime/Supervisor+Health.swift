import Glibc
import RingmasterCore
import Systemd

/// What the runtime learns about an instance's health from its cgroup, for the core to decide
/// on: OOM kills (memory.events `oom_kill`).
extension Supervisor {
    /// Before the spawn of an instance with a memory limit (whose cgroup has memory.events):
    /// its cgroup's OOM-kill count so far (a cgroup is reused by the next process of the
    /// instance while the last one's is not yet removed). Nothing for other services.
    func noteOOMBaseline(_ process: InstanceProcess, limits: ResourceLimits) {
        process.oomKillsAtSpawn = nil
        guard limits.memoryMax != nil || limits.memoryHigh != nil, let cgroup = process.cgroup else { return }
        process.oomKillsAtSpawn = cgroup.oomKills ?? 0
    }

    /// An instance's process was SIGKILLed: if its cgroup counts an OOM kill since the spawn,
    /// tell the core (`causeNoted(.oomKill)`) before it handles the exit. (The kernel counts the
    /// kill in memory.events as it sends the SIGKILL, before the victim can exit.)
    func noteOOMKill(_ status: ExitStatus, process: InstanceProcess, slot: ServiceSlot, index: Int) {
        guard status.code == .killed, status.status == SIGKILL, let before = process.oomKillsAtSpawn,
              let cgroup = process.cgroup, let now = cgroup.oomKills, now > before else { return }
        process.oomKillsAtSpawn = now
        handle(.causeNoted(.oomKill), instance: index, of: slot)
    }
}

/// The daemon's one inotify descriptor for `memory-restart`: a watch on each such instance's
/// memory.events, which the kernel marks modified whenever a count in it grows — a breach of
/// memory.high among them (cgroup-v2.rst, "memory.events"). No descriptor per instance, no
/// polling: nothing happens while memory stays below memory.high.
final class MemoryWatch {
    let fd: Int32
    var source: EventSource?
    /// instances by watch descriptor
    var instances: [Int32: (ServiceID, Int)] = [:]

    init() throws(RuntimeError) {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw RuntimeError("inotify_init1", errno: errno) }
    }

    deinit { source = nil; close(fd) }

    /// The watch descriptors of the pending events (each once), without blocking.
    func drain() -> [Int32] {
        var seen: [Int32] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var offset = 0
            buffer.withUnsafeBytes { raw in
                while offset + MemoryLayout<inotify_event>.size <= n {
                    let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let len = raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)
                    if !seen.contains(wd) { seen.append(wd) }
                    offset += MemoryLayout<inotify_event>.size + Int(len)
                }
            }
        }
        return seen
    }
}

extension Supervisor {
    /// Before the spawn of an instance of a `memory-restart` service: its memory.events
    /// watched (the cgroup has the memory controller: memory-high, which memory-restart
    /// requires, was just written into it). A problem here fails the spawn: the service never
    /// runs unwatched while its config says otherwise.
    func watchMemory(_ process: InstanceProcess, slot: ServiceSlot, index: Int,
                     config: ServiceConfig) -> String? {
        guard config.memoryRestart != nil else { return nil }
        guard let cgroup = process.cgroup else {
            return "memory-restart needs the memory controller, which ringmasterd cannot use: it has no delegated cgroup (see its start-up log)"
        }
        do {
            let watch: MemoryWatch
            if let memoryWatch { watch = memoryWatch } else {
                watch = try MemoryWatch()
                watch.source = try loop.onReadable(fd: watch.fd) { [weak self] _ in self?.memoryEventsChanged() }
                memoryWatch = watch
            }
            let wd = inotify_add_watch(watch.fd, cgroup.path + "/memory.events", UInt32(IN_MODIFY))
            guard wd >= 0 else {
                return "memory-restart: watching \(cgroup.path)/memory.events: \(errnoString(errno))"
            }
            process.memoryWatch = wd
            watch.instances[wd] = (slot.id, index)
        } catch {
            return "memory-restart: \(error)"
        }
        return nil
    }

    /// The instance's process is gone: its watch goes (the next spawn adds it again).
    func unwatchMemory(_ process: InstanceProcess) {
        guard let wd = process.memoryWatch else { return }
        process.memoryWatch = nil
        guard let watch = memoryWatch else { return }
        watch.instances[wd] = nil
        _ = inotify_rm_watch(watch.fd, wd)
    }

    /// memory.events of some instances changed: their memory.current, to the core.
    private func memoryEventsChanged() {
        guard let watch = memoryWatch else { return }
        for wd in watch.drain() {
            guard let (id, index) = watch.instances[wd], let slot = slots[id],
                  let bytes = slot.processes[index]?.cgroup.flatMap({ CgroupFS.readMemoryCurrent($0.path) }) else { continue }
            handle(.memorySampled(bytes: bytes), instance: index, of: slot)
        }
    }

    /// The core's `sampleMemory`: the instance's memory.current now, fed back after the
    /// step's other actions.
    func sampleMemory(_ process: InstanceProcess) -> InstanceEvent? {
        guard let cgroup = process.cgroup, let bytes = CgroupFS.readMemoryCurrent(cgroup.path) else { return nil }
        return .memorySampled(bytes: bytes)
    }
}
