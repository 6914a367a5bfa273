// sd_notify(3) wrapper: READY/RELOADING/STOPPING/STATUS/WATCHDOG for Type=notify units.

import CSystemd

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Sends service state to systemd. Every method is a cheap no-op when the process was not
/// started by systemd with a notify socket (no NOTIFY_SOCKET).
///
/// `sd_notifyf` is variadic and not importable from Swift: messages are built here and sent with
/// `sd_notify`, or, for an explicit socket path (tests), with a datagram of our own.
public struct SystemdNotifier: Sendable {
    public enum Destination: Sendable, Equatable {
        /// `$NOTIFY_SOCKET`, through libsystemd.
        case environment
        /// A Unix datagram socket path (`@name` for the abstract namespace).
        case socket(path: String)
    }

    public let destination: Destination
    private let explicitWatchdogInterval: Duration?

    /// Notifies through `$NOTIFY_SOCKET` (what the daemon uses).
    public init() {
        self.destination = .environment
        self.explicitWatchdogInterval = nil
    }

    /// Notifies an explicit socket, e.g. a test's; `watchdogInterval` is what the notifier reports.
    public init(socketPath: String, watchdogInterval: Duration? = nil) {
        self.destination = .socket(path: socketPath)
        self.explicitWatchdogInterval = watchdogInterval
    }

    /// Whether messages go anywhere.
    public var isEnabled: Bool {
        switch destination {
        case .environment:
            guard let value = getenv("NOTIFY_SOCKET") else { return false }
            return value.pointee != 0
        case .socket:
            return true
        }
    }

    /// `WatchdogSec=` of the unit if the watchdog is enabled for this process, else nil.
    public var watchdogInterval: Duration? {
        switch destination {
        case .environment:
            var usec: UInt64 = 0
            guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
            return .microseconds(Int64(clamping: usec))
        case .socket:
            return explicitWatchdogInterval
        }
    }

    // MARK: Messages

    /// Startup finished (or a reload finished): READY=1.
    public func ready() { send(Self.readyMessage) }

    /// Reloading the configuration: RELOADING=1 plus MONOTONIC_USEC= (required by systemd ≥ 253
    /// for Type=notify-reload, ignored by 252). Send `ready()` when done.
    public func reloading() { send(Self.reloadingMessage(monotonicUsec: Self.monotonicMicroseconds())) }

    /// Shutting down: STOPPING=1.
    public func stopping() { send(Self.stoppingMessage) }

    /// Free-form status shown by `systemctl status` (STATUS=...).
    public func status(_ text: String) { send(Self.statusMessage(text)) }

    /// Keep-alive for WatchdogSec=: WATCHDOG=1.
    public func watchdogPing() { send(Self.watchdogMessage) }

    /// Asks for more time during start, reload or stop (EXTEND_TIMEOUT_USEC=).
    public func extendTimeout(_ duration: Duration) { send(Self.extendTimeoutMessage(duration)) }

    /// Sends a raw notification (newline-separated VAR=value assignments). Returns whether it was
    /// delivered; false when notification is disabled or sending failed.
    @discardableResult
    public func send(_ message: String) -> Bool {
        switch destination {
        case .environment:
            guard isEnabled else { return false }
            return sd_notify(0, message) > 0
        case .socket(let path):
            return Self.sendDatagram(message, to: path)
        }
    }

    // MARK: Message builders (pure, tested)

    public static let readyMessage = "READY=1"
    public static let stoppingMessage = "STOPPING=1"
    public static let watchdogMessage = "WATCHDOG=1"

    public static func reloadingMessage(monotonicUsec: UInt64) -> String {
        "RELOADING=1\nMONOTONIC_USEC=\(monotonicUsec)"
    }

    /// STATUS= is one line: newlines become spaces.
    public static func statusMessage(_ text: String) -> String {
        "STATUS=" + text.map { $0 == "\n" || $0 == "\r\n" || $0 == "\r" ? " " : String($0) }.joined()
    }

    public static func extendTimeoutMessage(_ duration: Duration) -> String {
        let (seconds, atto) = duration.components
        let usec = max(0, seconds) * 1_000_000 + max(0, atto) / 1_000_000_000_000
        return "EXTEND_TIMEOUT_USEC=\(usec)"
    }

    /// CLOCK_MONOTONIC in microseconds, as systemd expects in MONOTONIC_USEC=.
    public static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    // MARK: Explicit socket

    static func sendDatagram(_ message: String, to path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(path.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty, pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path)!
        let length = socklen_t(pathOffset + pathBytes.count + (abstract ? 0 : 1))
        let bytes = Array(message.utf8)
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        return sent == bytes.count
    }
}
