#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Real-time scheduling for the whole daemon.
enum ThreadPriority {
    /// Puts every thread of this process under SCHED_RR at `priority` (1–99); threads started
    /// later inherit it from the thread that starts them. All at one priority, so call set-up
    /// (ARI, the call tasks) takes turns with the media thread instead of waiting until it idles.
    /// Returns nil when done, else why not (EPERM: no CAP_SYS_NICE and RLIMIT_RTPRIO below
    /// `priority`, or a cgroup with no real-time budget).
    static func setProcessRealtime(_ priority: Int) -> String? {
        #if os(Linux)
        guard let tasks = opendir("/proc/self/task") else { return "cannot list /proc/self/task: \(String(cString: strerror(errno)))" }
        defer { closedir(tasks) }
        var parameters = sched_param()
        parameters.sched_priority = Int32(priority)
        while let entry = readdir(tasks) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            guard let thread = pid_t(name) else { continue }
            // A thread that exited meanwhile (ESRCH) needs nothing.
            if sched_setscheduler(thread, Int32(SCHED_RR), &parameters) != 0, errno != ESRCH {
                return String(cString: strerror(errno))
            }
        }
        return nil
        #else
        return "real-time scheduling is set up on Linux only"
        #endif
    }
}
