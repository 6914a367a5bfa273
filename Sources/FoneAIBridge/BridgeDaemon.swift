import AsyncHTTPClient
import FoneAIControl
import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// The daemon: composes the RTP socket, the ARI events connection, the call registry, the control
/// socket and systemd notification. Reload and drain live here; `main` owns the signals.
public actor BridgeDaemon: Service {
    public static let version = "0.1.0"

    private var config: BridgeConfig
    private let configPath: String
    private let logger: Logger
    private let logLevel: LogLevelBox
    private let notifier = SystemdNotifier()
    private let counters = BridgeCounters()
    private let startedAt = ContinuousClock.now
    private let startedAtWall = Date()

    private var http: HTTPClient?
    private var rtp: RTPSocket?
    private var registry: CallRegistry?
    private var eventsTask: Task<Void, Never>?
    private var reconcileTask: Task<Void, Never>?
    private var reconcileRequested = false
    private var ariConnected = false
    private var ariProblem: String?
    private var lastReload: ReloadInfo?
    private var stopping = false

    public init(config: BridgeConfig, configPath: String, logLevel: LogLevelBox, logger: Logger) {
        self.config = config
        self.configPath = configPath
        self.logLevel = logLevel
        self.logger = logger
    }

    // MARK: Service

    public func run() async throws {
        applyRealtimePriority(config.media.realtimePriority)
        // One AI WebSocket per call, plus ARI and control connections.
        FileDescriptorTable.reserve(2 * config.calls.maxCalls + 256)
        let http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
                              configuration: Self.httpConfiguration(config.ari))
        self.http = http
        let rtp: RTPSocket
        do {
            rtp = try await RTPSocket.bind(host: config.rtpServer.host, port: config.rtpServer.port,
                                           group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        } catch {
            try? await http.shutdown()
            throw DaemonError.cannotBindRTP(config.rtpServer.hostAndPort, "\(error)")
        }
        self.rtp = rtp
        let registry = CallRegistry(environment: makeEnvironment(http: http, rtp: rtp), maxCalls: config.calls.maxCalls)
        self.registry = registry

        let control = ControlServer(path: config.control.socketPath, handler: self,
                                    logger: logger, eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        do {
            try await control.start()
        } catch {
            logger.error("Cannot open the control socket; foneaictl will not work", metadata: ["path": "\(config.control.socketPath)", "error": "\(error)"])
        }

        startEvents()
        logger.info("foneai-bridge started", metadata: [
            "version": "\(Self.version)", "rtp": "\(config.rtpServer.hostAndPort)", "ari": "\(ARIEndpoint.redacted(config.ari.url))",
            "app": "\(config.ari.appName)", "ai": "\(ARIEndpoint.redacted(config.ai.serverUrl))",
        ])
        notifier.ready()
        await publishStatus()

        await withTaskGroup(of: Void.self) { group in
            if let interval = notifier.watchdogInterval {
                group.addTask { [notifier] in
                    await Watchdog.run(notifier: notifier, interval: interval) { await self.healthy() }
                }
            }
            group.addTask {
                // Keep STATUS= current even when nothing else happens.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(5))
                    await self.publishStatus()
                }
            }
            try? await gracefulShutdown()
            await self.drainAndStop()
            group.cancelAll()
        }
        await control.stop()
        eventsTask?.cancel()
        await eventsTask?.value
        await rtp.close()
        try? await http.shutdown()
        logger.info("foneai-bridge stopped")
    }

    /// SIGTERM: stop taking calls, let live ones finish up to the drain timeout, end the rest
    /// (continued in the dialplan), and wait for their clean-up.
    private func drainAndStop() async {
        guard let registry else { return }
        stopping = true
        notifier.stopping()
        await registry.setAdmission(.draining)
        let live = await registry.liveCalls
        logger.info("Stopping: draining live calls", metadata: ["calls": "\(live)", "timeout_s": "\(config.calls.drainTimeoutSeconds)"])
        await publishStatus()
        if await !waitIdle(registry, timeout: .seconds(config.calls.drainTimeoutSeconds)) {
            let remaining = await registry.liveCalls
            logger.warning("Drain timeout: ending the remaining calls", metadata: ["calls": "\(remaining)"])
            await registry.endAll(reason: .unavailable)
            _ = await waitIdle(registry, timeout: .seconds(10))
        }
    }

    /// Waits until no call is live, at most `timeout`; true if idle.
    func waitIdle(_ registry: CallRegistry, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while await registry.liveCalls > 0 {
            guard ContinuousClock.now < deadline, !Task.isCancelled else { return false }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return true
    }

    private func healthy() async -> Bool {
        guard let rtp, let registry else { return false }
        _ = await registry.liveCalls
        return await rtp.probe()
    }

    // MARK: ARI events

    private func startEvents() {
        guard let http else { return }
        let endpoint = ARIEndpoint(url: config.ari.url, username: config.ari.username, password: config.ari.password, appName: config.ari.appName)
        let connection = ARIEventConnection(
            endpoint: endpoint, probe: ARIClient(endpoint: endpoint, http: http),
            tlsConfiguration: Self.tls(caFile: config.ari.caFile),
            maxBackoff: .milliseconds(Int(config.ari.reconnectMaxSeconds * 1000)), logger: logger)
        let previous = eventsTask
        // Detached: the WebSocket client closes on graceful shutdown when it sees the service
        // group's shutdown signal, but ARI must stay connected while calls drain.
        eventsTask = Task.detached {
            previous?.cancel()
            await previous?.value
            await connection.run { await self.handleARI($0) }
        }
    }

    private func handleARI(_ input: ARIEventInput) async {
        switch input {
        case .connected:
            ariConnected = true
            ariProblem = nil
            await publishStatus()
            startReconcile()
        case .disconnected(let reason):
            ariConnected = false
            ariProblem = reason
            counters.add(.ariReconnects)
            await publishStatus()
        case .event(let event):
            if event.type == "ApplicationReplaced" {
                ariConnected = false
                ariProblem = "another ARI client took over the Stasis application \(config.ari.appName)"
                logger.error("Another ARI client took over the Stasis application; this bridge gets no new calls", metadata: ["app": "\(config.ari.appName)"])
                await publishStatus()
            }
            await registry?.handle(event)
        case .malformed(let text):
            counters.add(.ariEventsMalformed)
            logger.warning("Dropped an ARI message that is not an event", metadata: ["bytes": "\(text.utf8.count)"])
        }
    }

    /// After every (re)connect, in the background so events keep flowing meanwhile. A connect
    /// during a run asks for one more run: the earlier snapshot predates the newer outage.
    private func startReconcile() {
        reconcileRequested = true
        guard reconcileTask == nil else { return }
        reconcileTask = Task.detached {
            while let reconciler = await self.takeReconcileRequest() {
                do {
                    _ = try await reconciler.run()
                } catch {
                    self.logger.warning("Cannot reconcile with Asterisk after connecting", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// The next reconcile to run, or nil (and the task ends) when none was asked for.
    private func takeReconcileRequest() -> Reconciler? {
        guard reconcileRequested, let http, let registry else {
            reconcileTask = nil
            return nil
        }
        reconcileRequested = false
        let endpoint = ARIEndpoint(url: config.ari.url, username: config.ari.username, password: config.ari.password, appName: config.ari.appName)
        return Reconciler(ari: ARIClient(endpoint: endpoint, http: http), registry: registry, idPrefix: config.calls.idPrefix, logger: logger)
    }

    /// `media.realtimePriority`, applied once at start (see `ThreadPriority`).
    private func applyRealtimePriority(_ priority: Int) {
        guard priority > 0 else { return }
        if let failure = ThreadPriority.setProcessRealtime(priority) {
            logger.warning("The daemon keeps normal scheduling: real-time priority was refused", metadata: [
                "priority": "\(priority)", "error": "\(failure)",
                "fix": "allow it (LimitRTPRIO=\(priority) in the unit, or CAP_SYS_NICE) or set media.realtimePriority to 0",
            ])
        } else {
            logger.info("The daemon runs at real-time priority", metadata: ["policy": "SCHED_RR", "priority": "\(priority)"])
        }
    }

    // MARK: Reload

    /// SIGHUP or `foneaictl reload`: a bad config is rejected and the old one stays in force.
    public func reload() async -> ReloadInfo {
        notifier.reloading()
        defer { notifier.ready() }
        let info: ReloadInfo
        do {
            let loaded = try ConfigLoader.load(path: configPath)
            for warning in loaded.warnings { logger.warning("Config warning", metadata: ["warning": "\(warning)"]) }
            let notes = apply(loaded.config)
            info = ReloadInfo(at: Date().timeIntervalSince1970, ok: true, message: notes.isEmpty ? "reloaded" : notes.joined(separator: "; "))
            logger.info("Configuration reloaded", metadata: ["path": "\(configPath)", "notes": "\(info.message)"])
        } catch {
            info = ReloadInfo(at: Date().timeIntervalSince1970, ok: false, message: "\(error)")
            logger.error("Configuration reload rejected; the previous configuration stays in force", metadata: ["path": "\(configPath)", "error": "\(error)"])
        }
        lastReload = info
        await publishStatus()
        return info
    }

    private func apply(_ new: BridgeConfig) -> [String] {
        var notes: [String] = []
        let old = config
        config = new
        logLevel.level = new.log.logLevel
        if new.rtpServer != old.rtpServer { notes.append("rtpServer changes need a restart") }
        if new.control != old.control { notes.append("control.socketPath changes need a restart") }
        if new.media.realtimePriority != old.media.realtimePriority { notes.append("media.realtimePriority changes need a restart") }
        if let http, let rtp {
            Task { [registry, environment = makeEnvironment(http: http, rtp: rtp), maxCalls = new.calls.maxCalls] in
                await registry?.update(environment: environment, maxCalls: maxCalls)
            }
        }
        if new.ari != old.ari {
            notes.append("ARI settings changed: reconnecting")
            startEvents()
        }
        return notes
    }

    // MARK: Read by the control handler

    var uptime: Double { (ContinuousClock.now - startedAt).seconds }
    var ariConnectedNow: Bool { ariConnected }
    var currentConfig: BridgeConfig { config }
    var registryIfRunning: CallRegistry? { registry }
    var configFilePath: String { configPath }
    var lastReloadInfo: ReloadInfo? { lastReload }
    var counterSnapshot: [String: UInt64] { counters.snapshot }
    func counterValue(_ name: BridgeCounters.Name) -> UInt64 { counters[name] }
    func rtpCounters() async -> RTPSocketCounters? { await rtp?.counters() }
    func statusChanged() async { await publishStatus() }

    // MARK: Plumbing

    private func makeEnvironment(http: HTTPClient, rtp: RTPSocket) -> CallEnvironment {
        let endpoint = ARIEndpoint(url: config.ari.url, username: config.ari.username, password: config.ari.password, appName: config.ari.appName)
        let ai = AISessionSettings(url: config.ai.serverUrl, tls: Self.tls(caFile: config.ai.caFile),
                                   connectTimeout: .milliseconds(config.ai.connectTimeoutMs), connectAttempts: config.ai.connectAttempts,
                                   dialect: AIProtocol(rawValue: config.ai.protocol) ?? .native,
                                   eventLoopGroup: rtp.eventLoop)
        let media = RTPMediaSettings(inboundFormat: config.rtpServer.format, swap16: config.rtpServer.swap16,
                                     outboundPayloadType: config.asterisk.rtpPayloadType,
                                     timestampIncrement: config.asterisk.packetTimestampIncrement,
                                     maxBufferedAudioMs: config.ai.maxBufferedAudioMs)
        return CallEnvironment(ari: ARIClient(endpoint: endpoint, http: http), rtp: rtp, ai: ai, media: media,
                               transport: config.media.transport, ariTLS: Self.tls(caFile: config.ari.caFile),
                               externalHost: config.rtpServer.hostAndPort, idPrefix: config.calls.idPrefix,
                               playoutOnEnd: .milliseconds(config.ai.playoutOnEndMs), counters: counters, logger: logger)
    }

    static func tls(caFile: String?) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.additionalTrustRoots = [.file(caFile)] }
        return tls
    }

    static func httpConfiguration(_ ari: ARISettings) -> HTTPClient.Configuration {
        HTTPClient.Configuration(tlsConfiguration: tls(caFile: ari.caFile), timeout: .init(connect: .seconds(3), read: .seconds(10)))
    }

    private func publishStatus() async {
        let live = await registry?.liveCalls ?? 0
        var parts: [String] = []
        if stopping {
            parts.append("Stopping: draining \(live) call(s)")
        } else if await registry?.isDraining == true {
            parts.append("Draining (not taking calls): \(live) live call(s)")
        } else {
            parts.append(ariConnected ? "ARI connected" : "Waiting for ARI at \(ARIEndpoint.redacted(config.ari.url))" + (ariProblem.map { " (\($0))" } ?? ""))
            parts.append("\(live) live call(s)")
            parts.append("\(counters[.callsStarted]) handled")
        }
        if let lastReload, !lastReload.ok { parts.append("last reload failed: \(lastReload.message)") }
        notifier.status(parts.joined(separator: ", "))
    }
}

public enum DaemonError: Error, CustomStringConvertible {
    case cannotBindRTP(String, String)

    public var description: String {
        switch self {
        case .cannotBindRTP(let address, let error): "cannot bind the RTP socket rtpServer \(address): \(error)"
        }
    }
}

extension ARIEndpoint {
    /// A URL fit for logs: any `user:password@` part is removed.
    static func redacted(_ url: String) -> String {
        let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        // scheme: "" authority path…; only the authority may hold credentials.
        guard parts.count >= 3, let at = parts[2].lastIndex(of: "@") else { return url }
        var cleaned = parts.map(String.init)
        cleaned[2] = String(parts[2][parts[2].index(after: at)...])
        return cleaned.joined(separator: "/")
    }
}
