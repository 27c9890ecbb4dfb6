import XCTest
@testable import RingmasterCore

final class DependencyGraphTests: XCTestCase {
    /// "web:db,cache" = service web after db and cache.
    func config(_ specs: [String]) -> Config {
        Config(services: specs.map { spec in
            let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
            var s = ServiceConfig(name: String(parts[0]), command: ["x"])
            if parts.count > 1 { s.after = parts[1].split(separator: ",").map(String.init) }
            return s
        })
    }

    func testStartOrder() {
        let cases: [(services: [String], order: [String])] = [
            ([], []),
            (["a", "b", "c"], ["a", "b", "c"]),                                  // no edges: config order
            (["web:db", "db"], ["db", "web"]),
            (["web:db,cache", "worker:db", "db", "cache"], ["db", "worker", "cache", "web"]),
            (["c:b", "b:a", "a"], ["a", "b", "c"]),
            (["x", "web:db", "db", "y"], ["x", "db", "web", "y"]),               // ties in config order
            (["a:missing", "b"], ["a", "b"]),                                    // unknown names ignored
            (["a:b", "b:a", "c"], ["c", "a", "b"]),                              // a cycle (unvalidated) goes last
            (["a:a", "b"], ["b", "a"]),
        ]
        for c in cases {
            let graph = DependencyGraph(config(c.services))
            XCTAssertEqual(graph.startOrder, c.order, "\(c.services)")
            XCTAssertEqual(graph.stopOrder, c.order.reversed(), "\(c.services)")
        }
    }

    func testNeighbours() {
        let graph = DependencyGraph(config(["web:db,cache", "worker:db,db", "db", "cache:db", "lone"]))
        XCTAssertEqual(graph.dependencies(of: "web"), ["db", "cache"])
        XCTAssertEqual(graph.dependencies(of: "worker"), ["db"])
        XCTAssertEqual(graph.dependencies(of: "db"), [])
        XCTAssertEqual(graph.dependencies(of: "nope"), [])
        XCTAssertEqual(graph.dependents(of: "db"), ["web", "worker", "cache"])
        XCTAssertEqual(graph.dependents(of: "cache"), ["web"])
        XCTAssertEqual(graph.dependents(of: "lone"), [])
        XCTAssertEqual(graph.allDependencies(of: "web"), ["db", "cache"])
        XCTAssertEqual(graph.allDependents(of: "db"), ["worker", "cache", "web"])
        XCTAssertEqual(graph.startOrder, ["db", "worker", "cache", "web", "lone"])
    }

    func testLongChainNeedsNoRecursion() throws {
        let n = 20_000
        let specs = (0..<n).map { i in i == 0 ? "s0" : "s\(i):s\(i - 1)" }.reversed()
        let graph = DependencyGraph(config(Array(specs)))
        XCTAssertEqual(graph.startOrder.first, "s0")
        XCTAssertEqual(graph.startOrder.last, "s\(n - 1)")
        XCTAssertEqual(graph.allDependents(of: "s0").count, n - 1)
    }
}
