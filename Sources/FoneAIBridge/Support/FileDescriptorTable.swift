#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The process's table of file descriptors, grown once up front.
///
/// Linux grows the table on demand, doubling, and in a multi-threaded process each growth waits
/// for an RCU grace period inside the call that opened the descriptor (8–28 ms measured on an
/// idle 2-core VM; a second and more seen under load). Opened on an event loop, as the AI
/// WebSockets are, that wait stalls the media of every call on the loop, each time the number of
/// calls crosses a power of two.
enum FileDescriptorTable {
    /// Grows the table to hold `count` descriptors (at most the soft `RLIMIT_NOFILE`); returns the
    /// size reserved, or nil when it could not. Never touches a descriptor in use.
    @discardableResult
    static func reserve(_ count: Int) -> Int? {
        var limit = rlimit()
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return nil }
        let size = Int(min(UInt64(count), UInt64(limit.rlim_cur)))
        guard size > 3 else { return nil }
        // The lowest free descriptor at or above size - 1: the kernel grows the table to hold it.
        let probe = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, Int32(size - 1))
        guard probe >= 0 else { return nil }
        close(probe)
        return size
    }
}
