import CSystemd
import Glibc

/// The daemon's one loop (sd-event): it owns every fd, timer, signal and child watch.
/// Single-threaded: create, use and run it on one thread.
///
/// Sources come back as `EventSource` objects that own their sd_event_source and the Swift
/// handler; dropping the object (or `cancel()`) disables and frees the source.
public final class EventLoop {
    /// The sd_event; for the other wrappers of this module (e.g. attaching an sd_bus).
    let handle: OpaquePointer

    public init() throws {
        var e: OpaquePointer?
        try check(sd_event_new(&e), "sd_event_new")
        handle = e!
    }

    deinit {
        sd_event_unref(handle)
    }

    /// Runs until `exit(_:)`; returns the code given there.
    @discardableResult
    public func run() throws -> Int32 {
        try check(sd_event_loop(handle), "sd_event_loop")
    }

    /// Runs at most one iteration, waiting up to `timeout` µs (`.max`: forever).
    /// Returns whether anything was dispatched. For tests and for draining at shutdown.
    @discardableResult
    public func runOnce(timeout: UInt64) throws -> Bool {
        try check(sd_event_run(handle, timeout), "sd_event_run") > 0
    }

    /// Asks the loop to stop after the current iteration; `run()` then returns `code`.
    public func exit(_ code: Int32) {
        _ = sd_event_exit(handle, code)
    }

    /// Whether `exit(_:)` has been called and the loop has finished.
    public var isFinished: Bool {
        sd_event_get_state(handle) == Int32(SD_EVENT_FINISHED)
    }

    /// CLOCK_MONOTONIC in µs, as of the start of the current iteration (the time handlers
    /// should use, so that every decision of one iteration sees the same instant).
    public var now: UInt64 {
        var usec: UInt64 = 0
        if sd_event_now(handle, CLOCK_MONOTONIC, &usec) < 0 {
            var ts = timespec()
            clock_gettime(CLOCK_MONOTONIC, &ts)
            usec = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
        }
        return usec
    }

    /// Lets the loop itself send WATCHDOG=1 at half the interval systemd asked for in
    /// $WATCHDOG_USEC — so a stalled loop stops the pings. Returns whether a watchdog is
    /// in effect (false when systemd requested none).
    @discardableResult
    public func setWatchdog(_ enabled: Bool) throws -> Bool {
        try check(sd_event_set_watchdog(handle, enabled ? 1 : 0), "sd_event_set_watchdog") > 0
    }

    // MARK: Sources

    /// Calls `handler` with the signal number each time `signo` arrives. The caller must
    /// have blocked `signo` in every thread (`SignalMask.block`), else this fails (EBUSY).
    public func onSignal(_ signo: Int32, handler: @escaping (Int32) -> Void) throws -> EventSource {
        try makeSource(handler, "sd_event_add_signal(\(signo))") { s, userdata in
            sd_event_add_signal(handle, s, signo, { _, info, userdata in
                let signo = Int32(bitPattern: info?.pointee.ssi_signo ?? 0)
                HandlerBox<(Int32) -> Void>.from(userdata).handler(signo)
                return 0
            }, userdata)
        }
    }

    /// Calls `handler` with the epoll revents whenever `fd` is ready for `events`
    /// (default EPOLLIN). The fd stays the caller's: close it after dropping the source.
    public func onReadable(fd: Int32, events: UInt32 = UInt32(EPOLLIN.rawValue),
                           handler: @escaping (_ revents: UInt32) -> Void) throws -> EventSource {
        try makeSource(handler, "sd_event_add_io") { s, userdata in
            sd_event_add_io(handle, s, fd, events, { _, _, revents, userdata in
                HandlerBox<(UInt32) -> Void>.from(userdata).handler(revents)
                return 0
            }, userdata)
        }
    }

