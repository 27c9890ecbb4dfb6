// The health keys of a [services.NAME] table: `watchdog` (InstanceWatchdog.swift) and
// `memory-restart` (InstanceMemoryRestart.swift).

extension ConfigValidator {
    static let healthKeys = ["watchdog", "memory-restart"]

    /// Decodes `entry` into `service` if it is a health key; false if it is not one.
    mutating func healthKey(_ entry: TOMLEntry, into service: inout ServiceConfig) -> Bool {
        let v = entry.value
        switch entry.key {
        case "watchdog":
            guard let d = duration(v, entry.key) else { break }
            if d == 0 {
                error(v.location, "watchdog must be more than 0 (leave the key out for no watchdog)")
            } else {
                service.watchdog = d
            }
        case "memory-restart":
            switch memorySize(v, entry.key) {
            case let .bytes(n)?: service.memoryRestart = n
            case .infinity?: error(v.location, "memory-restart must be a size, not \"infinity\" (leave the key out for none)")
            case nil: break
            }
        default:
            return false
        }
        return true
    }

    /// memory-restart is driven by memory.high breaches (memory.events): it needs memory-high
    /// at or below it, and memory-max (if any) above it.
    mutating func checkMemoryRestart(_ service: ServiceConfig, at entry: TOMLEntry?) {
        guard let entry, let figure = service.memoryRestart else { return }
        let size = ResourceLimits.Size.bytes(figure)
        guard case let .bytes(high)? = service.limits.memoryHigh, high <= figure else {
            error(entry.value.location, "memory-restart needs memory-high at or below it (e.g. memory-high = \"\(size)\"): "
                  + "the kernel tells of an instance's memory only as it passes memory.high, and ringmasterd does not poll")
            return
        }
        if case let .bytes(max)? = service.limits.memoryMax, max <= figure {
            error(entry.value.location, "memory-restart (\(size)) must be below memory-max (\(ResourceLimits.Size.bytes(max))): "
                  + "the instance would be OOM-killed first")
        }
    }
}
