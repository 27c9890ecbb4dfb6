import CRingShims
import Foundation
import Glibc
import RingmasterRuntime
import XCTest

/// The three ways ring_spawn can start a child (spawn.c): the usual CLONE_VM|CLONE_VFORK
/// (the child runs in this process's memory until exec, failures come back in a result
/// slot), and the two fallbacks with copy-on-write children and a report pipe — clone3 as a
/// fork (switched on by `ring_spawn_use_clone_vm(0)`), and fork + pidfd_open
/// (`ring_spawn_use_clone3(0)`).
enum SpawnPath: CaseIterable {
    case cloneVM, clone3, fork

    func run<T>(_ body: () throws -> T) rethrows -> T {
        switch self {
        case .cloneVM: break
        case .clone3: ring_spawn_use_clone_vm(0)
        case .fork: ring_spawn_use_clone3(0)
        }
        defer {
            ring_spawn_use_clone_vm(1)
            ring_spawn_use_clone3(1)
        }
        return try body()
    }
}

/// The child's own failures, and what the parent is left with after many spawns: every path,
/// checked from outside (the errors, the fd table, the signal state, /proc) and from inside
/// the child (what it prints).
final class SpawnPathTests: XCTestCase {
    func testEveryPathReportsTheChildsFailures() throws {
        for path in SpawnPath.allCases {
            try path.run {
                XCTAssertThrowsError(try runToCompletion(SpawnRequest(argv: ["definitely-not-a-program"],
                                                                      environment: ["PATH=/usr/bin:/bin"]))) {
                    XCTAssertEqual("\($0)", "exec definitely-not-a-program: No such file or directory", "\(path)")
                }
                XCTAssertThrowsError(try runToCompletion(SpawnRequest(argv: ["/usr"]))) {
                    XCTAssertEqual("\($0)", "exec /usr: Permission denied", "\(path)")
                }
                var chdir = sh("true")
                chdir.workingDirectory = "/nope"
                XCTAssertThrowsError(try runToCompletion(chdir)) {
                    XCTAssertEqual("\($0)", "chdir /nope: No such file or directory", "\(path)")
                }
                var badFD = sh("true")
                badFD.extraFDs = [closedFD()]
                XCTAssertThrowsError(try runToCompletion(badFD)) {
                    XCTAssertEqual($0 as? SpawnError, SpawnError(stage: "dup2", errno: EBADF), "\(path)")
                }
                // And a success right after, through the same path.
                XCTAssertEqual(try? runToCompletion(sh("echo ok")).stdout, "ok\n", "\(path)")
            }
            XCTAssertEqual(childrenOfThisProcess(), [:], "every failed child reaped (\(path))")
        }
    }

    func testEveryPathGivesTheChildItsOwnListenPIDAndJournalStream() throws {
        let dir = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socketPath = dir + "/stdout"
        let listener = try bindListenSocket(.unix(path: socketPath))
        defer { close(listener) }

        for path in SpawnPath.allCases {
            var request = sh("""
                echo "$LISTEN_PID $$ $WATCHDOG_PID"
                [ "$JOURNAL_STREAM" = "$(stat -L -c %d:%i /proc/$$/fd/2)" ] && echo stream-matches-stderr
                """)
            request.listenPID = true
            request.watchdogPID = true
            request.environment.append("WATCHDOG_PID=1") // replaced by the child's own
            request.journalIdentifier = "web"
            request.journalSocketPath = socketPath
            let process = try path.run { try PosixSpawner().spawn(request) }
            let stdoutStream = accept(listener, nil, nil)
            let stderrStream = accept(listener, nil, nil)
            let text = Pipe.readAll(fd: stdoutStream)
            close(stderrStream)
            var status: Int32 = 0
            waitpid(process.pid, &status, 0)
            close(process.pidfd)
            XCTAssertEqual(text, "web\n\n6\n1\n0\n0\n0\n\(process.pid) \(process.pid) \(process.pid)\nstream-matches-stderr\n", "\(path)")
        }
    }

