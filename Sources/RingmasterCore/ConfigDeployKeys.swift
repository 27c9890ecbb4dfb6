// The deploy keys of a [services.NAME] table: `ready-timeout` (how long a new instance may
// take to become ready before its start counts as failed, and a canary is rolled back).

extension ConfigValidator {
    static let deployKeys = ["ready-timeout"]

    /// Decodes `entry` into `service` if it is a deploy key; false if it is not one.
    mutating func deployKey(_ entry: TOMLEntry, into service: inout ServiceConfig) -> Bool {
        switch entry.key {
        case "ready-timeout":
            if let d = duration(entry.value, entry.key) { service.readyTimeout = d }
        default:
            return false
        }
        return true
    }
}
