// The health keys of a [services.NAME] table: `watchdog` (InstanceWatchdog.swift).

extension ConfigValidator {
    static let healthKeys = ["watchdog"]

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
        default:
            return false
        }
        return true
    }
}
