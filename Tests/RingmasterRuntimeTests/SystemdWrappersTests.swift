import Glibc
import RingmasterRuntime
import Systemd
import XCTest

/// Journal, SystemdNotify and SignalMask, in the process environment systemd would give us.
final class SystemdWrappersTests: XCTestCase {
    private func withEnvironment(_ values: [String: String?], _ body: () throws -> Void) rethrows {
        var saved: [String: String?] = [:]
        for (name, value) in values {
            saved[name] = getenv(name).map { String(cString: $0) }
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
        defer {
            for (name, value) in saved {
                if let value { setenv(name, value, 1) } else { unsetenv(name) }
            }
        }
        try body()
    }

    func testStderrIsJournalComparesDeviceAndInode() {
        var st = stat()
        XCTAssertEqual(fstat(2, &st), 0)
        withEnvironment(["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"]) {
            XCTAssertTrue(Journal.stderrIsJournal)
        }
        withEnvironment(["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino + 1)"]) {
            XCTAssertFalse(Journal.stderrIsJournal)
        }
        withEnvironment(["JOURNAL_STREAM": "garbage"]) {
            XCTAssertFalse(Journal.stderrIsJournal)
        }
        withEnvironment(["JOURNAL_STREAM": nil]) {
            XCTAssertFalse(Journal.stderrIsJournal)
        }
    }

    func testJournalRejectsBadFieldsWhateverJournaldDoes() {
        XCTAssertFalse(Journal.send([("lower-case", "rejected")]))
        XCTAssertFalse(Journal.send([]))
    }

    /// Only where journald runs (the integration session): the child's lines land under
    /// its own _PID, and the daemon's entries carry the RINGMASTER_* fields.
    func testWithRealJournald() throws {
        guard Journal.isReachable else {
            return XCTFail("needs journald: run `make check`, which runs these tests inside the private systemd session (scripts/systemd-session)")
        }
        let tag = "ringmaster-test-\(getpid())"
        var request = sh("echo '<4>hello from the child'; echo oops >&2")
        request.journalIdentifier = tag
        let child = try runToCompletion(request)
        XCTAssertEqual(child.stdout, "", "went to journald, not the fallback")
        XCTAssertTrue(Journal.send([("MESSAGE", "hello from the daemon"), ("PRIORITY", "6"),
                                    ("SYSLOG_IDENTIFIER", tag), ("RINGMASTER_SERVICE", "web")]))

        func journal(_ matches: [String]) throws -> String {
            try runToCompletion(SpawnRequest(argv: ["journalctl", "-q", "-o", "cat", "-t", tag] + matches,
                                             environment: ["PATH=/usr/bin:/bin"])).stdout
        }
        let deadline = monotonicNow() + 10_000_000
        var childLines = "", daemonLines = ""
        repeat {
            childLines = try journal(["_PID=\(child.pid)"])
            daemonLines = try journal(["RINGMASTER_SERVICE=web"])
            if childLines.contains("oops") && !daemonLines.isEmpty { break }
            _ = poll(nil, 0, 100)
        } while monotonicNow() < deadline
        XCTAssertEqual(childLines, "hello from the child\noops\n")
        XCTAssertEqual(daemonLines, "hello from the daemon\n")
        let warning = try journal(["_PID=\(child.pid)", "PRIORITY=4"])
        XCTAssertEqual(warning, "hello from the child\n", "<4> prefix honoured")
    }

    func testJournalFieldNames() {
        for valid in ["MESSAGE", "PRIORITY", "RINGMASTER_EXIT_STATUS", "A1"] {
            XCTAssertTrue(Journal.isValidFieldName(valid), valid)
        }
        for invalid in ["", "lower", "_PID", "1ST", "WITH-DASH", String(repeating: "A", count: 65)] {
            XCTAssertFalse(Journal.isValidFieldName(invalid), invalid)
        }
    }

    func testNotifyGoesToNOTIFY_SOCKET() throws {
        let socket = try NotifySocket()
        withEnvironment(["NOTIFY_SOCKET": socket.address]) {
            XCTAssertTrue(SystemdNotify.isAvailable)
            XCTAssertTrue(SystemdNotify.send("READY=1\nSTATUS=2 running"))
            var p = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            XCTAssertEqual(poll(&p, 1, 5_000), 1)
            let messages = socket.receive()
            XCTAssertEqual(messages.map(\.message), ["READY=1\nSTATUS=2 running"])
            XCTAssertEqual(messages.first?.pid, getpid())
        }
        withEnvironment(["NOTIFY_SOCKET": nil]) {
            XCTAssertFalse(SystemdNotify.isAvailable)
            XCTAssertFalse(SystemdNotify.send("READY=1"))
        }
    }

    func testWatchdogFromEnvironment() throws {
        try withEnvironment(["WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "\(getpid())", "NOTIFY_SOCKET": nil]) {
            XCTAssertTrue(SystemdNotify.watchdogEnabled)
            XCTAssertEqual(SystemdNotify.watchdogInterval, 2_000_000)
            let loop = try EventLoop()
            XCTAssertTrue(try loop.setWatchdog(true))
        }
        try withEnvironment(["WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
            XCTAssertFalse(SystemdNotify.watchdogEnabled)
            XCTAssertFalse(try EventLoop().setWatchdog(true))
        }
    }

    func testNoListenFDsWithoutSocketActivation() {
        withEnvironment(["LISTEN_FDS": nil, "LISTEN_PID": nil, "LISTEN_FDNAMES": nil]) {
            XCTAssertTrue(SystemdNotify.listenFDs().isEmpty)
        }
        // Meant for another process: ignored (and unset).
        withEnvironment(["LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "http"]) {
            XCTAssertTrue(SystemdNotify.listenFDs().isEmpty)
            XCTAssertNil(getenv("LISTEN_FDS"))
        }
    }

    func testSignalMaskBlockAndUnblock() {
        XCTAssertFalse(SignalMask.isBlocked(SIGUSR2))
        SignalMask.block([SIGUSR2, SIGURG])
        XCTAssertTrue(SignalMask.isBlocked(SIGUSR2))
        XCTAssertTrue(SignalMask.isBlocked(SIGURG))
        SignalMask.unblock([SIGUSR2, SIGURG])
        XCTAssertFalse(SignalMask.isBlocked(SIGUSR2))
    }

    func testSystemdErrorDescription() {
        XCTAssertEqual("\(SystemdError("sd_event_add_io", errno: EBADF))", "sd_event_add_io: Bad file descriptor")
    }
}
