import FoundationEssentials
import Synchronization
import Logging
import Testing

@testable import FoneAIBridge

#if canImport(Glibc)
import Glibc
#endif

/// A bound Unix datagram socket standing in for systemd's notify socket.
final class FakeNotifySocket {
    let dir: String
    let path: String
    private let fd: Int32

    init() {
        dir = ControlTestKit.makeTempDir()
        path = dir + "/notify"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        precondition(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        precondition(rc == 0, "bind failed")
    }

    deinit {
        close(fd)
        ControlTestKit.removeTree(dir)
    }

    /// Every datagram already queued (non-blocking).
    func drain() -> [String] {
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { return messages }
            messages.append(String(decoding: buffer[0..<n], as: UTF8.self))
        }
    }
}

@Suite("sd_notify wrapper and watchdog")
struct SystemdNotifierTests {
    @Test func messagesArriveOnAnExplicitSocket() {
        let fake = FakeNotifySocket()
        let notifier = SystemdNotifier(socketPath: fake.path)
        #expect(notifier.isEnabled)
        notifier.ready()
        notifier.status("3 live calls\nARI connected")
        notifier.reloading()
        notifier.stopping()
        notifier.watchdogPing()
        notifier.extendTimeout(.seconds(90))
        let messages = fake.drain()
        #expect(messages.count == 6)
        guard messages.count == 6 else { return }
        #expect(messages[0] == "READY=1")
        #expect(messages[1] == "STATUS=3 live calls ARI connected")
        let reload = messages[2].split(separator: "\n").map(String.init)
        #expect(reload.first == "RELOADING=1")
        #expect(reload.count == 2 && reload[1].hasPrefix("MONOTONIC_USEC="))
        let usec = UInt64(reload.last!.dropFirst("MONOTONIC_USEC=".count)) ?? 0
        let now = SystemdNotifier.monotonicMicroseconds()
        #expect(usec > 0 && usec <= now && now - usec < 10_000_000)
        #expect(messages[3] == "STOPPING=1")
        #expect(messages[4] == "WATCHDOG=1")
        #expect(messages[5] == "EXTEND_TIMEOUT_USEC=90000000")
    }

    @Test func sendingToAMissingSocketFailsQuietly() {
        let notifier = SystemdNotifier(socketPath: "/nonexistent/notify.sock")
        #expect(notifier.send("READY=1") == false)
        notifier.ready()  // no crash
    }

    @Test func environmentNotifierIsANoOpWithoutNotifySocket() throws {
        try #require(getenv("NOTIFY_SOCKET") == nil, "test run under systemd with NOTIFY_SOCKET set")
        let notifier = SystemdNotifier()
        #expect(notifier.isEnabled == false)
        #expect(notifier.send("READY=1") == false)
        #expect(notifier.watchdogInterval == nil)
        notifier.ready()
        notifier.reloading()
        notifier.stopping()
    }

    @Test func messageBuilders() {
        #expect(SystemdNotifier.reloadingMessage(monotonicUsec: 123) == "RELOADING=1\nMONOTONIC_USEC=123")
        #expect(SystemdNotifier.statusMessage("a\r\nb") == "STATUS=a b")
        #expect(SystemdNotifier.extendTimeoutMessage(.milliseconds(1500)) == "EXTEND_TIMEOUT_USEC=1500000")
    }

    @Test func watchdogTimings() {
        #expect(Watchdog.pingInterval(for: .seconds(30)) == .seconds(15))
        #expect(Watchdog.defaultProbeTimeout(for: .seconds(8)) == .seconds(2))
        #expect(Watchdog.defaultProbeTimeout(for: .seconds(60)) == .seconds(5))
    }

    @Test func probeTimeoutAndResult() async {
        #expect(await Watchdog.probeSucceeds(within: .seconds(1)) { true })
        #expect(await Watchdog.probeSucceeds(within: .seconds(1)) { false } == false)
        // Slow but cancellable probe: gives up at the timeout.
        let clock = ContinuousClock()
        let start = clock.now
        let slow = await Watchdog.probeSucceeds(within: .milliseconds(100)) {
            (try? await Task.sleep(for: .seconds(10))) != nil
        }
        #expect(slow == false)
        #expect(clock.now - start < .seconds(5))
    }

    @Test func watchdogPingsOnlyWhileHealthy() async throws {
        let fake = FakeNotifySocket()
        let notifier = SystemdNotifier(socketPath: fake.path, watchdogInterval: .milliseconds(200))
        let healthy = HealthFlag()
        let task = Task {
            await Watchdog.run(notifier: notifier, interval: .milliseconds(200), probeTimeout: .milliseconds(50)) {
                healthy.value
            }
        }
        try await Task.sleep(for: .milliseconds(450))
        let pings = fake.drain()
        #expect(pings.count >= 2 && pings.allSatisfy { $0 == "WATCHDOG=1" })
        healthy.value = false
        try await Task.sleep(for: .milliseconds(150))  // let an in-flight round finish
        _ = fake.drain()
        try await Task.sleep(for: .milliseconds(400))
        #expect(fake.drain().isEmpty)
        task.cancel()
        await task.value
    }
}

final class HealthFlag: Sendable {
    private let lock = Mutex(true)
    var value: Bool {
        get { lock.withLock { $0 } }
        set { lock.withLock { $0 = newValue } }
    }
}
