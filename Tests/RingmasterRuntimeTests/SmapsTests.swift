import Foundation
import Glibc
import XCTest
@testable import RingmasterRuntime

/// Which mappings a working-set trim may drop (Smaps.trimmable): only the executable's own,
/// resident, not writable, and without one anonymous (copy-on-write) page.
final class SmapsTests: XCTestCase {
    static let exe = "/opt/ring master/bin/ringmasterd" // a space in the path, on purpose

    /// A smaps block as the kernel writes it (6.x), with these sizes in KiB.
    static func block(_ header: String, rss: Int, anonymous: Int = 0, privateDirty: Int? = nil) -> String {
        """
        \(header)
        Size:               6668 kB
        KernelPageSize:        4 kB
        MMUPageSize:           4 kB
        Rss:                \(rss) kB
        Pss:                \(rss) kB
        Pss_Dirty:          \(privateDirty ?? anonymous) kB
        Shared_Clean:          0 kB
        Shared_Dirty:          0 kB
        Private_Clean:      \(rss - (privateDirty ?? anonymous)) kB
        Private_Dirty:      \(privateDirty ?? anonymous) kB
        Referenced:         \(rss) kB
        Anonymous:          \(anonymous) kB
        KSM:                   0 kB
        LazyFree:              0 kB
        AnonHugePages:         0 kB
        Swap:                  0 kB
        SwapPss:               0 kB
        Locked:                0 kB
        THPeligible:           0
        VmFlags: rd ex mr mw me

        """
    }

    /// Captured from a non-PIE ringmasterd (paths changed), plus the cases that must be left alone.
    static let sample =
        // the text and read-only data: clean → chosen (Private_Dirty is the page cache's own
        // dirtiness right after a build: not a private copy, still chosen)
        block("00400000-00a83000 r-xp 00000000 fe:00 5325853                    \(exe)", rss: 3712, privateDirty: 3712)
        // RELRO after relocation (read-only now, 4 KiB copied on write) → left alone
        + block("00a84000-00aa5000 r--p 00683000 fe:00 5325853                    \(exe)", rss: 132, anonymous: 4)
        // data → writable, left alone
        + block("00aa5000-00bca000 rw-p 006a4000 fe:00 5325853                    \(exe)", rss: 492, anonymous: 28)
        // bss beyond the file, anonymous
        + block("00bca000-00c08000 rw-p 00000000 00:00 0 ", rss: 60, anonymous: 60)
        + block("315fa000-3162e000 rw-p 00000000 00:00 0                                  [heap]", rss: 172, anonymous: 172)
        // another file's text: clean, read-only, but not ours → left alone
        + block("7fd1a6c20000-7fd1a6cc1000 r-xp 00005000 fe:00 333842                     /usr/lib/x86_64-linux-gnu/libzstd.so.1.5.4", rss: 64)
        // a read-only mapping of ours with nothing resident → nothing to drop
        + block("7fd1a6d00000-7fd1a6d10000 r--p 00690000 fe:00 5325853                    \(exe)", rss: 0)
        // a read-only mapping of ours where a debugger wrote a breakpoint → left alone
        + block("7fd1a6e00000-7fd1a6e20000 r-xp 00000000 fe:00 5325853                    \(exe)", rss: 128, anonymous: 4)
        // the same path replaced on disk: a different file → left alone
        + block("7fd1a6f00000-7fd1a6f20000 r-xp 00000000 fe:00 5325999                    \(exe) (deleted)", rss: 128)
        + block("7ffcaeb68000-7ffcaeb89000 rw-p 00000000 00:00 0                          [stack]", rss: 28, anonymous: 28)
        + block("7fa6bee49000-7fa6bee4b000 r-xp 00000000 00:00 0                          [vdso]", rss: 4)

    func testParsesHeadersPathsAndSizes() {
        let mappings = Smaps.parse(Self.sample)
        XCTAssertEqual(mappings.count, 11)
        XCTAssertEqual(mappings[0], SmapsMapping(start: 0x400000, end: 0xa83000, permissions: "r-xp", path: Self.exe,
                                                 rssKiB: 3712, anonymousKiB: 0))
        XCTAssertEqual(mappings[1].anonymousKiB, 4)
        XCTAssertTrue(mappings[2].isWritable)
        XCTAssertFalse(mappings[0].isWritable)
        XCTAssertEqual(mappings[3].path, "", "anonymous memory has no path (the header ends in a space)")
        XCTAssertEqual(mappings[4].path, "[heap]")
        XCTAssertEqual(mappings[8].path, Self.exe + " (deleted)")
        XCTAssertEqual(mappings[9].start, 0x7ffcaeb68000)
        XCTAssertEqual(mappings[9].end, 0x7ffcaeb89000)
    }

