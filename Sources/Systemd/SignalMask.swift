import Glibc

/// The daemon's signal dispositions. `block` is called first thing in main, before any
/// thread exists, so that every later thread inherits the mask and sd-event can take
/// the signals through a signalfd (`EventLoop.onSignal`, `watchChild`).
public enum SignalMask {
    /// Adds `signals` to the calling thread's blocked set.
    public static func block(_ signals: [Int32]) {
        change(SIG_BLOCK, signals)
    }

    /// Removes `signals` from the calling thread's blocked set.
    public static func unblock(_ signals: [Int32]) {
        change(SIG_UNBLOCK, signals)
    }

    /// Sets the disposition of `signo` to SIG_IGN (SIGPIPE in the daemon: a write to a
    /// closed socket must fail with EPIPE, not kill us). Children get SIG_DFL back.
    public static func ignore(_ signo: Int32) {
        _ = signal(signo, SIG_IGN)
    }

    /// Whether `signo` is blocked in the calling thread.
    public static func isBlocked(_ signo: Int32) -> Bool {
        var current = sigset_t()
        sigemptyset(&current)
        pthread_sigmask(SIG_SETMASK, nil, &current)
        return sigismember(&current, signo) == 1
    }

    private static func change(_ how: Int32, _ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for s in signals { sigaddset(&set, s) }
        pthread_sigmask(how, &set, nil)
    }
}
