import Glibc
import RingmasterRuntime
import Systemd
import XCTest

/// The sd-event wrapper with real children, timers and signals. Waits are bounded by
/// deadlines on the loop itself, never sleeps.
final class EventLoopTests: XCTestCase {
    private var previousMask = sigset_t()

    override func setUp() {
        // As ringmasterd does first thing: SIGCHLD (sd-event requires it even for pidfd
        // watches) and the signals the tests deliver, blocked in this thread.
        var set = sigset_t()
        sigemptyset(&set)
        for s in [SIGCHLD, SIGUSR1, SIGUSR2] { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, &previousMask)
    }

    override func tearDown() {
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
    }

    func testChildWatchedByPidfdReportsItsExitStatus() throws {
        let loop = try EventLoop()
        let child = try PosixSpawner().spawn(sh("exit 3"))
        var exit: ChildExit?
        let watch = try loop.watchChild(pidfd: child.pidfd) { exit = $0 }
        try loop.run { exit != nil }
        XCTAssertEqual(exit, ChildExit(pid: child.pid, code: Int32(CLD_EXITED), status: 3))
        XCTAssertEqual(exit?.description, "exited 3")
        XCTAssertFalse(watch.isActive)
        // The loop reaped it: no zombie left for anyone else.
        XCTAssertEqual(waitpid(child.pid, nil, WNOHANG), -1)
        XCTAssertEqual(errno, ECHILD)
    }

    func testSignalSentThroughTheWatchKillsTheChild() throws {
        let loop = try EventLoop()
        let child = try PosixSpawner().spawn(SpawnRequest(argv: ["sleep", "30"]))
        var exit: ChildExit?
        let watch = try loop.watchChild(pidfd: child.pidfd) { exit = $0 }
        try watch.sendSignal(SIGTERM)
        try loop.run { exit != nil }
        XCTAssertEqual(exit, ChildExit(pid: child.pid, code: Int32(CLD_KILLED), status: SIGTERM))
        XCTAssertEqual(exit?.codeName, "killed")
    }

    func testWatchFailureLeavesThePidfdToTheCaller() throws {
        SignalMask.unblock([SIGCHLD])
        defer { SignalMask.block([SIGCHLD]) }
        let loop = try EventLoop()
        let child = try PosixSpawner().spawn(sh("exit 0"))
        XCTAssertThrowsError(try loop.watchChild(pidfd: child.pidfd) { _ in }) { error in
            XCTAssertEqual("\(error)", "sd_event_add_child_pidfd: Device or resource busy")
        }
        XCTAssertEqual(fcntl(child.pidfd, F_GETFD) >= 0, true, "still open")
        var status: Int32 = 0
        XCTAssertEqual(waitpid(child.pid, &status, 0), child.pid)
        close(child.pidfd)
    }

    func testTimersFireInDeadlineOrder() throws {
        let loop = try EventLoop()
        let start = loop.now
        var fired: [Int] = []
        let sources = try [30, 10, 20].map { ms in
            try loop.timer(at: start + UInt64(ms) * 1_000, accuracy: 1) { fired.append(ms) }
        }
        try loop.run { fired.count == 3 }
        XCTAssertEqual(fired, [10, 20, 30])
        XCTAssertGreaterThanOrEqual(loop.now, start + 30_000)
        XCTAssertTrue(sources.allSatisfy { !$0.isActive })
    }

    func testCancelledTimerDoesNotFire() throws {
        let loop = try EventLoop()
        var fired: [String] = []
        let cancelled = try loop.timer(at: loop.now + 1_000) { fired.append("cancelled") }
        let kept = try loop.timer(at: loop.now + 5_000) { fired.append("kept") }
        cancelled.cancel()
        try loop.run { !fired.isEmpty }
        XCTAssertEqual(fired, ["kept"])
        _ = kept
    }

    func testSignalsAreDeliveredToTheirHandler() throws {
        let loop = try EventLoop()
        var received: [Int32] = []
        let usr1 = try loop.onSignal(SIGUSR1) { received.append($0) }
        let usr2 = try loop.onSignal(SIGUSR2) { received.append($0) }
        // Thread-directed, so no other (unblocked) XCTest thread can take it.
        pthread_kill(pthread_self(), SIGUSR2)
        try loop.run { received.count == 1 }
        pthread_kill(pthread_self(), SIGUSR1)
        try loop.run { received.count == 2 }
        XCTAssertEqual(received, [SIGUSR2, SIGUSR1])
        _ = (usr1, usr2)
    }

    func testReadableAndExitCode() throws {
        let loop = try EventLoop()
        let pipe = Pipe()
        defer { close(pipe.read); close(pipe.write) }
        var got = ""
        let source = try loop.onReadable(fd: pipe.read) { _ in
            var byte: UInt8 = 0
            _ = read(pipe.read, &byte, 1)
            got.append(Character(UnicodeScalar(byte)))
            if got == "ok" { loop.exit(7) }
        }
        let writer = try loop.onDefer { _ = write(pipe.write, "ok", 2) }
        XCTAssertEqual(try loop.run(), 7)
        XCTAssertEqual(got, "ok")
        _ = (source, writer)
    }

    func testHandlerMayDropItsOwnSource() throws {
        let loop = try EventLoop()
        let pipe = Pipe()
        defer { close(pipe.read); close(pipe.write) }
        XCTAssertEqual(write(pipe.write, "x", 1), 1) // stays readable: level-triggered
        var calls = 0
        var source: EventSource?
        source = try loop.onReadable(fd: pipe.read) { _ in
            calls += 1
            source = nil // frees the source (and this closure's box) from inside its handler
        }
        var ticks = 0
        let ticker = try loop.onPost { ticks += 1 }
        var timerFired = false
        let timer = try loop.timer(at: loop.now + 20_000) { timerFired = true }
        try loop.run { timerFired }
        XCTAssertEqual(calls, 1)
        XCTAssertNil(source)
        _ = (ticker, timer)
    }

    func testAddingASignalThatIsNotBlockedFailsWithContext() throws {
        let loop = try EventLoop()
        XCTAssertThrowsError(try loop.onSignal(SIGWINCH) { _ in }) { error in
            XCTAssertEqual("\(error)", "sd_event_add_signal(\(SIGWINCH)): Device or resource busy")
        }
    }
}
