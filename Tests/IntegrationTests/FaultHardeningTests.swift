// The hardening cases of the fault suite (docs/reliability.md, issue 13): what another user
// (uid 65534 through setpriv), another process of the same user, a hostile file or a
// stalled peer can do to the daemon. Quick: `make check` runs them, `make faults` too.
import Foundation
import Glibc
import XCTest

final class FaultHardeningTests: DBusTestCase {
    static let nobody: uid_t = 65534

    /// A python3 script run (as `uid`, if given) that prints one line once it is set up and
    /// then holds what it made until `finish()` closes its stdin.
    final class Helper {
        let process = Process()
        private let input = Pipe(), output = Pipe()
        private(set) var firstLine = ""

        init(_ script: String, arguments: [String] = [], asUser uid: uid_t? = nil) throws {
            let argv = (uid.map { ["setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups"] } ?? [])
                + ["/usr/bin/python3", "-c", script] + arguments  // (not a PATH shim another uid cannot run)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = argv
            process.standardInput = input
            process.standardOutput = output
            try process.run()
            var line: [UInt8] = []
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let data = output.fileHandleForReading.readData(ofLength: 1)
                if data.isEmpty || data.first == 10 { break }
                line += data
            }
            firstLine = String(decoding: line, as: UTF8.self)
        }

