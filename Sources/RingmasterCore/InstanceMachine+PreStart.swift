// `pre-start`: a command run to completion before each spawn of an instance. The instance
// stays `starting` while it runs; the `preStart` action asks the runtime to run it, its
// result comes back as `preStartSpawned`/`preStartFailed`, its end as `preStartExited`.
// Exit 0: the spawn goes ahead (`spawn`). Anything else: a failed start with the reason
// `pre-start`, restarted by policy (backoff, start limit). A stop or restart while it runs
// signals it as it would the main process (`signal`, SIGKILL after `stop-timeout`).

extension InstanceMachine {
    mutating func handlePreStart(_ event: InstanceEvent, config: ServiceConfig, now: USec,
                                 into actions: inout [InstanceAction]) {
        switch event {
        case let .preStartSpawned(pid):
            guard inPreStart, preStartPid == nil, self.pid == nil else { return }
            preStartPid = pid
            // Told to stop while its spawn was under way: it gets its stop signal now.
            if state == .stopping { actions.append(.signal(config.stopSignal)) }

        case let .preStartFailed(reason):
            guard inPreStart, preStartPid == nil, pid == nil else { return }
            inPreStart = false
            preStartEnded(.exited(127), failure: "pre-start: \(reason)", config: config, now: now, into: &actions)

        case let .preStartExited(status):
            guard inPreStart, preStartPid != nil, pid == nil else { return }
            preStartPid = nil
            inPreStart = false
            // Whatever the pre-start left in its group goes with it.
            actions.append(.killAll)
            preStartEnded(status, failure: status.isSuccess ? nil : "pre-start \(status)",
                          config: config, now: now, into: &actions)

        default:
            return
        }
    }

    private mutating func preStartEnded(_ status: ExitStatus, failure: String?, config: ServiceConfig, now: USec,
                                        into actions: inout [InstanceAction]) {
        switch state {
        case .starting:
            if let failure {
                lastExit = status
                lastExitReason = .preStart
                handleFailure(reason: failure, ranFor: 0, config: config, now: now, into: &actions)
            } else {
                actions.append(.spawn)
            }
        case .stopping:
            // Stopped (or restarted) while the pre-start ran: not a failure of the instance.
            actions.append(.cancelTimer(.stopTimeout))
            if wanted {
                spawn(config: config, now: now, manual: true, into: &actions)
            } else {
                enter(.stopped, now: now, into: &actions)
            }
        default:
            break
        }
    }
}