    /// With CLONE_VM the child runs in this process's memory: it must fill in LISTEN_PID and
    /// drop JOURNAL_STREAM (journald unreachable here) in its own copy, not in the request.
    func testTheChildWritesNothingOfTheRequest() throws {
        let entries = ["A=1", "LISTEN_PID=", "JOURNAL_STREAM=", "B=2"]
        let strings = entries.map { strdup($0)! }
        defer { strings.forEach { free($0) } }
        var envp: [UnsafeMutablePointer<CChar>?] = strings + [nil]
        let script = "echo \"$A $LISTEN_PID ${JOURNAL_STREAM-unset} $B\""
        let argvStrings = ["/bin/sh", "-c", script].map { (s: String) in strdup(s)! }
        defer { argvStrings.forEach { free($0) } }
        var argv: [UnsafeMutablePointer<CChar>?] = argvStrings + [nil]
        let identifier = strdup("web")!, socketPath = strdup("/nonexistent/stdout")!
        defer { free(identifier); free(socketPath) }

        for path in SpawnPath.allCases {
            let out = Pipe()
            var pid: pid_t = 0, pidfd: Int32 = -1, errorNumber: Int32 = 0
            var stage: UnsafePointer<CChar>? = nil
            let result = argv.withUnsafeMutableBufferPointer { argvBuffer in
                envp.withUnsafeMutableBufferPointer { envpBuffer in
                    var c = ring_spawn_request()
                    c.file = UnsafePointer(argvBuffer[0])
                    c.argv = UnsafePointer(argvBuffer.baseAddress)
                    c.envp = UnsafePointer(envpBuffer.baseAddress)
                    c.listen_pid_index = 1
                    c.journal_stream_index = 2
                    c.watchdog_pid_index = -1
                    c.stdin_fd = -1
                    c.stdout_fd = out.write
                    c.stderr_fd = 2
                    c.journal_identifier = UnsafePointer(identifier)
                    c.journal_socket = UnsafePointer(socketPath)
                    c.cgroup_fd = -1
                    return path.run { ring_spawn(&c, &pid, &pidfd, &errorNumber, &stage) }
                }
            }
            close(out.write)
            XCTAssertEqual(result, 0, "\(path)")
            XCTAssertEqual(out.readAll(), "1 \(pid) unset 2\n", "\(path)")
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            close(pidfd)
            XCTAssertEqual(envp.map { $0.map { String(cString: $0) } }, entries.map { $0 } + [nil], "\(path)")
            XCTAssertEqual(zip(envp, strings).allSatisfy { $0 == $1 }, true, "the same strings (\(path))")
        }
    }

    /// A spawn storm, successes and failures mixed: no fd, child or zombie left behind, and
    /// the parent's signal mask and handlers as they were — its handler still works.
    func testAStormOfSpawnsLeavesTheParentAsItWas() throws {
        let previousHandler = installUSR1Handler()
        defer { _ = sigaction(SIGUSR1, previousHandler, nil) }
        var extra = sigset_t(), previousMask = sigset_t()
        sigemptyset(&extra)
        sigaddset(&extra, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &extra, &previousMask)
        defer { pthread_sigmask(SIG_SETMASK, &previousMask, nil) }

        let fdsBefore = openFDs()
        let maskBefore = currentMask()
        let handlerBefore = handler(of: SIGUSR1)
        let pipeBefore = handler(of: SIGPIPE)

        for (path, count) in [(SpawnPath.cloneVM, 500), (.clone3, 100), (.fork, 100)] {
            try path.run {
                for i in 0..<count {
                    switch i % 5 {
                    case 3:
                        XCTAssertThrowsError(try PosixSpawner().spawn(SpawnRequest(argv: ["/nonexistent/tool"])))
                    case 4:
                        var request = SpawnRequest(argv: ["/bin/true"])
                        request.workingDirectory = "/nope"
                        XCTAssertThrowsError(try PosixSpawner().spawn(request))
                    default:
                        let child = try PosixSpawner().spawn(SpawnRequest(argv: ["/bin/true"]))
                        var info = siginfo_t()
                        XCTAssertEqual(waitid(idtype_t(rawValue: 3) /* P_PIDFD */, id_t(child.pidfd), &info, WEXITED), 0)
                        close(child.pidfd)
                    }
                }
            }
            XCTAssertEqual(openFDs(), fdsBefore, "no fd leaked (\(path))")
            XCTAssertEqual(childrenOfThisProcess(), [:], "no child or zombie left (\(path))")
        }
        XCTAssertEqual(currentMask(), maskBefore)
        XCTAssertEqual(handler(of: SIGUSR1), handlerBefore)
        XCTAssertEqual(handler(of: SIGPIPE), pipeBefore)
        let count = usr1Count
        raise(SIGUSR1)
        XCTAssertEqual(usr1Count, count + 1, "the parent's handler still runs in the parent")
    }

