import CSimSocket
import FoundationEssentials
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The real `foneai-bridge` binary as a child process: started with a config written for the run,
/// watched through /proc, queried through its control socket, stopped with SIGTERM.
public final class LoadDaemon: Sendable {
    public let pid: pid_t
    public let directory: String
    public let configPath: String
    public let logPath: String
    public let controlSocketPath: String
    private let exit = Mutex<Int32?>(nil)

    private init(pid: pid_t, directory: String, configPath: String, logPath: String, controlSocketPath: String) {
        self.pid = pid
        self.directory = directory
        self.configPath = configPath
        self.logPath = logPath
        self.controlSocketPath = controlSocketPath
    }

    public struct LaunchError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes `config(controlSocketPath)` to DIR/config.json and starts `binary DIR/config.json`,
    /// stdout and stderr to DIR/daemon.log. DIR is a new temporary directory.
    /// `cpu`: run the daemon on that CPU alone (every thread it starts inherits the pin).
    public static func launch(binary: String, cpu: Int? = nil, config: (_ controlSocketPath: String) -> String) throws -> LoadDaemon {
        guard access(binary, X_OK) == 0 else { throw LaunchError(description: "\(binary) is not an executable file (run `make release` or pass --bridge)") }
        var template = Array("/tmp/foneai-load-XXXXXX".utf8CString)
        guard let dirPtr = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw LaunchError(description: "mkdtemp failed: errno \(errno)")
        }
        let dir = String(cString: dirPtr)
        let configPath = dir + "/config.json"
        let logPath = dir + "/daemon.log"
        let socketPath = dir + "/control.sock"
        try LoadFiles.write(configPath, config(socketPath))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // NIO's sockets are not close-on-exec: without this the daemon would hold the fake
        // Asterisk's listening socket, and outlive the simulator talking to a silent port.
        sim_spawn_close_from(&actions, 3)

        // The environment minus systemd's variables (this is not a service).
        var env: [String] = []
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if !["NOTIFY_SOCKET=", "JOURNAL_STREAM=", "INVOCATION_ID=", "WATCHDOG_USEC=", "WATCHDOG_PID=", "LISTEN_FDS=", "LISTEN_PID="]
                .contains(where: { s.hasPrefix($0) }) {
                env.append(s)
            }
            p += 1
        }
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(binary), strdup(configPath), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
        defer {
            for a in argv { free(a) }
            for e in envp { free(e) }
        }
        var pid = pid_t()
        if let cpu {
            // The child inherits this thread's CPU set; this thread gets its own back right after.
            guard sim_thread_pin(Int32(cpu)) == 0 else { throw LaunchError(description: "cannot pin to CPU \(cpu): errno \(errno)") }
        }
        let rc = posix_spawn(&pid, binary, &actions, nil, argv, envp)
        if cpu != nil { sim_thread_pin(-1) }
        guard rc == 0 else { throw LaunchError(description: "posix_spawn \(binary): error \(rc)") }
        return LoadDaemon(pid: pid, directory: dir, configPath: configPath, logPath: logPath, controlSocketPath: socketPath)
    }

    /// nil while running; the exit status (or 128 + signal) once it has ended.
    public var exitStatus: Int32? {
        exit.withLock { st in
            if let st { return st }
            var status: Int32 = 0
            let r = waitpid(pid, &status, WNOHANG)
            guard r == pid else { return nil }
            let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            st = code
            return code
        }
    }

    public var isRunning: Bool { exitStatus == nil }

    /// SIGTERM, then waits; SIGKILL after `timeout`. Returns the exit status (nil when it had to be killed)
    /// and the seconds it took to exit.
    public func terminate(timeout: Duration = .seconds(30)) async -> (status: Int32?, seconds: Double) {
        let t0 = simMonotonicNanos()
        if let s = exitStatus { return (s, 0) }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let s = exitStatus { return (s, Double(simMonotonicNanos() - t0) / 1e9) }
            try? await Task.sleep(for: .milliseconds(20))
        }
        kill(pid, SIGKILL)
        while exitStatus == nil { try? await Task.sleep(for: .milliseconds(20)) }
        return (nil, Double(simMonotonicNanos() - t0) / 1e9)
    }

    /// SIGKILL now (cleanup after an interrupted run).
    public func kill9() {
        if isRunning { kill(pid, SIGKILL) }
        _ = waitpid(pid, nil, 0)
    }

    /// The daemon's log from byte `offset` on, and the offset after it (to follow the log).
    public func log(from offset: Int) -> (text: String, end: Int) {
        let bytes = LoadFiles.readBytes(logPath, from: offset) ?? []
        return (String(decoding: bytes, as: UTF8.self), offset + bytes.count)
    }

    /// The daemon's log so far (the last `maxBytes`).
    public func logTail(maxBytes: Int = 4000) -> String {
        let s = LoadFiles.read(logPath) ?? ""
        return s.count > maxBytes ? String(s.suffix(maxBytes)) : s
    }

    public func removeDirectory() {
        for f in [configPath, logPath, controlSocketPath] { unlink(f) }
        rmdir(directory)
    }

    // MARK: /proc

    /// user + system CPU seconds of the whole process (all threads), from /proc/PID/stat.
    public func cpuSeconds() -> Double? { LoadProc.cpuSeconds(pid: pid) }
    public func cpuTimes() -> (user: Double, system: Double)? { LoadProc.cpuTimes(pid: pid) }

    /// Resident set size in KiB (VmRSS) and thread count, from /proc/PID/status.
    public func memory() -> (rssKB: Int, threads: Int)? { LoadProc.status(pid: pid) }

    // MARK: control socket

    /// Sends one control request (`{"v":1,"id":1,"cmd":CMD}`) and returns `result`, or nil.
    public func control(_ cmd: String, timeoutSeconds: Int = 5) -> SimJSON? {
        guard let line = LoadControl.request(path: controlSocketPath, line: #"{"v":1,"id":1,"cmd":"\#(cmd)"}"#, timeoutSeconds: timeoutSeconds),
              let json = SimJSON.parse(line), json["ok"]?.boolValue == true
        else { return nil }
        return json["result"]
    }

    /// The `stats` counters as a dictionary, with `liveCalls` added.
    public func stats() -> [String: Int]? {
        guard let result = control("stats"), let counters = result["counters"]?.objectValue else { return nil }
        var out: [String: Int] = [:]
        for (k, v) in counters { if let n = v.intValue { out[k] = n } }
        if let live = result["liveCalls"]?.intValue { out["liveCalls"] = live }
        return out
    }
}

