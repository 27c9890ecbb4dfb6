import Foundation
import XCTest
@testable import RingmasterCore

/// `env-file` in a config: resolution, optional files, where each error points, that the
/// values are part of ServiceConfig (so the reload diff sees a changed file), and the
/// loader reading real files.
final class ConfigEnvFileTests: XCTestCase {
    private let files = ExternalFiles.inMemory([
        "/cfg/web.env": "# web\nexport PORT=8000\nNAME=\"web one\"\n",
        "/cfg/more.env": "PORT=9000\nEXTRA='x'\n",
        "/cfg/conf.d/db.env": "DB=1\n",
        "/home/u/.secrets": "TOKEN=t\n",
        "/cfg/bad.env": "OK=1\n\nA=\"x\\q\"\n",
        "/cfg/reserved.env": "A=1\n  LISTEN_FDS=3\n",
    ], home: "/home/u")

    private func service(_ toml: String, file: StaticString = #filePath, line: UInt = #line) -> ServiceConfig? {
        do {
            return try ConfigLoader.parse(text: "[services.web]\ncommand = [\"x\"]\n" + toml, file: "/cfg/ringmaster.toml",
                                          externalFiles: files).services.first
        } catch {
            XCTFail("rejected:\n\(error)", file: file, line: line)
            return nil
        }
    }