    /// The child blocks every signal until it has reset every disposition: a signal that
    /// reaches it before exec must kill it by default — never run the parent's handler, which
    /// with CLONE_VM would run on the parent's memory. The child is held before exec by a
    /// stand-in journald whose backlog is full (up to 2 s of connect retries, which the
    /// daemon never asks for).
    func testASignalBeforeExecNeverRunsTheParentsHandler() throws {
        let previousHandler = installUSR1Handler()
        defer { _ = sigaction(SIGUSR1, previousHandler, nil) }
        try withStuckJournalSocket { socketPath in
            let ownExe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            for path in SpawnPath.allCases {
                let countBefore = usr1Count
                let caughtBeforeExec = Atomic()
                let signaller = Thread {
                    let deadline = monotonicNow() + 2_000_000
                    while monotonicNow() < deadline {
                        for (pid, _) in childrenOfThisProcess() {
                            guard (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) == ownExe else { continue }
                            kill(pid, SIGUSR1)
                            caughtBeforeExec.set()
                            return
                        }
                        usleep(1000)
                    }
                }
                signaller.start()
                var request = SpawnRequest(argv: ["/bin/sleep", "10"])
                request.journalIdentifier = "web"
                request.journalSocketPath = socketPath
                request.journalConnectRetries = 100
                let child = try path.run { try PosixSpawner().spawn(request) }
                var status: Int32 = 0
                waitpid(child.pid, &status, 0)
                close(child.pidfd)
                XCTAssertTrue(caughtBeforeExec.isSet, "the signal was sent before exec (\(path))")
                XCTAssertEqual(status & 0x7f, SIGUSR1, "killed by the default action (\(path))")
                XCTAssertEqual(usr1Count, countBefore, "the parent's handler did not run (\(path))")
            }
        }
    }

    /// The child stack is shared by all spawns of the process: spawns from several threads at
    /// once take turns, and each child gets its own argv and environment.
    func testConcurrentSpawnsFromSeveralThreads() {
        let failures = Atomic()
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            for i in 0..<50 {
                let request = SpawnRequest(argv: ["/bin/sh", "-c", "echo $X"], environment: ["X=\(thread)-\(i)"])
                if (try? runToCompletion(request).stdout) != "\(thread)-\(i)\n" { failures.set() }
            }
        }
        XCTAssertFalse(failures.isSet)
        XCTAssertEqual(childrenOfThisProcess(), [:])
    }

    /// An environment larger than the child stack's usual 64 KiB (the child copies the
    /// pointer array onto it): the stack grows, and later spawns still work.
    func testALargeEnvironmentGrowsTheChildStack() throws {
        let environment = (0..<20_000).map { "V\($0)=\($0)" }
        let result = try runToCompletion(SpawnRequest(argv: ["/usr/bin/env"], environment: environment))
        XCTAssertEqual(result.stdout.split(separator: "\n").count, 20_000)
        XCTAssertEqual(result.stdout.split(separator: "\n").last, "V19999=19999")
        XCTAssertEqual(try runToCompletion(sh("echo small")).stdout, "small\n")
    }
}

// MARK: - helpers

/// A flag shared between threads.
final class Atomic: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

nonisolated(unsafe) var usr1Count = 0

/// Installs a SIGUSR1 handler that counts; returns the previous disposition.
private func installUSR1Handler() -> UnsafeMutablePointer<sigaction> {
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in usr1Count += 1 }
    sigemptyset(&action.sa_mask)
    let previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 1)
    previous.initialize(to: sigaction())
    _ = sigaction(SIGUSR1, &action, previous)
    return previous
}

private func handler(of signo: Int32) -> UInt {
    var action = sigaction()
    _ = sigaction(signo, nil, &action)
    return unsafeBitCast(action.__sigaction_handler.sa_handler, to: UInt.self)
}

private func currentMask() -> [UInt] {
    var mask = sigset_t()
    pthread_sigmask(SIG_SETMASK, nil, &mask)
    return withUnsafeBytes(of: mask.__val) { Array($0.bindMemory(to: UInt.self)) }
}

/// This process's fd numbers with what each points to.
private func openFDs() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.compactMap { name in
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + name)).map { name + " " + $0 }
    }
    .filter { !$0.hasSuffix("/proc/\(getpid())/fd") } // the directory listing itself
    .sorted()
}

/// (pid, state) of every process whose parent is this one, zombies included.
func childrenOfThisProcess() -> [Int32: String] {
    let me = getpid()
    var children: [Int32: String] = [:]
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { continue }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        if fields.count > 1, Int32(fields[1]) == me { children[pid] = String(fields[0]) }
    }
    return children
}

/// An fd number that is not open (and that nothing the spawn opens will take).
private func closedFD() -> Int32 {
    var fd: Int32 = 999
    while fcntl(fd, F_GETFD) != -1 { fd -= 1 }
    return fd
}
