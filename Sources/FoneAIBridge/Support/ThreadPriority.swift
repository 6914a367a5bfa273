#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Real-time scheduling for the calling thread.
enum ThreadPriority {
    /// Puts the calling thread under SCHED_RR at `priority` (1–99), or back under normal
    /// scheduling at 0. Returns nil when done, else why not (EPERM: no CAP_SYS_NICE and
    /// RLIMIT_RTPRIO below `priority`, or a cgroup with no real-time budget).
    static func setRealtime(_ priority: Int) -> String? {
        var parameters = sched_param()
        parameters.sched_priority = Int32(priority)
        let result = pthread_setschedparam(pthread_self(), priority > 0 ? Int32(SCHED_RR) : Int32(SCHED_OTHER), &parameters)
        return result == 0 ? nil : String(cString: strerror(result))
    }
}
