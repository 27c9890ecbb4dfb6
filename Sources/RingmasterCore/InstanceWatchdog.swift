// The service watchdog of one instance (`watchdog = "DURATION"`), as systemd's WatchdogSec=:
// the timer is armed once the instance is ready (start-up is `ready-timeout`'s business), each
// WATCHDOG=1 re-arms it, a miss aborts the process with SIGABRT (SIGKILL after
// `stop-timeout`), reason `watchdog`. WATCHDOG=trigger aborts at once; WATCHDOG_USEC=N sets
// the period of the current process from now on (0: no watchdog), both as systemd honours them
// for any service, with or without WatchdogSec=. A service that never sends these costs nothing.
import Glibc

/// What a process of an instance sent about its watchdog (sd_notify(3)).
public enum WatchdogMessage: Equatable, Sendable {
    /// WATCHDOG=1
    case ping
    /// WATCHDOG=trigger
    case trigger
    /// WATCHDOG_USEC=N
    case period(USec)

    /// The watchdog messages of one sd_notify datagram's line, nil for any other line.
    public init?(notifyLine line: Substring) {
        if line == "WATCHDOG=1" {
            self = .ping
        } else if line == "WATCHDOG=trigger" {
            self = .trigger
        } else if line.hasPrefix("WATCHDOG_USEC="), let usec = USec(line.dropFirst(14)) {
            self = .period(usec)
        } else {
            return nil
        }
    }
}

extension Signals {
    /// What a missed watchdog sends first (systemd's WatchdogSignal= default).
    public static let watchdogSignal: Int32 = SIGABRT
    /// Sent after the stop signal of a liveness abort: a stopped process can then act on it.
    public static let continueSignal: Int32 = SIGCONT
}

extension InstanceMachine {
    /// The period that applies to the current process: its own WATCHDOG_USEC=, else the config's.
    public func watchdogPeriod(config: ServiceConfig) -> USec? {
        guard let period = watchdogOverride ?? config.watchdog, period > 0 else { return nil }
        return period
    }

    /// Arms (or re-arms from `now`) the watchdog of a ready process, if it has one.
    mutating func armWatchdog(config: ServiceConfig, now: USec, into actions: inout [InstanceAction]) {
        guard let period = watchdogPeriod(config: config) else {
            disarmWatchdog(into: &actions)
            return
        }
        watchdogArmed = true
        actions.append(.armTimer(.watchdog, deadline: now &+ period))
    }

    mutating func disarmWatchdog(into actions: inout [InstanceAction]) {
        guard watchdogArmed else { return }
        watchdogArmed = false
        actions.append(.cancelTimer(.watchdog))
    }

    mutating func handleWatchdog(_ message: WatchdogMessage, config: ServiceConfig, now: USec,
                                 into actions: inout [InstanceAction]) {
        guard pid != nil, state == .starting || state == .running else { return }
        switch message {
        case .ping:
            // Before READY=1 a ping arms nothing: the watchdog starts with readiness.
            if state == .running { armWatchdog(config: config, now: now, into: &actions) }
        case .trigger:
            beginAbort(.watchdog, signal: Signals.watchdogSignal, config: config, now: now, into: &actions)
        case let .period(usec):
            watchdogOverride = usec
            if state == .running { armWatchdog(config: config, now: now, into: &actions) }
        }
    }
}