    func testOnlyTheExecutablesCleanReadOnlyResidentMappingsAreChosen() {
        let chosen = Smaps.trimmable(Smaps.parse(Self.sample), file: Self.exe)
        XCTAssertEqual(chosen.map { "\(String($0.start, radix: 16))-\(String($0.end, radix: 16))" }, ["400000-a83000"])
    }

    /// A block cut short (no Anonymous line): nothing is known about copies, so it stays.
    func testAMappingWithoutAnAnonymousFigureIsLeftAlone() {
        let text = "00400000-00a83000 r-xp 00000000 fe:00 5325853 \(Self.exe)\nRss:  3712 kB\nPss:  3712 kB\n"
        let mappings = Smaps.parse(text)
        XCTAssertEqual(mappings.count, 1)
        XCTAssertEqual(mappings.first?.rssKiB, 3712)
        XCTAssertNil(mappings.first?.anonymousKiB)
        XCTAssertEqual(Smaps.trimmable(mappings, file: Self.exe), [])
    }

    func testAReplacedExecutableIsMatchedAsSmapsSpellsIt() {
        let chosen = Smaps.trimmable(Smaps.parse(Self.sample), file: Self.exe + " (deleted)")
        XCTAssertEqual(chosen.map(\.start), [0x7fd1a6f00000])
    }

    /// Reading stops at the first mapping after the executable's: the blocks before it are
    /// whole (each ends where the next header starts), across 4 KiB reads.
    func testReadHeadStopsAfterTheFilesMappings() throws {
        let path = NSTemporaryDirectory() + "smaps-\(getpid())"
        try Self.sample.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let head = try XCTUnwrap(Smaps.readHead(path, through: Self.exe))
        XCTAssertTrue(Self.sample.hasPrefix(head))
        XCTAssertEqual(Smaps.parse(head).map(\.start), [0x400000, 0xa84000, 0xaa5000])
        XCTAssertEqual(Smaps.parse(head).last?.anonymousKiB, 28, "the last block is complete")

        let lib = "/usr/lib/x86_64-linux-gnu/libzstd.so.1.5.4"
        XCTAssertEqual(Smaps.parse(try XCTUnwrap(Smaps.readHead(path, through: lib))).last?.path, lib)
        XCTAssertEqual(Smaps.readHead(path, through: "/nowhere"), Self.sample, "never seen: the whole file")
        XCTAssertNil(Smaps.readHead(path + ".missing", through: Self.exe))
    }

    func testNoMappingsFromGarbage() {
        XCTAssertEqual(Smaps.parse(""), [])
        XCTAssertEqual(Smaps.parse("Rss: 12 kB\nnot a header\n00400000 r-xp\nzz-yy r-xp 0 0:0 0 /x\n"), [])
        // fields before the first header belong to nothing
        XCTAssertEqual(Smaps.parse("Anonymous: 4 kB\n" + Self.block("1000-2000 r--p 0 0:0 0 /x", rss: 4)).first?.anonymousKiB, 0)
    }

    /// The real thing: this test process's own smaps parses, and what it would trim is its
    /// own executable's read-only, unmodified mappings.
    func testOwnSmaps() throws {
        let text = try XCTUnwrap(readSmallFile("/proc/self/smaps", limit: 64 << 20))
        let exe = try XCTUnwrap(readLink("/proc/self/exe"))
        let mappings = Smaps.parse(text)
        XCTAssertEqual(mappings.count, text.split(separator: "\n").filter { $0.hasPrefix("VmFlags:") }.count)
        XCTAssertTrue(mappings.contains { $0.path == exe && $0.permissions.contains("x") })
        let head = try XCTUnwrap(Smaps.readHead("/proc/self/smaps", through: exe))
        XCTAssertEqual(Smaps.trimmable(Smaps.parse(head), file: exe).map(\.start),
                       Smaps.trimmable(mappings, file: exe).map(\.start), "the head has all the executable's mappings")
        for m in Smaps.trimmable(mappings, file: exe) {
            XCTAssertFalse(m.isWritable)
            XCTAssertEqual(m.anonymousKiB, 0)
            XCTAssertGreaterThan(m.rssKiB ?? 0, 0)
        }
    }

    func testDelayFromTheEnvironment() {
        XCTAssertEqual(WorkingSetTrim.delayMS(fromEnvironment: nil), 2000)
        XCTAssertEqual(WorkingSetTrim.delayMS(fromEnvironment: "300"), 300)
        XCTAssertEqual(WorkingSetTrim.delayMS(fromEnvironment: "soon"), 2000)
        XCTAssertNil(WorkingSetTrim.delayMS(fromEnvironment: "0"), "0 turns trimming off")
    }
}
