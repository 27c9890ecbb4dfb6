// The resource limit keys of a [services.NAME] table (ResourceLimits.swift has the
// grammar): each decoded into ServiceConfig.limits, each problem at the value.

extension ConfigValidator {
    static let limitKeys = ["memory-max", "memory-high", "cpu-weight", "cpu-max", "pids-max"]

    /// Decodes `entry` into `limits` if it is a limit key; false if it is not one.
    mutating func limitKey(_ entry: TOMLEntry, into limits: inout ResourceLimits) -> Bool {
        let v = entry.value
        switch entry.key {
        case "memory-max":
            if let size = memorySize(v, entry.key) { limits.memoryMax = size }
        case "memory-high":
            if let size = memorySize(v, entry.key) { limits.memoryHigh = size }
        case "cpu-weight":
            if let n = boundedInteger(v, entry.key, 1...10_000) { limits.cpuWeight = n }
        case "cpu-max":
            guard let text = string(v, entry.key, "a percentage like \"50%\"") else { break }
            switch ResourceLimits.parseCPUMax(text) {
            case let .success(quota): limits.cpuQuota = quota
            case let .failure(problem): error(v.location, problem.message)
            }
        case "pids-max":
            if let n = boundedInteger(v, entry.key, 1...ResourceLimits.maximumPids) { limits.pidsMax = n }
        default:
            return false
        }
        return true
    }

    /// memory-high above memory-max would never apply: an error at memory-high.
    mutating func checkMemoryLimits(_ limits: ResourceLimits, high: TOMLEntry?) {
        guard let high, case let .bytes(h)? = limits.memoryHigh, case let .bytes(m)? = limits.memoryMax, h > m else { return }
        error(high.value.location, "memory-high (\(ResourceLimits.Size.bytes(h))) must not be more than "
              + "memory-max (\(ResourceLimits.Size.bytes(m)))")
    }

    mutating func memorySize(_ value: TOMLValue, _ key: String) -> ResourceLimits.Size? {
        let result: Result<ResourceLimits.Size, ConfigValueProblem>
        if let n = value.integer {
            result = ResourceLimits.size(bytes: n, key: key)
        } else if let text = string(value, key, "a size like \"512M\"") {
            result = ResourceLimits.parseSize(text, key: key)
        } else {
            return nil
        }
        switch result {
        case let .success(size): return size
        case let .failure(problem): error(value.location, problem.message); return nil
        }
    }

    private mutating func boundedInteger(_ value: TOMLValue, _ key: String, _ range: ClosedRange<Int>) -> Int? {
        guard let n = value.integer else {
            error(value.location, "\(key) must be an integer, not \(value.typeNameWithArticle)")
            return nil
        }
        guard n >= Int64(range.lowerBound), n <= Int64(range.upperBound) else {
            error(value.location, "\(key) must be between \(range.lowerBound) and \(range.upperBound), not \(n)")
            return nil
        }
        return Int(n)
    }
}
