import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// What an AI session reports to its call.
public enum AISessionEvent: Sendable {
    case connected
    case connectFailed(reason: String)
    case message(AIInboundMessage)
    /// A text frame that is not a valid message; counted and dropped.
    case malformed(reason: String)
    /// The socket closed or broke after it had connected.
    case closed(reason: String)
}

public struct AISessionSettings: Sendable {
    public let url: String
    public let connectTimeout: Duration
    public let connectAttempts: Int
    public let maxFrameBytes: Int
    public let dialect: AIProtocol
    /// Where the sessions' sockets run: the RTP socket's event loop, so caller audio and AI audio
    /// cross no thread between the RTP socket and the AI's socket.
    public let eventLoopGroup: any EventLoopGroup
    /// Built once: loading the trust roots is too slow to repeat for every call. Nil for `ws://`.
    let tlsContext: Result<NIOSSLContext, any Error>?

    public init(url: String, tls: TLSConfiguration?, connectTimeout: Duration, connectAttempts: Int,
                dialect: AIProtocol = .native, maxFrameBytes: Int = 1 << 20,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.url = url
        self.eventLoopGroup = eventLoopGroup
        self.dialect = dialect
        self.connectTimeout = connectTimeout
        self.connectAttempts = connectAttempts
        self.maxFrameBytes = maxFrameBytes
        if SimpleURL(url)?.isSecure == true {
            tlsContext = Result { try NIOSSLContext(configuration: tls ?? .makeClientConfiguration()) }
        } else {
            tlsContext = nil
        }
    }
}

/// One call's WebSocket to the AI server, in the configured dialect (docs/ai-protocol.md), built
/// from SwiftNIO's HTTP upgrade and WebSocket codec with `AIWebSocketHandler` at the end of the
/// pipeline: media frames stay on the event loop, only control events reach the call's task.
public struct AISessionClient: Sendable {
    let settings: AISessionSettings
    let logger: Logger

    public init(settings: AISessionSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Connects (bounded attempts, each bounded in time), sends the dialect's opening messages,
    /// then runs until the session closes: after `outbound.finish`, when the AI closes, or on
    /// cancellation. Audio from the AI goes to `onAudio` on the event loop (with its rate when the
    /// dialect fixes it); everything else goes to `onEvent`, in order.
    public func run(call: AICallInfo, outbound: AIOutbound,
                    onAudio: @escaping @Sendable (ByteBuffer, Int?) -> Void,
                    onEvent: @escaping @Sendable (AISessionEvent) async -> Void) async {
        var lastError = "not attempted"
        for attempt in 1...max(1, settings.connectAttempts) {
            if Task.isCancelled { return }
            switch await attemptSession(call: call, outbound: outbound, onAudio: onAudio, onEvent: onEvent) {
            case .finished:
                return
            case .failedToConnect(let reason):
                lastError = reason
                logger.debug("AI connect attempt failed", metadata: ["attempt": "\(attempt)", "reason": "\(reason)"])
                if attempt < settings.connectAttempts {
                    try? await Task.sleep(for: .milliseconds(150 * attempt))
                }
            }
        }
        await onEvent(.connectFailed(reason: lastError))
    }

    private enum AttemptResult { case finished, failedToConnect(String) }

    private enum Signal: Sendable {
        case connected
        case timedOut
        case event(AISessionEvent)
        case ended(String?)
    }

    private func attemptSession(call: AICallInfo, outbound: AIOutbound,
                                onAudio: @escaping @Sendable (ByteBuffer, Int?) -> Void,
                                onEvent: @escaping @Sendable (AISessionEvent) async -> Void) async -> AttemptResult {
        guard let url = SimpleURL(settings.url), url.scheme == "ws" || url.scheme == "wss", let port = url.effectivePort else {
            return .failedToConnect("ai.serverUrl is not a ws:// or wss:// URL")
        }
        var tls: NIOSSLContext?
        switch settings.tlsContext {
        case .success(let context): tls = context
        case .failure(let error): return .failedToConnect("TLS set-up failed: \(error)")
        case nil: break
        }
        let (signals, signal) = AsyncStream.makeStream(of: Signal.self)
        let channel = NIOLockedValueBox<(any Channel)?>(nil)
        let connecting = Task { [settings, tls] in
            do {
                let upgraded = try await Self.connect(url: url, port: port, settings: settings, tls: tls, loop: outbound.eventLoop,
                                                      onChannel: { new in channel.withLockedValue { $0 = new } }) { pipelineChannel in
                    // Runs on the event loop once the AI accepted the upgrade.
                    let handler = AIWebSocketHandler(dialect: settings.dialect.makeDialect(call: call), outbound: outbound, onAudio: onAudio) { event in
                        switch event {
                        case .inbound(let inbound): signal.yield(.event(inbound))
                        case .closed(let failure): signal.yield(.ended(failure))
                        }
                    }
                    try pipelineChannel.pipeline.syncOperations.addHandlers(
                        NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 4096,
                                                    maxAccumulatedFrameSize: settings.maxFrameBytes),
                        handler)
                    signal.yield(.connected)
                    // Writes pass the upgrade handler only once it has left the pipeline, after this tick.
                    let opening = NIOLoopBound(handler, eventLoop: pipelineChannel.eventLoop)
                    pipelineChannel.eventLoop.execute { opening.value.open(call: call) }
                }
                if !upgraded { signal.yield(.ended("the AI server did not accept the WebSocket upgrade")) }
            } catch {
                signal.yield(.ended("\(error)"))
            }
        }
        let timer = Task { [timeout = settings.connectTimeout] in
            try? await Task.sleep(for: timeout)
            signal.yield(.timedOut)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            var connected = false
            for await event in signals {
                switch event {
                case .connected:
                    connected = true
                    timer.cancel()
                    await onEvent(.connected)
                case .event(let inbound):
                    await onEvent(inbound)
                case .timedOut:
                    if !connected {
                        channel.withLockedValue { $0 }?.close(promise: nil)
                        connecting.cancel()
                        return .failedToConnect("no connection within \(settings.connectTimeout)")
                    }
                case .ended(let failure):
                    signal.finish()
                    if !connected { return .failedToConnect(failure ?? "closed before the handshake") }
                    await onEvent(.closed(reason: failure ?? "closed"))
                    return .finished
                }
            }
            return .finished
        } onCancel: {
            channel.withLockedValue { $0 }?.close(promise: nil)
            signal.yield(.ended("cancelled"))
        }
    }

