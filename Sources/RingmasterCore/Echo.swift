/// A message that echoes user input (a config value, a D-Bus argument) is cut to at most
/// about `limit` bytes: the first `limit` bytes (on a character boundary), then how long it
/// was. A 20 MB value must not become a 20 MB diagnostic.
public func boundedEcho(_ text: String, limit: Int = 512) -> String {
    let total = text.utf8.count
    guard total > limit else { return text }
    var kept = 0
    var end = text.startIndex
    for c in text {
        let n = c.utf8.count
        if kept + n > limit { break }
        kept += n
        end = text.index(after: end)
    }
    return text[..<end] + "… (\(total) bytes in all)"
}