        func finish() {
            try? input.fileHandleForWriting.close()
            if !waitUntil(timeout: 5, { !self.process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    private func environ(_ pid: Int32) -> [String: String] { Processes.read(pid)?.environment ?? [:] }

    // MARK: 1. notify sockets no other user can reach or squat

    /// As uid 65534: bind the 2,000 names after an instance's NOTIFY_SOCKET (the abstract
    /// names were predictable) and send it READY=1. The instance, killed, must be replaced
    /// all the same, the datagram refused; the daemon's one socket serves the new instance
    /// too, and goes with the daemon.
    func testAnotherUserCanNeitherSquatNorReachNotifySockets() throws {
        let svc = service("web")
        let daemon = try startBusDaemon("""
            [services.\(svc)]
            command = ["sleep", "100000"]
            restart = "always"
            restart-delay = "0"
            """)
        let first = try requireInstances(1, of: svc, daemon: daemon)[0]!
        let address = try XCTUnwrap(environ(first.pid)["NOTIFY_SOCKET"])
        let squatter = try Helper(#"""
            import socket, sys, errno
            addr, n = sys.argv[1], int(sys.argv[2])
            if addr.startswith("@"):
                base, counter = addr[1:].rsplit("/", 1)
                names = ["\0" + base + "/" + str(int(counter) + i) for i in range(1, n + 1)]
                target = "\0" + addr[1:]
            else:
                d, name = addr.rsplit("/", 1)
                stem, counter = name.rsplit(".", 1)
                names = [d + "/" + stem + "." + str(int(counter) + i) for i in range(1, n + 1)]
                target = addr
            held = []
            for name in names:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                try:
                    s.bind(name); held.append(s)
                except OSError:
                    s.close()
            t = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                t.sendto(b"READY=1\nSTATUS=from nobody", target); sent = "sent"
            except OSError as e:
                sent = errno.errorcode.get(e.errno, str(e.errno))
            print(len(held), sent, flush=True)
            sys.stdin.read()
            """#, arguments: [address, "2000"], asUser: Self.nobody)
        defer { squatter.finish() }
        let words = squatter.firstLine.split(separator: " ")
        XCTAssertEqual(words.count, 2, "squatter said: \(squatter.firstLine)")
        XCTAssertEqual(words.first, "0", "uid 65534 bound names next to \(address)")
        XCTAssertNotEqual(words.last, "sent", "uid 65534 could send to \(address)")
        XCTAssertTrue(address.hasPrefix("/"), "NOTIFY_SOCKET is not a path: \(address)")

        // The directory: ours, 0700.
        let directory = String(address[..<(address.lastIndex(of: "/") ?? address.endIndex)])
        var st = stat()
        XCTAssertEqual(lstat(directory, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o700, "mode of \(directory)")
        XCTAssertEqual(st.st_uid, geteuid())

        // Killed: replaced (the squatted names do not matter), on the same socket.
        let started = Date()
        kill(first.pid, SIGKILL)
        let second = try require("a new instance of \(svc)", timeout: 10) {
            self.instances(of: svc, daemon: daemon)[0].flatMap { $0.pid != first.pid ? $0 : nil }
        }
        let replaced = Date().timeIntervalSince(started)
        let next = try XCTUnwrap(environ(second.pid)["NOTIFY_SOCKET"])
        XCTAssertEqual(next, address, "one notify socket for every instance")
        XCTAssertEqual(access(next, F_OK), 0, "the daemon's socket \(next)")
        XCTAssertEqual(try state(svc), "running")

        XCTAssertEqual(try daemon.terminate(), 0)
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix("notify.\(daemon.pid).") }
        XCTAssertEqual(left, [], "notify sockets left after the daemon exited")
        figure("notify sockets, uid 65534", "names squatted / datagrams delivered", "\(words.first ?? "?") of 2000 / \(words.last ?? "?")")
        figure("notify sockets, uid 65534", "killed instance replaced in", String(format: "%.0f ms", replaced * 1000))
    }

    // MARK: 2. readiness only from the instance's own processes

    /// Service B waits for READY=1. A process of service A, and a shell of the same user, send
    /// READY=1 and STATUS= to B's socket: both ignored. B's own grandchild then speaks for it.
    func testReadinessFromAnotherServiceOrAShellIsIgnored() throws {
        let a = service("a"), b = service("b")
        // (as sd_notify: a leading @ is an abstract name)
        let send = #"import os, socket, sys; a = sys.argv[2]; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(sys.argv[1].encode(), chr(0) + a[1:] if a[0] == chr(64) else a)"#
        let daemon = try startDaemon("""
            [services.\(a)]
            command = ["/bin/sh", "-c", "while [ ! -e b.addr ]; do sleep 0.02; done; python3 -c '\(send)' 'READY=1\\nSTATUS=spoofed by A' \\"$(cat b.addr)\\"; touch a.sent; exec sleep 100000"]

            [services.\(b)]
            ready = "notify"
            command = ["/bin/sh", "-c", "while [ ! -e a.sent ]; do sleep 0.02; done; python3 -c '\(send)' 'STATUS=genuine' \\"$NOTIFY_SOCKET\\"; while [ ! -e go ]; do sleep 0.02; done; python3 -c '\(send); import time; time.sleep(100000)' 'READY=1\\nSTATUS=ready' \\"$NOTIFY_SOCKET\\" & exec sleep 100000"]
            """, mode: .journal)
        let bPID = try requireInstances(1, of: b, daemon: daemon)[0]!.pid
        let address = try XCTUnwrap(environ(bPID)["NOTIFY_SOCKET"])
        // A shell of the user first (same uid as the daemon, not B's).
        let shell = try runCommand(["python3", "-c", send, "READY=1\nSTATUS=spoofed by a shell", address])
        XCTAssertEqual(shell.status, 0, shell.stderr)
        try (address + "\n").write(toFile: dir + "/b.addr", atomically: true, encoding: .utf8)
        // B's own STATUS=genuine comes after both spoofs on the same socket: once it shows,
        // the spoofs were read.
        try require("B's STATUS=genuine", timeout: 10, poll: 0.05) { (try? self.property(b, "StatusText")) as? String == "genuine" }
        XCTAssertEqual(try state(b), "starting", "READY=1 from outside B was taken")
        XCTAssertFalse(daemon.log().contains("\(b): starting -> running"), daemon.log())
        // B's grandchild (a background python of its shell) is B's: taken.
        _ = FileManager.default.createFile(atPath: dir + "/go", contents: nil)
        try require("B running", timeout: 10, poll: 0.05) { (try? self.state(b)) == "running" }
        XCTAssertEqual(try property(b, "StatusText") as? String, "ready")
        XCTAssertEqual(try daemon.terminate(), 0)
        figure("notify attribution", "READY=1 from another service / a user shell", "ignored / ignored; from B's grandchild: taken")
    }

    // MARK: 3. a live listener at a `listen` path

    /// uid 65534 listens at the path in a shared directory with a full backlog: start-up
    /// must fail at once with EADDRINUSE, not block in connect().
    func testAFullBacklogListenerAtAListenPathDoesNotHangTheDaemon() throws {
        let shared = "/tmp/\(prefix)-shared"
        XCTAssertEqual(mkdir(shared, 0o777), 0)
        chmod(shared, 0o1777)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let path = shared + "/app.sock"
        let listener = try Helper(#"""
            import socket, sys
            path = sys.argv[1]
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(path); s.listen(0)
            held = []
            while True:
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.setblocking(False)
                try:
                    c.connect(path); held.append(c)
                except (BlockingIOError, InterruptedError):
                    break
            print("full", len(held), flush=True)
            sys.stdin.read()
            """#, arguments: [path], asUser: Self.nobody)
        defer { listener.finish() }
        XCTAssertTrue(listener.firstLine.hasPrefix("full"), listener.firstLine)
        let svc = service("app")
        let started = Date()
        let daemon = try startDaemon("""
            [sockets.app]
            listen = \(TOML.string(path))

            [services.\(svc)]
            command = ["sleep", "100000"]
            sockets = ["app"]
            """)
        let status = daemon.waitForExit(timeout: 10)
        let took = Date().timeIntervalSince(started)
        XCTAssertNotNil(status, "ringmasterd still runs 10 s after start: blocked on \(path)?")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(daemon.log().contains("Address already in use"), daemon.log())
        figure("live listener at a listen path", "daemon start-up refused in", String(format: "%.0f ms", took * 1000))
    }

    // MARK: 4. config paths that are not regular files

    func testAFIFOOrDevZeroInConfDIsAClearErrorNotAHang() throws {
        let main = try writeConfig("[services.\(service("x"))]\ncommand = [\"true\"]\n")
        try FileManager.default.createDirectory(atPath: dir + "/conf.d", withIntermediateDirectories: true)
        XCTAssertEqual(mkfifo(dir + "/conf.d/a-fifo.toml", 0o644), 0)
        XCTAssertEqual(symlink("/dev/zero", dir + "/conf.d/b-zero.toml"), 0)
        let big = dir + "/conf.d/c-big.toml"
        XCTAssertTrue(FileManager.default.createFile(atPath: big, contents: nil))
        XCTAssertEqual(truncate(big, 17 << 20), 0)
        let started = Date()
        let r = try runCommand([try Binaries.ringctl(), "check", main], timeout: 10)
        let took = Date().timeIntervalSince(started)
        XCTAssertNotEqual(r.status, 0)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix(dir + "/conf.d/a-fifo.toml:1:1:") && $0.contains("not a regular file") }, r.stderr)
        XCTAssertTrue(lines.contains { $0.hasPrefix(dir + "/conf.d/b-zero.toml:1:1:") && $0.contains("not a regular file") }, r.stderr)
        XCTAssertTrue(lines.contains { $0.hasPrefix(big + ":1:1:") && $0.contains("16 MiB") }, r.stderr)
        XCTAssertLessThan(took, 2)
        figure("config path not a regular file", "ringctl check on a FIFO, /dev/zero, 17 MiB", String(format: "3 errors in %.0f ms", took * 1000))
    }

    // MARK: 5. the daemon's per-unit environment stays with it

    func testPerUnitVariablesOfTheDaemonDoNotReachChildren() throws {
        let svc = service("env")
        let perUnit = ["SYSTEMD_EXEC_PID", "FDSTORE", "MEMORY_PRESSURE_WATCH", "MEMORY_PRESSURE_WRITE",
                       "TRIGGER_UNIT", "TRIGGER_PATH", "TRIGGER_TIMER_REALTIME_USEC", "TRIGGER_TIMER_MONOTONIC_USEC",
                       "MONITOR_SERVICE_RESULT", "MONITOR_EXIT_CODE", "MONITOR_EXIT_STATUS", "MONITOR_INVOCATION_ID",
                       "MONITOR_UNIT", "SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS", "MAINPID", "PIDFILE",
                       "CREDENTIALS_DIRECTORY", "REMOTE_ADDR", "REMOTE_PORT", "MANAGERPID", "INVOCATION_ID"]
        var environment = Dictionary(uniqueKeysWithValues: perUnit.map { ($0, "daemon-only") })
        environment["RINGMASTER_TEST_KEPT"] = "kept"
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["sleep", "100000"]
            """, environment: environment)
        let child = try requireInstances(1, of: svc, daemon: daemon)[0]!
        let env = environ(child.pid)
        XCTAssertEqual(env["RINGMASTER_TEST_KEPT"], "kept")
        let leaked = perUnit.filter { env[$0] != nil }
        XCTAssertEqual(leaked, [], "the daemon's own variables reached the child")
        XCTAssertEqual(try daemon.terminate(), 0)
        figure("daemon-only environment", "variables set on the daemon / reaching a child", "\(perUnit.count) / \(leaked.count)")
    }

    // MARK: 6. bounded echoes of user input

    func testHugeConfigValueAndHugeBusArgumentAreQuotedBounded() throws {
        // 12 MiB: under the 16 MiB a config file may have (a 20 MB one is refused unread).
        let value = String(repeating: "z", count: 12 << 20)
        let main = try writeConfig("[services.\(service("x"))]\ncommand = [\"true\"]\nrestart = \"\(value)\"\n", name: "huge.toml")
        let r = try runCommand([try Binaries.ringctl(), "check", main], timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("huge.toml:3:"), String(r.stderr.prefix(300)))
        XCTAssertLessThan(r.stderr.utf8.count, 1024, "a 12 MiB value gave a \(r.stderr.utf8.count)-byte diagnostic")

        let sleeper = service("sleeper")
        let daemon = try startBusDaemon("[services.\(sleeper)]\ncommand = [\"sleep\", \"100000\"]\n")
        let name = String(repeating: "n", count: 120_000)
        let e = try error(API.managerPath, "\(API.manager).GetService", ["string:" + name])
        XCTAssertEqual(e.name, API.error + "NoSuchService")
        XCTAssertLessThan(e.message.utf8.count, 1024, "a 120 KB name gave a \(e.message.utf8.count)-byte error message")
        XCTAssertTrue(e.message.hasSuffix("(\("no service named \"\"".utf8.count + name.utf8.count) bytes in all)"), String(e.message.suffix(80)))
        XCTAssertTrue(daemon.isRunning)
        figure("bounded echoes", "12 MiB config value → diagnostic; 120 KB service name → D-Bus error",
               "\(r.stderr.utf8.count) bytes; \(e.message.utf8.count) bytes")
    }

    // MARK: 9. unix listen sockets: mode, and removed when done

    func testPathSocketModeDecidesWhoConnectsAndTheFileGoesWithTheDaemon() throws {
        let shared = "/tmp/\(prefix)-socks"
        XCTAssertEqual(mkdir(shared, 0o755), 0)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let privatePath = shared + "/private.sock", openPath = shared + "/open.sock"
        let svc = service("app")
        let config = """
            [sockets.priv]
            listen = \(TOML.string(privatePath))

            [sockets.open]
            listen = \(TOML.string(openPath))
            mode = "0666"

            [services.\(svc)]
            command = ["sleep", "100000"]
            sockets = ["priv", "open"]
            """
        let daemon = try startBusDaemon(config)
        func mode(_ path: String) -> mode_t {
            var st = stat()
            return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
        }
        XCTAssertEqual(mode(privatePath), 0o600)
        XCTAssertEqual(mode(openPath), 0o666)
        let connect = #"""
            import socket, sys, errno
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(sys.argv[1]); print("connected")
            except OSError as e:
                print(errno.errorcode.get(e.errno, str(e.errno)))
            """#
        let toPrivate = try runCommand(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", connect, privatePath])
        let toOpen = try runCommand(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", connect, openPath])
        XCTAssertEqual(toPrivate.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "EACCES")
        XCTAssertEqual(toOpen.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "connected")

        // Removed by a reload: the file goes.
        try writeConfig("""
            [sockets.priv]
            listen = \(TOML.string(privatePath))

            [services.\(svc)]
            command = ["sleep", "100000"]
            sockets = ["priv"]
            """)
        daemon.signal(SIGHUP)
        try require("\(openPath) removed by the reload", timeout: 10) { access(openPath, F_OK) != 0 }
        // Stopped: the file goes.
        XCTAssertEqual(try daemon.terminate(), 0)
        XCTAssertNotEqual(access(privatePath, F_OK), 0, "\(privatePath) left after the daemon exited")
        figure("unix listen sockets", "uid 65534 to the default / mode 0666 socket; files left after reload, stop",
               "\(toPrivate.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) / \(toOpen.stdout.trimmingCharacters(in: .whitespacesAndNewlines)); 0, 0")
    }
}