    /// TCP (and TLS) connect, then the HTTP upgrade; true once `onUpgrade` has set the pipeline up.
    private static func connect(url: SimpleURL, port: Int, settings: AISessionSettings, tls: NIOSSLContext?, loop: any EventLoop,
                                onChannel: @escaping @Sendable (any Channel) -> Void,
                                onUpgrade: @escaping @Sendable (any Channel) throws -> Void) async throws -> Bool {
        let isIP = IPAddressText.isIPv4(url.host) || IPAddressText.isIPv6(url.host)
        let hostHeader = (url.host.contains(":") ? "[\(url.host)]" : url.host) + (url.port.map { ":\($0)" } ?? "")
        let path = url.pathAndQuery.hasPrefix("/") ? url.pathAndQuery : "/" + url.pathAndQuery
        let maxFrame = settings.maxFrameBytes
        let upgrade: EventLoopFuture<Bool> = try await ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(settings.connectTimeout.components.seconds) * 1_000_000_000
                + settings.connectTimeout.components.attoseconds / 1_000_000_000))
            // A slow AI makes the socket unwritable long before memory grows: caller audio is then
            // dropped (and counted) rather than queued (about 1 s of 16 kHz audio).
            .channelOption(.writeBufferWaterMark, value: .init(low: 16 * 1024, high: 32 * 1024))
            .connect(host: url.host, port: port) { channel in
                onChannel(channel)
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // An IP address is not a valid SNI name (the config check refuses one for wss:// anyway).
                        let handler = try NIOSSLClientHandler(context: tls, serverHostname: isIP ? nil : url.host)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    let upgrader = NIOTypedWebSocketClientUpgrader<Bool>(maxFrameSize: maxFrame) { channel, _ in
                        channel.eventLoop.makeCompletedFuture {
                            try onUpgrade(channel)
                            return true
                        }
                    }
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: hostHeader)
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
                    var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: .init(
                        upgradeRequestHead: head, upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.close(promise: nil)
                            return channel.eventLoop.makeSucceededFuture(false)
                        }))
                    // A frame the AI sends right behind its 101 answer belongs to the session.
                    configuration.leftOverBytesStrategy = .forwardBytes
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: configuration)
                }
            }
        return try await upgrade.get()
    }
}