    /// A one-shot CLOCK_MONOTONIC timer at `deadline` (µs, same clock as `now`), allowed
    /// to fire up to `accuracy` µs late so that wakeups can coalesce.
    public func timer(at deadline: UInt64, accuracy: UInt64 = 1_000,
                      handler: @escaping () -> Void) throws -> EventSource {
        try makeSource(handler, "sd_event_add_time") { s, userdata in
            sd_event_add_time(handle, s, CLOCK_MONOTONIC, deadline, max(accuracy, 1), { _, _, userdata in
                HandlerBox<() -> Void>.from(userdata).handler()
                return 0
            }, userdata)
        }
    }

    /// Watches a child by its pidfd and calls `handler` once when it has exited (the loop
    /// reaps it right after the handler). On success the source owns `pidfd` and closes it
    /// when freed; if this throws, `pidfd` is still the caller's to close.
    /// sd-event insists that SIGCHLD be blocked (EBUSY otherwise), even for pidfds.
    public func watchChild(pidfd: Int32, handler: @escaping (ChildExit) -> Void) throws -> EventSource {
        let source = try makeSource(handler, "sd_event_add_child_pidfd") { s, userdata in
            sd_event_add_child_pidfd(handle, s, pidfd, WEXITED, { _, info, userdata in
                let exit = ChildExit(pid: info.map { csd_siginfo_pid($0) } ?? 0,
                                     code: info?.pointee.si_code ?? 0,
                                     status: info.map { csd_siginfo_status($0) } ?? 0)
                HandlerBox<(ChildExit) -> Void>.from(userdata).handler(exit)
                return 0
            }, userdata)
        }
        let r = sd_event_source_set_child_pidfd_own(source.handle, 1)
        if r < 0 {
            source.cancel() // not owning yet: the pidfd stays open for the caller
            throw SystemdError("sd_event_source_set_child_pidfd_own", errno: -r)
        }
        return source
    }

    /// Runs `handler` once, at the next iteration (before the loop waits again).
    public func onDefer(handler: @escaping () -> Void) throws -> EventSource {
        try makeSource(handler, "sd_event_add_defer") { s, userdata in
            sd_event_add_defer(handle, s, { _, userdata in
                HandlerBox<() -> Void>.from(userdata).handler()
                return 0
            }, userdata)
        }
    }

    /// Runs `handler` after every iteration in which some other source was dispatched
    /// (e.g. to publish a coalesced status once per batch of events).
    public func onPost(handler: @escaping () -> Void) throws -> EventSource {
        try makeSource(handler, "sd_event_add_post") { s, userdata in
            sd_event_add_post(handle, s, { _, userdata in
                HandlerBox<() -> Void>.from(userdata).handler()
                return 0
            }, userdata)
        }
    }

    /// Runs `handler` once when the loop is exiting (after `exit(_:)`).
    public func onExit(handler: @escaping () -> Void) throws -> EventSource {
        try makeSource(handler, "sd_event_add_exit") { s, userdata in
            sd_event_add_exit(handle, s, { _, userdata in
                HandlerBox<() -> Void>.from(userdata).handler()
                return 0
            }, userdata)
        }
    }

    /// Boxes `handler` as the source's userdata (retained), creates the source with `add`,
    /// and hands the box's release to sd-event's destroy callback, so the closure lives
    /// exactly as long as the sd_event_source — even when freed from inside its own handler.
    private func makeSource<Handler>(
        _ handler: Handler, _ operation: @autoclosure () -> String,
        _ add: (UnsafeMutablePointer<OpaquePointer?>, UnsafeMutableRawPointer) -> Int32
    ) throws -> EventSource {
        let userdata = Unmanaged.passRetained(HandlerBox(handler)).toOpaque()
        var source: OpaquePointer?
        let r = add(&source, userdata)
        guard r >= 0, let source else {
            Unmanaged<AnyObject>.fromOpaque(userdata).release()
            throw SystemdError(operation(), errno: r < 0 ? -r : EINVAL)
        }
        let d = sd_event_source_set_destroy_callback(source, { userdata in
            if let userdata { Unmanaged<AnyObject>.fromOpaque(userdata).release() }
        })
        if d < 0 {
            sd_event_source_disable_unref(source)
            Unmanaged<AnyObject>.fromOpaque(userdata).release()
            throw SystemdError("sd_event_source_set_destroy_callback", errno: -d)
        }
        return EventSource(source)
    }
}

