import CRingShims
import Glibc
import Systemd

/// Gives back the executable's pages that start-up and each burst of control traffic faulted
/// in, once the daemon has been quiet for a while.
///
/// Start-up (config parsing, the first spawns, the bus set-up) and the control path run a few
/// MiB of the executable's text once; the kernel maps it 64 KiB at a time (fault-around) and
/// nothing unmaps it, so it stays in the RSS although idling never runs it — 3.5 of the
/// daemon's 9 MiB idle RSS (contrib/bench/analysis.md). A trim `madvise(MADV_DONTNEED)`s the
/// executable's mappings that `Smaps.trimmable` picks: not writable and without a single
/// anonymous page, i.e. exactly the file's bytes. The pages stay in the page cache; whatever
/// runs later faults them back as minor faults. Data, bss and RELRO with relocated pages are
/// never touched (dropping their private copies would revert them to the file's bytes).
///
/// When: `delay` after the last activity the daemon reports with `noteActivity()` (every
/// supervisor change — spawns, exits, READY=1, a reload — and every incoming D-Bus message).
/// One one-shot timer, pushed back by each activity: it fires once per quiet period and is
/// not armed again until the next activity, so an idle daemon gets no wake-up from it.
public final class WorkingSetTrim {
    /// The quiet period before a trim, unless `delayVariable` says otherwise.
    public static let defaultDelayMS: UInt64 = 2000
    /// `RINGMASTER_TRIM_DELAY_MS`: the quiet period in ms, for tests and measurements only
    /// (the integration tests use a short one; "0" turns trimming off, to measure without it).
    /// Not a user setting: the default is what the daemon should do. Read once at start;
    /// children do not inherit it (`ChildEnvironment.daemonOnly`).
    public static let delayVariable = "RINGMASTER_TRIM_DELAY_MS"

    private let loop: EventLoop
    private let log: EventLog
    /// µs
    private let delay: UInt64
    private var timer: EventSource?
    private var stopped = false
    /// trims done so far (the first is "trim 1" in the log)
    private(set) var count = 0

    public init(loop: EventLoop, log: EventLog, delayMS: UInt64) {
        self.loop = loop
        self.log = log
        self.delay = delayMS * 1000
    }

    /// The delay `RINGMASTER_TRIM_DELAY_MS=value` asks for, in ms: nil (unset) or anything
    /// not a number gives the default; 0 means no trimming (`nil` result).
    public static func delayMS(fromEnvironment value: String?) -> UInt64? {
        guard let value, let ms = UInt64(value) else { return defaultDelayMS }
        return ms == 0 ? nil : ms
    }

    /// Something ran: the trim is (re)scheduled `delay` from now.
    public func noteActivity() {
        guard !stopped else { return }
        let deadline = loop.now + delay
        do {
            if let timer {
                try timer.reschedule(at: deadline)
            } else {
                // Up to a quarter of the delay late: lets the wake-up coalesce with another.
                let t = try loop.timer(at: deadline, accuracy: max(delay / 4, 1000)) { [unowned self] in self.trim() }
                t.setDescription("working-set-trim")
                timer = t
            }
        } catch {
            stopped = true
            log.write(LogEvent(.warning, "trim", "working-set trim disabled: cannot arm its timer: \(error)"))
        }
    }

    /// No trim from now on (shutting down).
    public func stop() {
        stopped = true
        timer?.cancel()
        timer = nil
    }

    /// At most this many mappings are dropped per trim (an executable has a handful).
    private static let maxMappings = 16

    private func trim() {
        guard !stopped else { return }
        // Whatever runs after the first madvise faults its page back in, 64 KiB at a time
        // (fault-around): so everything that allocates, frees or logs happens in `prepare`,
        // and only the madvise calls over a stack buffer follow.
        withUnsafeTemporaryAllocation(of: UInt.self, capacity: 2 * Self.maxMappings) { ranges in
            let n = prepare(ranges)
            // The heap's free pages too (reading smaps alone leaves ~0.14 MiB of them).
            malloc_trim(0)
            var failure: Int32 = 0
            for i in 0..<n {
                if madvise(UnsafeMutableRawPointer(bitPattern: ranges[2 * i]), Int(ranges[2 * i + 1]), MADV_DONTNEED) != 0 {
                    failure = errno
                }
            }
            if failure != 0 {
                log.write(LogEvent(.warning, "trim", "madvise(MADV_DONTNEED) over the executable failed: \(errnoString(failure))"))
            }
        }
    }

    /// Reads smaps, picks what to drop, logs it (first, so that the logging code is dropped
    /// too), and writes (start, length) pairs into `ranges`; returns how many.
    @inline(never)
    private func prepare(_ ranges: UnsafeMutableBufferPointer<UInt>) -> Int {
        // As smaps spells it: " (deleted)" appended to both if the file was replaced since.
        guard let executable = readLink("/proc/self/exe"),
              let text = Smaps.readHead("/proc/self/smaps", through: executable) else { return 0 }
        let mappings = Smaps.trimmable(Smaps.parse(text), file: executable).prefix(Self.maxMappings)
        guard !mappings.isEmpty else { return 0 }
        count += 1
        let kib = mappings.reduce(0) { $0 + ($1.rssKiB ?? 0) }
        log.write(LogEvent(.debug, "trim", "trim \(count) after \(delay / 1000) ms quiet: dropping \(kib) KiB "
                           + "(\(kib * 1024) bytes) of \(executable), \(mappings.count) clean mapping\(mappings.count == 1 ? "" : "s")"))
        for (i, m) in mappings.enumerated() {
            ranges[2 * i] = m.start
            ranges[2 * i + 1] = m.end - m.start
        }
        return mappings.count
    }
}
