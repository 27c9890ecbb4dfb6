import ConfigFiles
import Foundation
import XCTest
@testable import RingmasterCore

/// Files on disk: the main file plus conf.d/*.toml, merge order, unreadable files, default paths.
final class ConfigLoaderTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ringmaster-config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }

    var main: String { directory + "/ringmaster.toml" }

    func testConfDFilesMergeInNameOrder() throws {
        try write("ringmaster.toml", """
            [sockets.http]
            listen = "127.0.0.1:8080"

            [services.web]
            command = ["app"]
            instances = 2
            environment = { A = "1", B = "2" }

            [services.db]
            command = ["postgres"]
            """)
        // "10-" sorts before "2-": byte order, not numeric
        try write("conf.d/2-late.toml", """
            [services.web]
            instances = 8
            """)
        try write("conf.d/10-early.toml", """
            [services.web]
            instances = 4
            environment = { C = "3" }
            restart = "never"

            [services.cache]
            command = ["redis-server"]

            [sockets.http]
            listen = "127.0.0.1:9090"
            """)
        try write("conf.d/.hidden.toml", "this is not = valid toml [")
        try write("conf.d/notes.txt", "ignored")
        try write("conf.d/zz.toml.bak", "ignored")

        let config = try ConfigLoader.load(mainFile: main)
        XCTAssertEqual(config.files, [main, directory + "/conf.d/10-early.toml", directory + "/conf.d/2-late.toml"])
        XCTAssertEqual(config.services.map(\.name), ["web", "db", "cache"])
        let web = try XCTUnwrap(config.service(named: "web"))
        XCTAssertEqual(web.instances, 8)                                   // last file wins
        XCTAssertEqual(web.environment, [EnvironmentVariable("C", "3")])   // a key is replaced whole
        XCTAssertEqual(web.restart, .never)
        XCTAssertEqual(web.command, ["app"])                               // untouched keys stay
        XCTAssertEqual(config.socket(named: "http")?.source, .listen(.tcp4(host: "127.0.0.1", port: 9090)))
    }

    func testDiagnosticsNameTheFileAndAreSortedByMergeOrder() throws {
        try write("ringmaster.toml", """
            [services.web]
            command = ["app"]
            after = ["db"]
            restrat = "x"
            """)
        try write("conf.d/a.toml", """
            [services.web]
            stop-timeout = 5
            """)
        try write("conf.d/b.toml", "[services.web\n")
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.diagnostics.map(\.description), [
                "\(self.directory)/conf.d/b.toml:1:14: expected ']' to close the table header, found end of line",
            ])
        }
        try write("conf.d/b.toml", "[services.db]\ncommand = [\"db\"]\nafter = [\"web\"]\n")
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.diagnostics.map(\.description), [
                #"\#(self.main):4:1: unknown key "restrat" in [services.web]; did you mean "restart"?"#,
                "\(self.directory)/conf.d/a.toml:2:16: stop-timeout must be a string duration, not an integer",
                "\(self.directory)/conf.d/b.toml:3:10: dependency cycle: web -> db -> web",
            ])
        }
    }

    func testParseSourcesMergesLikeLoad() throws {
        let config = try ConfigLoader.parse(sources: [
            (file: "main.toml", text: "[services.a]\ncommand = [\"a\"]\n[services.b]\ncommand = [\"b\"]"),
            (file: "conf.d/x.toml", text: "[services.b]\ninstances = 0\n[services.c]\ncommand = [\"c\"]\nafter = [\"a\"]"),
        ])
        XCTAssertEqual(config.services.map(\.name), ["a", "b", "c"])
        XCTAssertEqual(config.service(named: "b")?.instances, 0)
        XCTAssertEqual(config.files, ["main.toml", "conf.d/x.toml"])
    }

    func testMissingAndUnreadableFiles() throws {
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.description,
                           "\(self.main):1:1: cannot open the file: No such file or directory")
        }
        try FileManager.default.createDirectory(atPath: main, withIntermediateDirectories: false)
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.description,
                           "\(self.main):1:1: not a regular file (a directory)")
        }
        try FileManager.default.removeItem(atPath: main)
        // A FIFO does not wait for a writer; /dev/zero does not fill memory; a huge file is refused.
        XCTAssertEqual(mkfifo(main, 0o600), 0)
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.description, "\(self.main):1:1: not a regular file (a FIFO)")
        }
        try FileManager.default.removeItem(atPath: main)
        XCTAssertEqual(symlink("/dev/zero", main), 0)
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.description, "\(self.main):1:1: not a regular file (a character device)")
        }
        try FileManager.default.removeItem(atPath: main)
        XCTAssertTrue(FileManager.default.createFile(atPath: main, contents: nil))
        XCTAssertEqual(truncate(main, off_t(ConfigFiles.maxFileSize + 1)), 0)
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.description, "\(self.main):1:1: larger than 16 MiB: not a configuration file")
        }
        try FileManager.default.removeItem(atPath: main)
        try write("ringmaster.toml", "")
        try FileManager.default.removeItem(atPath: directory + "/conf.d")
        XCTAssertEqual(try ConfigLoader.load(mainFile: main).files, [main])  // no conf.d is fine
        try write("conf.d", "a file where the directory should be")
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.description,
                           "\(self.directory)/conf.d:1:1: cannot read the directory: Not a directory")
        }
    }

    func testInvalidUTF8InAFile() throws {
        let bytes: [UInt8] = Array("[services.web]\ncommand = [\"".utf8) + [0xC3, 0x28] + Array("\"]\n".utf8)
        XCTAssertTrue(FileManager.default.createFile(atPath: main, contents: Data(bytes)))
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: main)) { error in
            XCTAssertEqual((error as? ConfigErrors)?.description, "\(self.main):2:13: invalid UTF-8")
        }
    }

    func testConfDirectory() {
        XCTAssertEqual(ConfigLoader.confDirectory(forMainFile: "/etc/x/ringmaster.toml"), "/etc/x/conf.d")
        XCTAssertEqual(ConfigLoader.confDirectory(forMainFile: "ringmaster.toml"), "conf.d")
        XCTAssertEqual(ConfigLoader.confDirectory(forMainFile: "/r.toml"), "/conf.d")
    }

    func testDefaultConfigPath() {
        let cases: [([String: String], String)] = [
            (["XDG_CONFIG_HOME": "/x/cfg", "HOME": "/home/u"], "/x/cfg/ringmaster/ringmaster.toml"),
            (["XDG_CONFIG_HOME": "/x/cfg/", "HOME": "/home/u"], "/x/cfg/ringmaster/ringmaster.toml"),
            (["XDG_CONFIG_HOME": "relative", "HOME": "/home/u"], "/home/u/.config/ringmaster/ringmaster.toml"),
            (["XDG_CONFIG_HOME": "", "HOME": "/home/u/"], "/home/u/.config/ringmaster/ringmaster.toml"),
            (["HOME": "/home/u"], "/home/u/.config/ringmaster/ringmaster.toml"),
            (["HOME": "/"], "/.config/ringmaster/ringmaster.toml"),
            (["XDG_CONFIG_HOME": "/"], "/ringmaster/ringmaster.toml"),
            ([:], "~/.config/ringmaster/ringmaster.toml"),
        ]
        for (environment, expected) in cases {
            XCTAssertEqual(ConfigLoader.defaultConfigPath(environment: environment), expected, "\(environment)")
        }
        XCTAssertTrue(ConfigLoader.defaultConfigPath().hasSuffix("/ringmaster/ringmaster.toml"))
    }

    func testNameRules() {
        for name in ["web", "web-1", "a.b", "A_b.c-d", "0", String(repeating: "x", count: 64)] {
            XCTAssertNil(ConfigLoader.nameProblem(name), name)
        }
        for name in ["", ".a", "-a", "a b", "a/b", "é", String(repeating: "x", count: 65), "a\u{0}"] {
            XCTAssertNotNil(ConfigLoader.nameProblem(name), name)
        }
    }
}
