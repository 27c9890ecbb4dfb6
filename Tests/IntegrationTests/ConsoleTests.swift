// Console mode (no journald in the way: a terminal, a container): children's lines on the
// daemon's stderr, prefixed `service.instance | `.
import Foundation
import Glibc
import XCTest

final class ConsoleTests: IntegrationTestCase {
    func testChildLinesArePrefixedOnTheDaemonsStderr() throws {
        let svc = service("echo")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", "echo hello from $RINGMASTER_INSTANCE; echo oops from $RINGMASTER_INSTANCE >&2; exec sleep 1000"]
            instances = 3
            """)
        for i in 0..<3 {
            try requireLog("\(svc).\(i) | hello from \(i)\n", daemon: daemon)
            try requireLog("\(svc).\(i) | oops from \(i)\n", daemon: daemon)
        }
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    /// The last lines of a child that dies, even without a final newline, are not lost.
    func testLastLinesOfADeadChildAreKept() throws {
        let svc = service("dying")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["/bin/sh", "-c", "echo first; printf 'no newline at the end'; exit 4"]
            restart = "never"
            """)
        try requireLog("\(svc).0 | first\n", daemon: daemon)
        try requireLog("\(svc).0 | no newline at the end\n", daemon: daemon)
        try requireLog("status 4", daemon: daemon)
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    func testExecFailureIsReported() throws {
        let svc = service("typo")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["python4", "-c", "print(1)"]
            restart = "never"
            """)
        try requireLog("exec python4: No such file or directory", daemon: daemon)
        XCTAssertEqual(try daemon.terminate(), 0)
    }

    func testExecFailureIsInTheJournal() throws {
        let svc = service("typo")
        let daemon = try startDaemon("""
            [services.\(svc)]
            command = ["python4"]
            restart = "never"
            """, mode: .journal)
        let entry = try requireJournal("the exec failure of \(svc)", { try Journal.events(service: svc) }) {
            ($0["MESSAGE"] ?? "").contains("exec python4: No such file or directory")
        }
        XCTAssertEqual(entry["PRIORITY"], "3")
        XCTAssertEqual(try daemon.terminate(), 0)
    }
}
