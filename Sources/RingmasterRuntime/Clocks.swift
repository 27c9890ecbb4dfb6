import Glibc
import RingmasterCore

// Clocks read outside the event loop. Inside a dispatch, use `loop.now` (sd_event_now: one
// consistent monotonic time per iteration) instead.

/// CLOCK_REALTIME in µs, for timestamps users read (StateChangeTimestamp).
func realtimeNow() -> USec {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return USec(ts.tv_sec) * USec.perSecond + USec(ts.tv_nsec) / 1000
}

/// CLOCK_MONOTONIC in µs, for deadlines once the loop has stopped (draining console output).
func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}