    private func errors(_ toml: String) -> [String] {
        do {
            let c = try ConfigLoader.parse(text: "[services.web]\ncommand = [\"x\"]\n" + toml, file: "/cfg/ringmaster.toml",
                                           externalFiles: files)
            return ["accepted: \(c)"]
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    func testOneFileOrSeveralInOrder() throws {
        let one = try XCTUnwrap(service("env-file = \"web.env\""))
        XCTAssertEqual(one.envFiles, [EnvFileReference(path: "/cfg/web.env")])
        XCTAssertEqual(one.envFileEnvironment, [EnvironmentVariable("PORT", "8000"), EnvironmentVariable("NAME", "web one")])

        let several = try XCTUnwrap(service("env-file = [\"web.env\", \"-nope.env\", \"/cfg/more.env\", \"~/.secrets\"]"))
        XCTAssertEqual(several.envFiles, [EnvFileReference(path: "/cfg/web.env"), EnvFileReference(path: "/cfg/nope.env", optional: true),
                                          EnvFileReference(path: "/cfg/more.env"), EnvFileReference(path: "/home/u/.secrets")])
        XCTAssertEqual(several.envFileEnvironment.map { "\($0.name)=\($0.value)" },
                       ["PORT=8000", "NAME=web one", "PORT=9000", "EXTRA=x", "TOKEN=t"])
        XCTAssertEqual(service("env-file = []")?.envFileEnvironment, [])
    }

    func testAConfDFileNamesFilesBesideItself() throws {
        let c = try ConfigLoader.parse(sources: [
            (file: "/cfg/ringmaster.toml", text: "[services.db]\ncommand = [\"x\"]"),
            (file: "/cfg/conf.d/db.toml", text: "[services.db]\nenv-file = \"db.env\""),
        ], externalFiles: files)
        XCTAssertEqual(c.services.first?.envFileEnvironment, [EnvironmentVariable("DB", "1")])
    }

    func testErrorsPointAtTheTOMLOrIntoTheEnvFile() {
        let table: [(String, [String])] = [
            ("env-file = 1", ["/cfg/ringmaster.toml:3:12: env-file must be a string or an array of strings, not an integer"]),
            ("env-file = [\"web.env\", 2]", ["/cfg/ringmaster.toml:3:24: env-file[1] must be a string, not an integer"]),
            ("env-file = \"nope.env\"", ["/cfg/ringmaster.toml:3:12: env-file /cfg/nope.env: cannot open the file: No such file or directory (a leading \"-\" makes a file optional)"]),
            ("env-file = [\"web.env\",\n  \"nope.env\"]", ["/cfg/ringmaster.toml:4:3: env-file /cfg/nope.env: cannot open the file: No such file or directory (a leading \"-\" makes a file optional)"]),
            ("env-file = \"-\"", ["/cfg/ringmaster.toml:3:12: env-file must not be an empty path"]),
            ("env-file = \"~bob/x\"", ["/cfg/ringmaster.toml:3:12: env-file \"~bob/x\": only ~ and ~/… are expanded, not ~user"]),
            ("env-file = \"bad.env\"", ["/cfg/bad.env:3:5: unknown escape \\q in a double-quoted value (\\\\ \\\" \\$ \\` \\n \\t \\r; use single quotes for backslashes as written)"]),
            ("env-file = \"reserved.env\"", ["/cfg/reserved.env:2:3: environment variable LISTEN_FDS is set by ringmaster and cannot be overridden"]),
        ]
        for (toml, expected) in table {
            XCTAssertEqual(errors(toml), expected, toml)
        }
    }

    func testAnOptionalFileThatIsThereButBrokenIsStillAnError() {
        XCTAssertEqual(errors("env-file = \"-bad.env\"").first?.hasPrefix("/cfg/bad.env:3:5: unknown escape"), true)
    }

    /// The reload diff compares ServiceConfig values: a changed env file is a changed
    /// service, not one that only scaled.
    func testAChangedEnvFileIsAChangedService() throws {
        let toml = "[services.web]\ncommand = [\"x\"]\nenv-file = \"web.env\"\ninstances = 2"
        let before = try ConfigLoader.parse(text: toml, file: "/cfg/r.toml",
                                            externalFiles: .inMemory(["/cfg/web.env": "A=1"])).services[0]
        let same = try ConfigLoader.parse(text: toml, file: "/cfg/r.toml",
                                          externalFiles: .inMemory(["/cfg/web.env": "# now with a comment\nA=1\n"])).services[0]
        let after = try ConfigLoader.parse(text: toml.replacingOccurrences(of: "instances = 2", with: "instances = 3"),
                                           file: "/cfg/r.toml", externalFiles: .inMemory(["/cfg/web.env": "A=2"])).services[0]
        XCTAssertEqual(before, same, "only the variables count, not how the file writes them")
        XCTAssertNotEqual(before, after)
        XCTAssertFalse(after.differsOnlyInInstances(from: before))
        // What the reload plan makes of it.
        func verdict(_ new: ServiceConfig) -> ReloadPlan.Verdict? {
            ReloadPlan(old: [before], wanted: ["web"], new: Config(services: [new]), changedSockets: []).verdict(of: "web")
        }
        XCTAssertEqual(verdict(same), .unchanged)
        XCTAssertEqual(verdict(after), .changed)
    }

    // MARK: the loader, on disk

    private var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ringmaster-envfile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }

    func testLoadReadsEnvFilesFromDisk() throws {
        try write("ringmaster.toml", "[services.web]\ncommand = [\"x\"]\nenv-file = [\"web.env\", \"-gone.env\"]\n")
        try write("conf.d/db.toml", "[services.db]\ncommand = [\"x\"]\nenv-file = \"db.env\"\n")
        try write("web.env", "export A='1 2'\n")
        try write("conf.d/db.env", "B=\"3\"\n")
        let c = try ConfigLoader.load(mainFile: directory + "/ringmaster.toml")
        XCTAssertEqual(c.service(named: "web")?.envFileEnvironment, [EnvironmentVariable("A", "1 2")])
        XCTAssertEqual(c.service(named: "db")?.envFileEnvironment, [EnvironmentVariable("B", "3")])

        // Read at each load: a changed file changes the config.
        try write("web.env", "A=changed\n")
        let again = try ConfigLoader.load(mainFile: directory + "/ringmaster.toml")
        XCTAssertEqual(again.service(named: "web")?.envFileEnvironment, [EnvironmentVariable("A", "changed")])
    }

    func testLoadRejectsWhatIsNotARegularFile() throws {
        try write("ringmaster.toml", "[services.web]\ncommand = [\"x\"]\nenv-file = [\"conf.d\", \"fifo\"]\n")
        XCTAssertEqual(mkfifo(directory + "/fifo", 0o600), 0)
        do {
            _ = try ConfigLoader.load(mainFile: directory + "/ringmaster.toml")
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.diagnostics.map(\.description), [
                "\(directory)/ringmaster.toml:3:13: env-file \(directory)/conf.d: not a regular file (a directory)",
                "\(directory)/ringmaster.toml:3:23: env-file \(directory)/fifo: not a regular file (a FIFO)",
            ])
        }
    }

    func testLoadRejectsAHugeFile() throws {
        try write("ringmaster.toml", "[services.web]\ncommand = [\"x\"]\nenv-file = \"big.env\"\n")
        try write("big.env", "A=" + String(repeating: "x", count: EnvFile.maximumSize) + "\n")
        XCTAssertThrowsError(try ConfigLoader.load(mainFile: directory + "/ringmaster.toml")) { error in
            XCTAssertEqual((error as? ConfigErrors)?.diagnostics.map(\.message), ["env-file \(directory)/big.env: larger than 1 MiB"])
        }
    }
}
