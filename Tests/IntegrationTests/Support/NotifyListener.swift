import Foundation

/// A Unix datagram socket standing in for systemd's NOTIFY_SOCKET: collects what the daemon sends.
final class NotifyListener: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var thread: Thread?

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8)).sock").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            _ = path.utf8CString.withUnsafeBytes { raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(raw.count - 1))) }
        }
        let result = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else { throw POSIXError(.EADDRINUSE) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [weak self] in self?.receiveLoop() }
        self.thread = thread
        thread.start()
    }

    private func receiveLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !Thread.current.isCancelled {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 {
                let text = String(decoding: buffer[0..<n], as: UTF8.self)
                lock.withLock { received.append(text) }
            }
        }
    }

    /// Every message so far, split into its `KEY=value` lines, in order.
    var lines: [String] {
        lock.withLock { received.flatMap { $0.split(separator: "\n").map(String.init) } }
    }

    func waitFor(_ predicate: ([String]) -> Bool, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if predicate(lines) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return predicate(lines)
    }

    deinit {
        thread?.cancel()
        Thread.sleep(forTimeInterval: 0.15)
        close(fd)
        unlink(path)
    }
}

/// Runs `foneaictl` with arguments, as root or as another uid; returns (exit status, output).
func runCtl(_ arguments: [String], asUID uid: UInt32? = nil) throws -> (Int32, String) {
    let ctl = DaemonProcess.binDirectory.appendingPathComponent("foneaictl").path
    guard let uid else { return try runToCompletion(ctl, arguments) }
    return try runToCompletion("/usr/bin/setpriv", ["--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", ctl] + arguments)
}
