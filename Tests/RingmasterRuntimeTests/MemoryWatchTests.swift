import Foundation
import Glibc
import XCTest
@testable import RingmasterRuntime

/// The inotify side of `memory-restart`: a modified file (the kernel marks memory.events so)
/// is reported once per watch, however many events are pending, and a removed watch is not.
final class MemoryWatchTests: XCTestCase {
    func testModifiedFilesAreReportedOncePerWatch() throws {
        let dir = NSTemporaryDirectory() + "memwatch-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = dir + "/a.events", b = dir + "/b.events"
        for path in [a, b] { FileManager.default.createFile(atPath: path, contents: Data("high 0\n".utf8)) }

        let watch = try MemoryWatch()
        let wa = inotify_add_watch(watch.fd, a, UInt32(IN_MODIFY))
        let wb = inotify_add_watch(watch.fd, b, UInt32(IN_MODIFY))
        XCTAssertGreaterThanOrEqual(wa, 0)
        XCTAssertGreaterThanOrEqual(wb, 0)
        XCTAssertEqual(watch.drain(), [], "nothing modified yet: no event, and no blocking")

        func append(_ path: String) throws {
            let h = try XCTUnwrap(FileHandle(forWritingAtPath: path))
            h.seekToEndOfFile()
            h.write(Data("high 1\n".utf8))
            try h.close()
        }
        for _ in 0..<5 { try append(a) }
        try append(b)
        XCTAssertEqual(watch.drain(), [wa, wb], "each modified file once, in order")
        XCTAssertEqual(watch.drain(), [])

        _ = inotify_rm_watch(watch.fd, wa)
        _ = watch.drain() // IN_IGNORED of the removed watch
        try append(a)
        try append(b)
        XCTAssertEqual(watch.drain(), [wb], "a removed watch reports nothing")
    }
}
