// The task keys of a [services.NAME] table: `type` ("simple" or "oneshot") and `pre-start`
// (an argv run to completion before each spawn). Each problem at the value.

extension ConfigValidator {
    static let taskKeys = ["type", "pre-start"]

    /// Decodes `entry` into `service` if it is a task key; false if it is not one.
    mutating func taskKey(_ entry: TOMLEntry, into service: inout ServiceConfig, refs: inout ServiceReferences) -> Bool {
        let v = entry.value
        switch entry.key {
        case "type":
            if let type: ServiceType = choice(v, "type") { service.type = type }
        case "pre-start":
            if v.string != nil {
                error(v.location, "pre-start must be an array of strings (an argv), not a string; "
                      + "for a shell line write [\"/bin/sh\", \"-c\", \"…\"]")
                break
            }
            guard let argv = stringArray(v, "pre-start") else { break }
            guard let first = argv.first else {
                error(v.location, "pre-start must not be empty (leave it out for none)")
                break
            }
            if first.name.isEmpty {
                error(first.location, "pre-start[0] (the program) must not be empty")
                break
            }
            refs.placeholderStrings += v.array ?? []
            service.preStart = argv.map(\.name)
        default:
            return false
        }
        return true
    }

    /// What `type = "oneshot"` implies once every key is read (keys come in any order):
    /// `restart` defaults to "never", "always" is an error (a task that always runs again is
    /// a service), and `ready` is an error (a oneshot is done when it exits 0, not ready).
    mutating func checkTaskKeys(_ service: inout ServiceConfig, table: TOMLTable) {
        guard service.type == .oneshot else { return }
        let restart = table.entries.first { $0.key == "restart" }
        if restart == nil { service.restart = .never }
        if let restart, service.restart == .always {
            error(restart.value.location, "restart = \"always\" does not fit type = \"oneshot\" (a task that runs "
                  + "again and again is a service): use \"on-failure\" or \"never\"")
        }
        if let ready = table.entries.first(where: { $0.key == "ready" }) {
            error(ready.keyLocation, "ready does not apply to type = \"oneshot\": a oneshot is done when its process "
                  + "exits 0, and what waits for it waits for that")
        }
    }
}
