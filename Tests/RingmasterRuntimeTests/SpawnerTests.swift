import CRingShims
import Foundation
import Glibc
import RingmasterRuntime
import XCTest

/// The real spawner against real /bin/sh children: what the child sees is checked from
/// inside the child (its /proc entries, its environment), not inferred.
final class SpawnerTests: XCTestCase {
    func testSocketAtFD3OthersClosedStdinIsDevNull() throws {
        var pair: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair), 0)
        defer { close(pair[0]); close(pair[1]) }
        // An inheritable fd in the daemon must not reach the child.
        let leaky = open("/dev/null", O_RDONLY)
        XCTAssertGreaterThanOrEqual(leaky, 0)
        defer { close(leaky) }

        // ls itself (exec'd, so the very process we spawned) lists its fd table; it adds
        // one fd of its own for the directory it reads.
        var request = sh("exec ls -l /proc/self/fd/")
        request.extraFDs = [pair[1]]
        let result = try runToCompletion(request)

        var table: [Int: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.components(separatedBy: " -> ")
            guard parts.count == 2, let fd = Int(parts[0].split(separator: " ").last ?? "") else { continue }
            table[fd] = parts[1]
        }
        let lsOwn = table.filter { $0.value.hasPrefix("/proc/") }.map(\.key)
        XCTAssertEqual(lsOwn.count, 1, result.stdout)
        lsOwn.forEach { table[$0] = nil }
        XCTAssertEqual(table.keys.sorted(), [0, 1, 2, 3], result.stdout + result.stderr)
        XCTAssertEqual(table[0], "/dev/null")
        XCTAssertEqual(table[3], "socket:[\(inode(of: pair[1]))]")
        XCTAssertEqual(result.exitCode, 0)
    }

    func testManyExtraFDsLandInOrderWhateverTheirNumbers() throws {
        // 64 sockets passed in reverse order: the targets 3..66 cover the numbers the test
        // process hands out, so many sources sit at other targets' places, which a naive
        // dup2 sequence would clobber.
        let count = 64
        var sockets: [Int32] = []
        func newSocket() -> Int32 {
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            XCTAssertGreaterThanOrEqual(fd, 0)
            return fd
        }
        // Put sockets at every free number inside the target range first (whatever this test
        // process already has open), then the rest wherever they land.
        for n in Int32(3)..<Int32(3 + count) where fcntl(n, F_GETFD) == -1 {
            let fd = newSocket()
            XCTAssertEqual(dup2(fd, n), n)
            _ = fcntl(n, F_SETFD, FD_CLOEXEC)
            close(fd)
            sockets.append(n)
        }
        while sockets.count < count { sockets.append(newSocket()) }
        defer { sockets.forEach { close($0) } }
        let passed = Array(sockets.reversed())
        let misplaced = passed.enumerated().filter { (3..<(3 + count)).contains(Int($0.element)) && Int($0.element) != 3 + $0.offset }
        XCTAssertFalse(misplaced.isEmpty, "the test needs sources inside the target range: \(passed)")

        var request = sh("i=3; while [ $i -lt \(3 + count) ]; do readlink /proc/$$/fd/$i; i=$((i + 1)); done; test -e /proc/$$/fd/\(3 + count) && echo leaked")
        request.extraFDs = passed
        let result = try runToCompletion(request)
        let expected = passed.map { "socket:[\(inode(of: $0))]" }.joined(separator: "\n") + "\n"
        XCTAssertEqual(result.stdout, expected, result.stderr)
    }

    func testEnvironmentIsExactAndListenPIDIsTheChildsPID() throws {
        var request = SpawnRequest(argv: ["env"], environment: ["A=1", "PATH=/usr/bin:/bin", "LISTEN_PID=stale"])
        request.listenPID = true
        let result = try runToCompletion(request)
        XCTAssertEqual(result.stdout, "A=1\nPATH=/usr/bin:/bin\nLISTEN_PID=\(result.pid)\n")
    }

    /// The daemon runs with a raised fd limit; its children get the usual soft limit back.
    func testChildGetsTheGivenSoftFileLimit() throws {
        var request = sh("ulimit -Sn")
        request.nofileSoftLimit = 512
        XCTAssertEqual(try runToCompletion(request).stdout, "512\n")
        var limits = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limits), 0)
        XCTAssertEqual(try runToCompletion(sh("ulimit -Sn")).stdout,
                       limits.rlim_cur == rlim_t.max ? "unlimited\n" : "\(limits.rlim_cur)\n", "nil: inherited")
    }

    func testWorkingDirectory() throws {
        var request = SpawnRequest(argv: ["pwd"], environment: ["PATH=/usr/bin:/bin"])
        request.workingDirectory = "/usr/share"
        XCTAssertEqual(try runToCompletion(request).stdout, "/usr/share\n")
    }

    func testChdirFailureIsReported() {
        var request = sh("true")
        request.workingDirectory = "/nope"
        XCTAssertThrowsError(try runToCompletion(request)) { error in
            XCTAssertEqual("\(error)", "chdir /nope: No such file or directory")
            XCTAssertEqual((error as? SpawnError)?.stage, "chdir")
        }
    }

    func testOwnSessionAndProcessGroup() throws {
        let result = try runToCompletion(sh("exec cat /proc/self/stat"))
        // pid (comm) state ppid pgrp session ... — comm has no spaces here.
        let fields = result.stdout.split(separator: " ")
        XCTAssertEqual(fields.count > 6, true, result.stdout)
        XCTAssertEqual(Int32(fields[0]), result.pid)
        XCTAssertEqual(Int32(fields[4]), result.pid, "pgrp")
        XCTAssertEqual(Int32(fields[5]), result.pid, "session")
    }

    func testSignalMaskEmptyAndSIGPIPEDefaultWhateverTheParentDid() throws {
        var blocked = sigset_t(), previousMask = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGCHLD)
        sigaddset(&blocked, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &blocked, &previousMask)
        let previousPipe = signal(SIGPIPE, SIG_IGN)
        defer {
            signal(SIGPIPE, previousPipe)
            pthread_sigmask(SIG_SETMASK, &previousMask, nil)
        }

        let result = try runToCompletion(SpawnRequest(argv: ["/bin/cat", "/proc/self/status"]))
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first { $0.hasPrefix("SigBlk:") }, "SigBlk:\t0000000000000000")
        XCTAssertEqual(lines.first { $0.hasPrefix("SigIgn:") }, "SigIgn:\t0000000000000000")
    }

    func testExecOfMissingProgram() {
        XCTAssertThrowsError(try runToCompletion(SpawnRequest(argv: ["definitely-not-a-program"],
                                                              environment: ["PATH=/usr/bin:/bin"]))) { error in
            XCTAssertEqual("\(error)", "exec definitely-not-a-program: No such file or directory")
            XCTAssertEqual(error as? SpawnError, SpawnError(stage: "exec", errno: ENOENT, file: "definitely-not-a-program"))
        }
    }

    func testPermissionDeniedWinsOverLaterNotFoundInPATH() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/tool"
        _ = FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\necho hi\n".utf8),
                                       attributes: [.posixPermissions: 0o644])

        let viaPATH = SpawnRequest(argv: ["tool"], environment: ["PATH=\(dir):/nonexistent"])
        XCTAssertThrowsError(try runToCompletion(viaPATH)) { error in
            XCTAssertEqual("\(error)", "exec tool: Permission denied")
        }
        let direct = SpawnRequest(argv: [path])
        XCTAssertThrowsError(try runToCompletion(direct)) { error in
            XCTAssertEqual("\(error)", "exec \(path): Permission denied")
        }
    }

    func testPATHSearchTriesEachDirectoryInOrder() throws {
        let first = makeTemporaryDirectory(), second = makeTemporaryDirectory()
        defer {
            try? FileManager.default.removeItem(atPath: first)
            try? FileManager.default.removeItem(atPath: second)
        }
        _ = FileManager.default.createFile(atPath: second + "/tool", contents: Data("#!/bin/sh\necho second \"$@\"\n".utf8),
                                       attributes: [.posixPermissions: 0o755])
        let request = SpawnRequest(argv: ["tool", "a b"], environment: ["PATH=/nonexistent:\(first):\(second)"])
        XCTAssertEqual(try runToCompletion(request).stdout, "second a b\n")
    }

    func testDefaultSearchPathWithoutPATH() throws {
        XCTAssertEqual(try runToCompletion(SpawnRequest(argv: ["echo", "x"])).stdout, "x\n")
    }

    func testJournalFallsBackToGivenFDsWhenJournaldIsUnreachable() throws {
        var request = sh("echo out; echo err >&2; echo \"stream=${JOURNAL_STREAM-unset}\"")
        request.journalIdentifier = "web"
        request.journalSocketPath = "/nonexistent/journal/stdout"
        let result = try runToCompletion(request)
        XCTAssertEqual(result.stdout, "out\nstream=unset\n")
        XCTAssertEqual(result.stderr, "err\n")
    }

    /// journald alive but stuck (backlog full): the child must not hang in connect —
    /// that would stall the daemon, which waits for the exec — but fall back quickly.
    func testJournalWithFullBacklogFallsBackWithoutHanging() throws {
        try withStuckJournalSocket { socketPath in
            var request = sh("echo out; echo err >&2")
            request.journalIdentifier = "web"
            request.journalSocketPath = socketPath
            let started = monotonicNow()
            let result = try runToCompletion(request)
            XCTAssertLessThan(monotonicNow() - started, 2_000_000)
            XCTAssertEqual(result.stdout, "out\n")
            XCTAssertEqual(result.stderr, "err\n")
        }
    }

    /// A stand-in journald: the child must connect twice (stdout first), write
    /// sd_journal_stream_fd's header, and set JOURNAL_STREAM to its stderr's dev:ino.
    func testJournalStreamsConnectFromTheChildWithTheStreamHeader() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socketPath = dir + "/stdout"
        let listener = try bindListenSocket(.unix(path: socketPath))
        defer { close(listener) }

        var request = sh("""
            echo "<5>hello"
            echo oops >&2
            [ "$JOURNAL_STREAM" = "$(stat -L -c %d:%i /proc/$$/fd/2)" ] && echo stream-matches-stderr
            """)
        request.journalIdentifier = "web"
        request.journalSocketPath = socketPath
        let out = Pipe(), err = Pipe()
        request.stdout = out.write
        request.stderr = err.write
        let process = try PosixSpawner().spawn(request)
        close(out.write)
        close(err.write)

        let stdoutStream = accept(listener, nil, nil)
        let stderrStream = accept(listener, nil, nil)
        XCTAssertGreaterThanOrEqual(stdoutStream, 0)
        XCTAssertGreaterThanOrEqual(stderrStream, 0)
        let stdoutText = Pipe.readAll(fd: stdoutStream)
        let stderrText = Pipe.readAll(fd: stderrStream)
        var status: Int32 = 0
        waitpid(process.pid, &status, 0)
        close(process.pidfd)

        XCTAssertEqual(stdoutText, "web\n\n6\n1\n0\n0\n0\n<5>hello\nstream-matches-stderr\n")
        XCTAssertEqual(stderrText, "web\n\n3\n1\n0\n0\n0\noops\n")
        XCTAssertEqual(out.readAll(), "", "fallback pipe unused")
        XCTAssertEqual(err.readAll(), "")
    }

    func testPidfdSignalHelper() throws {
        let child = try PosixSpawner().spawn(SpawnRequest(argv: ["sleep", "30"]))
        defer { close(child.pidfd) }
        XCTAssertEqual(ring_pidfd_send_signal(child.pidfd, SIGKILL), 0)
        var status: Int32 = 0
        XCTAssertEqual(waitpid(child.pid, &status, 0), child.pid)
        XCTAssertEqual(status & 0x7f, SIGKILL)
        // Reaped: the pidfd now refuses signals rather than hitting a recycled pid.
        XCTAssertEqual(ring_pidfd_send_signal(child.pidfd, SIGKILL), -1)
        XCTAssertEqual(errno, ESRCH)
    }

    func testEmptyArgvIsRejected() {
        XCTAssertThrowsError(try PosixSpawner().spawn(SpawnRequest(argv: []))) { error in
            XCTAssertEqual((error as? SpawnError)?.stage, "exec")
        }
    }
}
