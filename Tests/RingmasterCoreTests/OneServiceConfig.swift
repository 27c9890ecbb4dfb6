import XCTest
@testable import RingmasterCore

/// Tests of service keys: a config of one service `w` (`command = ["x"]`) plus `keys`, parsed
/// as `c.toml`.
extension XCTestCase {
    /// The service, or a test failure naming what was rejected.
    func acceptedService(_ keys: String, file: StaticString = #filePath, line: UInt = #line) -> ServiceConfig? {
        do {
            return try ConfigLoader.parse(text: "[services.w]\ncommand = [\"x\"]\n" + keys, file: "c.toml").services.first
        } catch {
            XCTFail("rejected \(keys):\n\(error)", file: file, line: line)
            return nil
        }
    }

    /// Every diagnostic, as printed; or one "accepted: …" line (`accepted` describes the service).
    func serviceErrors(_ keys: String, accepted: (ServiceConfig) -> String) -> [String] {
        do {
            let c = try ConfigLoader.parse(text: "[services.w]\ncommand = [\"x\"]\n" + keys, file: "c.toml")
            return ["accepted: " + (c.services.first.map(accepted) ?? "no service")]
        } catch {
            return error.diagnostics.map(\.description)
        }
    }
}
