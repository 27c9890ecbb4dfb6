/// A FIFO of instance commands (an array with a moving head: no per-item allocation), with
/// a count per entry.
struct Backlog: Equatable, Sendable {
    struct Item: Equatable, Sendable {
        var id: ServiceID
        var instance: Int
        var event: InstanceEvent
    }
    private var items: [Item] = []
    private var head = 0
    private var queued: [ServiceID: Int] = [:]

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    func count(of id: ServiceID) -> Int { queued[id] ?? 0 }

    mutating func push(_ item: Item) {
        items.append(item)
        queued[item.id, default: 0] += 1
    }

    /// The next item, left in place.
    var first: Item? { head < items.count ? items[head] : nil }

    mutating func pop() -> Item? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head == items.count { items.removeAll(keepingCapacity: true); head = 0 }
        if let n = queued[item.id] { queued[item.id] = n > 1 ? n - 1 : nil }
        return item
    }

    mutating func remove(_ id: ServiceID) {
        guard queued.removeValue(forKey: id) != nil else { return }
        items.removeSubrange(0..<head)
        head = 0
        items.removeAll { $0.id == id }
    }

    mutating func removeAll() { items.removeAll(); head = 0; queued.removeAll() }
}
