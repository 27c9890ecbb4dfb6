// `ringctl reload NAME` / `Service.Reload()`: the service's `reload-signal` to each instance's
// main process (nginx, gunicorn: HUP re-reads their own config), nothing restarted. The core
// says whether and to which processes; the runtime sends.

extension Stack {
    /// The signal and the main processes to send it to (by instance), or why not: no such
    /// service, no `reload-signal`, no process, shutting down. Instances being stopped are left
    /// out (they are on their way out).
    public func reloadTargets(_ name: String) throws(CommandError) -> (signal: Int32, pids: [(instance: Int, pid: Int32)]) {
        if shuttingDown { throw .shuttingDown }
        let id = try require(name)
        guard let e = entry(id) else { throw .noSuchService(name) }
        guard let signal = e.machine.config.reloadSignal else { throw .noReloadSignal(name) }
        let pids = e.machine.instances.compactMap { i -> (instance: Int, pid: Int32)? in
            guard let pid = i.pid, i.state == .starting || i.state == .running else { return nil }
            return (i.index, pid)
        }
        guard !pids.isEmpty else { throw .failed("\(name) has no process to reload") }
        return (signal, pids)
    }
}
