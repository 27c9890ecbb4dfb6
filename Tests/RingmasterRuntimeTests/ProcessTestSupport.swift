import Foundation
import Glibc
import RingmasterRuntime
import Systemd
import XCTest

/// A pipe whose both ends are CLOEXEC in the test process (only the child's dup2'd copy
/// stays open across exec).
struct Pipe {
    let read: Int32
    let write: Int32

    init() {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0) // pipe2 is not exported by Glibc's module map
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        read = fds[0]
        write = fds[1]
    }

    /// Reads until EOF (every writer closed), then closes the read end.
    func readAll() -> String { Pipe.readAll(fd: read) }

    /// Reads `fd` (a pipe, a stream socket) until EOF, then closes it.
    static func readAll(fd: Int32) -> String {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        close(fd)
        return String(decoding: data, as: UTF8.self)
    }
}

struct Finished {
    var stdout: String
    var stderr: String
    var pid: Int32
    /// waitpid status
    var status: Int32
    var exitCode: Int32 { (status >> 8) & 0xff }
}

/// Spawns `request` with fresh stdout/stderr pipes, collects both until EOF and reaps the child.
func runToCompletion(_ request: SpawnRequest, file: StaticString = #filePath, line: UInt = #line) throws -> Finished {
    var request = request
    let out = Pipe(), err = Pipe()
    request.stdout = out.write
    request.stderr = err.write
    let process: SpawnedProcess
    do {
        process = try PosixSpawner().spawn(request)
    } catch {
        close(out.write); close(err.write); close(out.read); close(err.read)
        throw error
    }
    close(out.write)
    close(err.write)
    let stdout = out.readAll()
    let stderr = err.readAll()
    var status: Int32 = 0
    while waitpid(process.pid, &status, 0) < 0 && errno == EINTR {}
    close(process.pidfd)
    return Finished(stdout: stdout, stderr: stderr, pid: process.pid, status: status)
}

func sh(_ script: String, environment: [String] = ["PATH=/usr/bin:/bin"]) -> SpawnRequest {
    SpawnRequest(argv: ["/bin/sh", "-c", script], environment: environment)
}

/// A stream connection to the unix socket at `path` (CLOEXEC); the caller closes it.
func connectUnix(_ path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var sa = sockaddr_un()
    sa.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &sa.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
    let r = withUnsafePointer(to: &sa) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard r == 0 else { close(fd); throw SpawnError(stage: "connect", errno: errno) }
    return fd
}

/// A fresh private directory under /tmp, removed by the caller.
func makeTemporaryDirectory() -> String {
    var template = Array("/tmp/ringmaster-test-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: p!)
}

/// The inode of the socket/pipe/file behind `fd`.
func inode(of fd: Int32) -> UInt64 {
    var st = stat()
    precondition(fstat(fd, &st) == 0)
    return UInt64(st.st_ino)
}

func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
}

extension EventLoop {
    /// Runs iterations until `done()`, failing the test after `seconds` (default 10 s).
    func run(until done: () -> Bool, seconds: UInt64 = 10, file: StaticString = #filePath, line: UInt = #line) throws {
        let deadline = monotonicNow() + seconds * 1_000_000
        while !done() {
            guard monotonicNow() < deadline else {
                XCTFail("timed out", file: file, line: line)
                return
            }
            try runOnce(timeout: 100_000)
        }
    }
}

/// Runs `body` with the path of a stand-in journald stdout socket that accepts nothing: its
/// backlog of 0 is filled by one unaccepted connection, so a child's connect can only retry.
func withStuckJournalSocket<R>(_ body: (String) throws -> R) throws -> R {
    let dir = makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let socketPath = dir + "/stdout"
    let listener = try bindListenSocket(.unix(path: socketPath), backlog: 0)
    defer { close(listener) }
    let filler = try connectUnix(socketPath)
    defer { close(filler) }
    return try body(socketPath)
}
