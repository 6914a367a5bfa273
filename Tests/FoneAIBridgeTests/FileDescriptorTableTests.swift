import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import FoneAIBridge

@Suite struct FileDescriptorTableTests {
    /// The table's size as the kernel reports it (`FDSize` in /proc/self/status).
    static func tableSize() -> Int? {
        guard let file = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line)
            if text.hasPrefix("FDSize:") { return Int(text.dropFirst(7).trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return nil
    }

    @Test func growsTheTableOnceAndLeavesOpenDescriptorsAlone() throws {
        var limit = rlimit()
        try #require(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        let wanted = min(4096, Int(limit.rlim_cur))
        try #require(wanted > 64, "the soft RLIMIT_NOFILE (\(limit.rlim_cur)) is too low to see the table grow")
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }

        let reserved = FileDescriptorTable.reserve(wanted)
        #expect(reserved == wanted)
        #expect((Self.tableSize() ?? 0) >= wanted)
        // The pipe still works: nothing open was closed or replaced.
        var byte: UInt8 = 42
        #expect(write(fds[1], &byte, 1) == 1)
        byte = 0
        #expect(read(fds[0], &byte, 1) == 1 && byte == 42)
    }

    @Test func neverAsksForMoreThanTheLimit() throws {
        var limit = rlimit()
        try #require(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        #expect(FileDescriptorTable.reserve(Int(limit.rlim_cur) + 1_000_000) == Int(limit.rlim_cur))
    }
}
