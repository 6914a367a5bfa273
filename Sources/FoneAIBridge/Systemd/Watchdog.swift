// WatchdogSec= support: ping WATCHDOG=1 at half the interval while a health probe answers.

import Logging
import ServiceLifecycle

public enum Watchdog {
    /// How often to ping for a given `WatchdogSec=`: half of it, as sd_watchdog_enabled(3) advises.
    public static func pingInterval(for watchdogInterval: Duration) -> Duration {
        watchdogInterval / 2
    }

    /// How long the probe may take: a quarter of the watchdog interval, at most 5 s.
    public static func defaultProbeTimeout(for watchdogInterval: Duration) -> Duration {
        min(watchdogInterval / 4, .seconds(5))
    }

    /// Runs until the task is cancelled. Every `interval / 2` it runs `probe`; only if the probe
    /// returns true within `probeTimeout` is WATCHDOG=1 sent. A probe that never returns stops
    /// the pings, and systemd then restarts the service, which is the point.
    public static func run(
        notifier: SystemdNotifier,
        interval: Duration,
        probeTimeout: Duration? = nil,
        logger: Logger? = nil,
        probe: @escaping @Sendable () async -> Bool
    ) async {
        let period = pingInterval(for: interval)
        let timeout = probeTimeout ?? defaultProbeTimeout(for: interval)
        let clock = ContinuousClock()
        var failures = 0
        logger?.debug("watchdog pinger started", metadata: ["interval": "\(interval)", "period": "\(period)"])
        while !Task.isCancelled {
            let started = clock.now
            if await probeSucceeds(within: timeout, probe: probe) {
                notifier.watchdogPing()
                if failures > 0 {
                    logger?.notice("health probe answers again, watchdog pings resumed", metadata: ["missed": "\(failures)"])
                }
                failures = 0
            } else {
                failures += 1
                logger?.warning("health probe failed or too slow, not pinging the watchdog", metadata: [
                    "timeout": "\(timeout)", "consecutive": "\(failures)",
                ])
            }
            do {
                try await Task.sleep(until: started.advanced(by: period), clock: clock)
            } catch {
                return
            }
        }
    }

    /// Runs `probe`, giving up after `timeout` (the probe task is cancelled; if it ignores
    /// cancellation this waits for it, and no ping is sent meanwhile).
    public static func probeSucceeds(within timeout: Duration, probe: @escaping @Sendable () async -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let start = clock.now
        let result = await withTaskGroup(of: Bool?.self) { group in
            group.addTask { await probe() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        return result == true && clock.now - start <= timeout
    }
}

/// `Watchdog.run` as a ServiceLifecycle service. It returns on graceful shutdown: put it first in
/// the ServiceGroup's list so that it is shut down last, after the daemon has drained; it does
/// nothing if the watchdog is not enabled for this process.
public struct WatchdogService: Service {
    public let notifier: SystemdNotifier
    public let interval: Duration?
    public let probeTimeout: Duration?
    public let logger: Logger?
    public let probe: @Sendable () async -> Bool

    public init(notifier: SystemdNotifier = SystemdNotifier(), interval: Duration? = nil, probeTimeout: Duration? = nil,
                logger: Logger? = nil, probe: @escaping @Sendable () async -> Bool) {
        self.notifier = notifier
        self.interval = interval ?? notifier.watchdogInterval
        self.probeTimeout = probeTimeout
        self.logger = logger
        self.probe = probe
    }

    public func run() async throws {
        guard let interval else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            await Watchdog.run(notifier: notifier, interval: interval, probeTimeout: probeTimeout,
                               logger: logger, probe: probe)
        }
    }
}
