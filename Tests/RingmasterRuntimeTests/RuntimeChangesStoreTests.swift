import Foundation
import Glibc
import RingmasterCore
@testable import RingmasterRuntime
import XCTest

/// The file the runtime changes are kept in: written only when they change, replaced whole
/// (never a half-written file), removed when there is nothing to keep, read back as written.
final class RuntimeChangesStoreTests: XCTestCase {
    func testSaveLoadAndRemove() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rm-changes-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = RuntimeChangesStore(path: dir + "/changes.test")
        var web = ServiceConfig(name: "web", command: ["/bin/web"])
        web.instances = 2
        var stack = Stack(config: Config(services: [web]))
        _ = stack.boot(now: 0)

        XCTAssertNil(store.save(stack))
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.path), "nothing to keep: no file")
        _ = try stack.scale("web", to: 5, now: 1)
        XCTAssertNil(store.save(stack))
        let (changes, problem) = store.load()
        XCTAssertNil(problem)
        XCTAssertEqual(changes, [RuntimeChange(service: "web", fingerprint: web.fingerprint, instances: 5)])
        var st = stat()
        XCTAssertEqual(stat(store.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.path + ".tmp"))

        // Unchanged: not written again (the file's inode stays).
        let inode = st.st_ino
        XCTAssertNil(store.save(stack))
        XCTAssertEqual(stat(store.path, &st), 0)
        XCTAssertEqual(st.st_ino, inode)

        _ = try stack.scale("web", to: 2, now: 2)
        XCTAssertNil(store.save(stack))
        XCTAssertFalse(FileManager.default.fileExists(atPath: store.path), "back to the config: the file goes")
        XCTAssertEqual(store.load().changes, [])
    }
}
