// The `after` relation of a Config: who waits for whom. The daemon starts a service once
// every service in its `after` is ready, and stops in reverse.

public struct DependencyGraph: Equatable, Sendable {
    /// Every service, each after all of its dependencies; among services free to go at
    /// the same point, config order. (A validated config has no cycles; if given one
    /// anyway, the services on or behind a cycle come last, in config order.)
    public let startOrder: [String]
    private let dependencies: [String: [String]]
    private let dependents: [String: [String]]

    public init(_ config: Config) {
        let names = config.services.map(\.name)
        var position: [String: Int] = [:]
        for (i, name) in names.enumerated() where position[name] == nil { position[name] = i }

        var deps: [String: [String]] = [:]
        var rdeps: [String: [String]] = [:]
        for service in config.services where deps[service.name] == nil {
            var seen = Set<String>()
            let list = service.after.filter { position[$0] != nil && seen.insert($0).inserted }
            deps[service.name] = list
            for d in list { rdeps[d, default: []].append(service.name) }
        }

        // Kahn's algorithm, always taking the ready service that comes first in the config.
        var waitingOn = [Int](repeating: 0, count: names.count)
        for (i, name) in names.enumerated() where position[name] == i { waitingOn[i] = deps[name]?.count ?? 0 }
        var ready = MinHeap()
        for i in names.indices where position[names[i]] == i && waitingOn[i] == 0 { ready.push(i) }
        var order: [String] = []
        var placed = [Bool](repeating: false, count: names.count)
        while let i = ready.pop() {
            order.append(names[i])
            placed[i] = true
            for dependent in rdeps[names[i]] ?? [] {
                guard let j = position[dependent] else { continue }
                waitingOn[j] -= 1
                if waitingOn[j] == 0 { ready.push(j) }
            }
        }
        for i in names.indices where position[names[i]] == i && !placed[i] { order.append(names[i]) }

        startOrder = order
        dependencies = deps
        dependents = rdeps
    }

    /// `startOrder` reversed: dependents stop before what they depend on.
    public var stopOrder: [String] { startOrder.reversed() }

    /// The services `name` is after (its own `after`, known services only), in the order written.
    public func dependencies(of name: String) -> [String] { dependencies[name] ?? [] }

    /// The services that have `name` in their `after`, in config order.
    public func dependents(of name: String) -> [String] { dependents[name] ?? [] }

    /// Everything `name` waits for, directly or not, in start order.
    public func allDependencies(of name: String) -> [String] { closure(of: name, following: dependencies) }

    /// Everything that waits for `name`, directly or not, in start order (stop them first).
    public func allDependents(of name: String) -> [String] { closure(of: name, following: dependents) }

    private func closure(of name: String, following edges: [String: [String]]) -> [String] {
        var seen: Set<String> = [name]
        var stack = edges[name] ?? []
        while let next = stack.popLast() {
            if seen.insert(next).inserted { stack += edges[next] ?? [] }
        }
        seen.remove(name)
        return startOrder.filter { seen.contains($0) }
    }
}

/// A binary min-heap of config positions.
private struct MinHeap {
    private var items: [Int] = []

    mutating func push(_ x: Int) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[parent] > items[i] else { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> Int? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var smallest = i
                if l < items.count && items[l] < items[smallest] { smallest = l }
                if r < items.count && items[r] < items[smallest] { smallest = r }
                if smallest == i { break }
                items.swapAt(i, smallest)
                i = smallest
            }
        }
        return top
    }
}