enum LoadProc {
    static let clockTicks: Double = {
        let t = sysconf(Int32(_SC_CLK_TCK))
        return t > 0 ? Double(t) : 100
    }()

    static func cpuSeconds(pid: pid_t) -> Double? {
        cpuTimes(pid: pid).map { $0.user + $0.system }
    }

    /// User and system CPU seconds of the whole process.
    static func cpuTimes(pid: pid_t) -> (user: Double, system: Double)? {
        // Fields after "(comm)": 3=state … 14=utime 15=stime.
        guard let (_, fields) = stat("/proc/\(pid)/stat"), fields.count > 12,
              let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u / clockTicks, s / clockTicks)
    }

    /// The nice value of `pid`'s main thread (field 19 of /proc/PID/stat).
    static func nice(pid: pid_t) -> Int? {
        guard let (_, fields) = stat("/proc/\(pid)/stat"), fields.count > 16 else { return nil }
        return Int(fields[16])
    }

    /// The highest real-time priority among `pid`'s threads (`rt_priority`, field 40 of each
    /// thread's stat; 0 when all run under normal scheduling).
    static func highestRealtimePriority(pid: pid_t) -> Int {
        threadIDs(pid: "\(pid)").compactMap { tid in
            stat("/proc/\(pid)/task/\(tid)/stat").flatMap { $0.fields.count > 37 ? Int($0.fields[37]) : nil }
        }.max() ?? 0
    }

    /// CPU seconds per thread of `pid` ("self" for this process), keyed by thread id, with the
    /// thread's name.
    static func threadCPU(pid: String) -> [Int: (name: String, seconds: Double)] {
        var out: [Int: (String, Double)] = [:]
        for tid in threadIDs(pid: pid) {
            guard let (comm, fields) = stat("/proc/\(pid)/task/\(tid)/stat"), fields.count > 12,
                  let u = Double(fields[11]), let s = Double(fields[12]) else { continue }
            out[tid] = (comm, (u + s) / clockTicks)
        }
        return out
    }

    /// Each thread's voluntary and involuntary context switches so far, by thread id.
    static func contextSwitches(pid: String) -> [Int: (voluntary: Int, involuntary: Int)] {
        var threads: [Int: (voluntary: Int, involuntary: Int)] = [:]
        for tid in threadIDs(pid: pid) {
            guard let text = LoadFiles.read("/proc/\(pid)/task/\(tid)/status") else { continue }
            var v = 0, n = 0
            for line in text.split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " || $0 == "\t" })
                guard parts.count == 2, let count = Int(parts[1]) else { continue }
                if parts[0] == "voluntary_ctxt_switches" { v = count }
                if parts[0] == "nonvoluntary_ctxt_switches" { n = count }
            }
            threads[tid] = (v, n)
        }
        return threads
    }

    /// The ids of `pid`'s threads ("self" for this process), from /proc/PID/task.
    static func threadIDs(pid: String) -> [Int] {
        guard let dir = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(dir) }
        var ids: [Int] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if let tid = Int(name) { ids.append(tid) }
        }
        return ids
    }

    /// A stat file (proc_pid_stat(5)) as the command and the fields after it, field 3 (the state)
    /// first. The command can hold spaces and parentheses, so it ends at the last ")".
    static func stat(_ path: String) -> (comm: String, fields: [Substring])? {
        guard let text = LoadFiles.read(path), let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"),
              open < close else { return nil }
        return (String(text[text.index(after: open)..<close]), text[text.index(after: close)...].split(separator: " "))
    }

    /// Context switches between two `contextSwitches` snapshots, summed over the threads alive at
    /// the second (a thread that exited in between would otherwise make the sum go down).
    static func switchesBetween(_ a: [Int: (voluntary: Int, involuntary: Int)],
                                _ b: [Int: (voluntary: Int, involuntary: Int)]) -> (voluntary: Int, involuntary: Int) {
        var v = 0, n = 0
        for (tid, after) in b {
            let before = a[tid] ?? (0, 0)
            v += after.voluntary - before.voluntary
            n += after.involuntary - before.involuntary
        }
        return (v, n)
    }

    /// Per-thread CPU between two `threadCPU` snapshots, grouped by thread name, in cores over
    /// `seconds`, busiest first.
    static func threadLoad(_ a: [Int: (name: String, seconds: Double)], _ b: [Int: (name: String, seconds: Double)], seconds: Double) -> [LoadResult.ThreadLoad] {
        var rows: [LoadResult.ThreadLoad] = []
        for (tid, after) in b {
            let before = a[tid]?.seconds ?? 0
            let used = after.seconds - before
            guard used > 0.001 * seconds else { continue }
            rows.append(.init(thread: "\(after.name) (\(tid))", cores: used / seconds))
        }
        return rows.sorted { $0.cores > $1.cores }
    }

    static func status(pid: pid_t) -> (rssKB: Int, threads: Int)? {
        guard let text = LoadFiles.read("/proc/\(pid)/status") else { return nil }
        var rss: Int?
        var threads = 0
        for line in text.split(separator: "\n") {
            if line.hasPrefix("VmRSS:") {
                rss = Int(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
            } else if line.hasPrefix("Threads:") {
                threads = Int(line.dropFirst(8).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
            }
        }
        return rss.map { ($0, threads) }
    }

    /// The CPUs `pid` may run on, as the kernel lists them ("0-1", "1"), or nil ("self" works too).
    static func cpusAllowed(pid: String) -> String? {
        guard let text = LoadFiles.read("/proc/\(pid)/status") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
            return line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    /// user + system CPU seconds of this process.
    static func selfCPUSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    /// 1-minute load average.
    static func loadAverage() -> Double? {
        guard let text = LoadFiles.read("/proc/loadavg") else { return nil }
        return Double(text.split(separator: " ").first ?? "")
    }

    /// (model name, logical CPUs) from /proc/cpuinfo.
    static func cpuInfo() -> (model: String, cores: Int) {
        let text = LoadFiles.read("/proc/cpuinfo") ?? ""
        var model = "unknown"
        var count = 0
        for line in text.split(separator: "\n") {
            if line.hasPrefix("processor") { count += 1 }
            if line.hasPrefix("model name"), model == "unknown", let colon = line.firstIndex(of: ":") {
                model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return (model, max(count, 1))
    }

    static func memTotalKB() -> Int? {
        guard let text = LoadFiles.read("/proc/meminfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            return Int(line.dropFirst(9).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }

    static func kernel() -> String {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        return release
    }

    /// Raises the soft open-files limit to the hard limit (children inherit it).
    static func raiseFileLimit() {
        var lim = rlimit()
        #if os(Linux)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        if getrlimit(resource, &lim) == 0, lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max
            setrlimit(resource, &lim)
        }
    }
}

enum LoadFiles {
    static func read(_ path: String) -> String? {
        readBytes(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The file's bytes from `offset` to its end, or nil when it cannot be opened.
    static func readBytes(_ path: String, from offset: Int = 0) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset + out.count)) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    static func write(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw LoadDaemon.LaunchError(description: "cannot write \(path): errno \(errno)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw LoadDaemon.LaunchError(description: "write \(path): errno \(errno)") }
            off += n
        }
    }
}

enum LoadControl {
    /// One request line over the Unix socket at `path`; the first response line, or nil.
    static func request(path: String, line: String, timeoutSeconds: Int) -> String? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
            raw[pathBytes.count] = 0
        }
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else { return nil }
        let out = Array((line + "\n").utf8)
        guard out.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == out.count else { return nil }
        var response: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            if let nl = buf[0..<n].firstIndex(of: 10) {
                response.append(contentsOf: buf[0..<nl])
                return String(decoding: response, as: UTF8.self)
            }
            response.append(contentsOf: buf[0..<n])
            if response.count > 16 << 20 { return nil }
        }
        return response.isEmpty ? nil : String(decoding: response, as: UTF8.self)
    }
}