/// One registration in an `EventLoop`. Owning: deinit (or `cancel()`) disables and
/// frees the sd_event_source, which releases the handler.
public final class EventSource {
    private(set) var handle: OpaquePointer?

    init(_ handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        cancel()
    }

    /// Disables and frees the source now; idempotent.
    public func cancel() {
        if let h = handle {
            handle = nil
            sd_event_source_disable_unref(h)
        }
    }

    /// Whether the source will still fire: false after `cancel()`, after a one-shot
    /// timer or defer fired, and after a watched child's exit was dispatched.
    public var isActive: Bool {
        guard let h = handle else { return false }
        var enabled: Int32 = 0
        return sd_event_source_get_enabled(h, &enabled) >= 0 && enabled != Int32(SD_EVENT_OFF)
    }

    /// Lower runs first among sources ready in the same iteration (default 0).
    public func setPriority(_ priority: Int64) throws {
        guard let h = handle else { return }
        try check(sd_event_source_set_priority(h, priority), "sd_event_source_set_priority")
    }

    /// A name for sd-event's debug logging.
    public func setDescription(_ description: String) {
        guard let h = handle else { return }
        _ = sd_event_source_set_description(h, description)
    }

    /// Re-arms a timer source for `deadline` (CLOCK_MONOTONIC µs) as a one-shot.
    public func reschedule(at deadline: UInt64) throws {
        guard let h = handle else { throw SystemdError("sd_event_source_set_time", errno: ESTALE) }
        try check(sd_event_source_set_time(h, deadline), "sd_event_source_set_time")
        try check(sd_event_source_set_enabled(h, Int32(SD_EVENT_ONESHOT)), "sd_event_source_set_enabled")
    }

    /// For an `onReadable` source: the epoll events it waits for from now on (EPOLLIN,
    /// EPOLLOUT), one epoll_ctl instead of a new source.
    public func setIOEvents(_ events: UInt32) throws {
        guard let h = handle else { throw SystemdError("sd_event_source_set_io_events", errno: ESTALE) }
        try check(sd_event_source_set_io_events(h, events), "sd_event_source_set_io_events")
    }

    /// For a `watchChild` source: sends `signo` to the child through its pidfd (no pid
    /// reuse race). Fails with ESRCH once the child has been reaped.
    public func sendSignal(_ signo: Int32) throws {
        guard let h = handle else { throw SystemdError("sd_event_source_send_child_signal", errno: ESRCH) }
        try check(sd_event_source_send_child_signal(h, signo, nil, 0), "sd_event_source_send_child_signal")
    }
}

/// How a watched child ended, as waitid(2) reports it.
public struct ChildExit: Equatable, Sendable, CustomStringConvertible {
    public var pid: Int32
    /// CLD_EXITED, CLD_KILLED or CLD_DUMPED.
    public var code: Int32
    /// The exit status for CLD_EXITED, else the signal number.
    public var status: Int32

    public init(pid: Int32, code: Int32, status: Int32) {
        self.pid = pid; self.code = code; self.status = status
    }

    /// "exited", "killed" or "dumped" — systemd's names, as used on D-Bus and in logs.
    public var codeName: String {
        switch code {
        case Int32(CLD_EXITED): return "exited"
        case Int32(CLD_KILLED): return "killed"
        case Int32(CLD_DUMPED): return "dumped"
        default: return "unknown"
        }
    }

    /// Exited with status 0.
    public var isSuccess: Bool { code == Int32(CLD_EXITED) && status == 0 }

    public var description: String {
        code == Int32(CLD_EXITED) ? "exited \(status)" : "\(codeName) by signal \(status)"
    }
}

/// The Swift closure behind a source's userdata pointer.
private final class HandlerBox<Handler> {
    let handler: Handler
    init(_ handler: Handler) { self.handler = handler }

    static func from(_ userdata: UnsafeMutableRawPointer?) -> HandlerBox {
        Unmanaged<HandlerBox>.fromOpaque(userdata!).takeUnretainedValue()
    }
}
