import FoundationEssentials
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A fake Asterisk 22: ARI REST + events WebSocket + UnicastRTP (externalMedia) over UDP, and
/// the WebSocket media channel (externalMedia `transport=websocket`, served at
/// `/media/<connection id>` on the ARI port), reproducing the behaviour described in
/// asterisk-facts.md, including the unpleasant parts (the externalMedia/addChannel 422 race, no
/// packets while silent, leaking external channels and bridges, dropped dynamic payload types,
/// strict RTP learning, no event queueing, a WebSocket media channel that enters Stasis only once
/// its socket connects and queues what it is sent).
public final class AsteriskSimulator: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 = ephemeral.
        public var ariPort: Int
        public var username: String
        public var password: String
        public var appName: String
        /// Packets from a new RTP source dropped before it is learned.
        public var strictRTPLearnPackets: Int
        /// Address of the RTP sockets (UNICASTRTP_LOCAL_ADDRESS).
        public var rtpHost: String
        /// Delay between the externalMedia answer and the channel's StasisStart, in ms.
        public var externalStasisDelayMs: ClosedRange<Double>
        public var asteriskID: String
        public var asteriskVersion: String
        public var logLevel: Logger.Level

        public init(
            host: String = "127.0.0.1",
            ariPort: Int = 0,
            username: String = "asterisk",
            password: String = "secret",
            appName: String = "foneai",
            strictRTPLearnPackets: Int = 4,
            rtpHost: String = "127.0.0.1",
            externalStasisDelayMs: ClosedRange<Double> = 20...80,
            asteriskID: String = "02:fc:00:00:00:01",
            asteriskVersion: String = "22.10.1",
            logLevel: Logger.Level = .warning
        ) {
            self.host = host
            self.ariPort = ariPort
            self.username = username
            self.password = password
            self.appName = appName
            self.strictRTPLearnPackets = strictRTPLearnPackets
            self.rtpHost = rtpHost
            self.externalStasisDelayMs = externalStasisDelayMs
            self.asteriskID = asteriskID
            self.asteriskVersion = asteriskVersion
            self.logLevel = logLevel
        }
    }

    public let configuration: Configuration
    let core: AsteriskCore
    private let server: SimHTTPServer
    private let stopped = Mutex(false)

    private init(configuration: Configuration, core: AsteriskCore, server: SimHTTPServer) {
        self.configuration = configuration
        self.core = core
        self.server = server
    }

    /// Starts the ARI HTTP/WebSocket server.
    public static func start(_ configuration: Configuration = Configuration()) async throws -> AsteriskSimulator {
        let core = AsteriskCore(config: configuration, group: MultiThreadedEventLoopGroup.singleton)
        var logger = Logger(label: "foneai-sim.asterisk")
        // Hummingbird logs an error on every cancellation-stop: keep it quiet unless debugging.
        logger.logLevel = configuration.logLevel <= .debug ? configuration.logLevel : .critical

        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            var request = request
            let (fullPath, query) = SimURL.split(request.uri.string)
            if fullPath.hasPrefix("/media/") {
                // chan_websocket's /media/<connection id>: reached only when no upgrade happened.
                let res = core.mediaNonUpgradeResponse(connectionID: String(fullPath.dropFirst("/media/".count)))
                return .simJSON(status: res.status, body: res.body)
            }
            guard fullPath == "/ari" || fullPath.hasPrefix("/ari/") else {
                core.counters.unknownRequests.increment()
                return .simJSON(status: 404, body: SimJSON.object([("message", "Resource not found")]).serialized)
            }
            guard core.authorized(authorizationHeader: request.headers[.authorization], query: query) else {
                core.counters.unauthorizedRequests.increment()
                var headers = HTTPFields()
                headers[.wwwAuthenticate] = "Basic realm=\"Asterisk REST Interface\""
                headers[.contentType] = "application/json"
                return Response(
                    status: .unauthorized, headers: headers,
                    body: .init(byteBuffer: ByteBuffer(string: SimJSON.object([("error", "Authentication required")]).serialized)))
            }
            let sub = String(fullPath.dropFirst(4))
            if sub == "/events" || sub == "/events/" {
                return .simJSON(status: 400, body: SimJSON.object([("error", "WebSocket upgrade required")]).serialized)
            }
            var body: String? = nil
            if request.method == .post || request.method == .put {
                if let buf = try? await request.collectBody(upTo: 1 << 20), buf.readableBytes > 0 {
                    body = String(buffer: buf)
                }
            }
            let res = await core.handleREST(method: request.method.rawValue, path: sub, query: query, body: body)
            return .simJSON(status: res.status, body: res.body)
        }

        let wsConfig = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: nil),
            ws: .init(maxFrameSize: 1 << 20, autoPing: .disabled)
        )
        let shouldUpgrade: @Sendable (HTTPRequest, any Channel, Logger) throws -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> = { head, channel, _ in
            let (path, query) = SimURL.split(head.path ?? "/")
            if path.hasPrefix("/media/") {
                // No ARI authentication here (chan_websocket does not check it); the subprotocol must be `media`.
                let offered = head.headerFields[.secWebSocketProtocol].map {
                    $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                }
                let check = core.checkMediaUpgrade(
                    connectionID: String(path.dropFirst("/media/".count)), subprotocols: offered,
                    authorization: head.headerFields[.authorization])
                guard case .accept(let ws) = check else { return .dontUpgrade }
                var headers = HTTPFields()
                if offered != nil { headers[.secWebSocketProtocol] = "media" }
                let eventLoop = channel.eventLoop
                return .upgrade(headers) { inbound, outbound, _ in
                    await core.runMediaSocket(ws, inbound: inbound, outbound: outbound, eventLoop: eventLoop)
                }
            }
            guard path == "/ari/events" || path == "/ari/events/" else { return .dontUpgrade }
            guard core.authorized(authorizationHeader: head.headerFields[.authorization], query: query) else { return .dontUpgrade }
            let apps = (query["app"] ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
            guard !apps.isEmpty else { return .dontUpgrade }
            var headers = HTTPFields()
            if let proto = head.headerFields[.secWebSocketProtocol] {
                let offered = proto.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                headers[.secWebSocketProtocol] = offered.contains("ari") ? "ari" : (offered.first ?? "ari")
            }
            // Register before the 101 answer goes out: once the client sees the upgrade, the app is
            // active (events are buffered until the writer runs). Unregistered when the TCP closes.
            let (stream, cont) = AsyncStream<String>.makeStream()
            let sid = core.registerSocket(apps: apps, continuation: cont, channel: channel)
            channel.closeFuture.whenComplete { _ in core.unregisterSocket(sid) }
            return .upgrade(headers) { inbound, outbound, _ in
                await core.runEventSocket(id: sid, stream: stream, continuation: cont, inbound: inbound, outbound: outbound)
            }
        }
        let server = try await SimHTTPServer.start(description: "ARI \(configuration.host):\(configuration.ariPort)") { onRunning in
            Application(
                responder: responder,
                server: .http1WebSocketUpgrade(configuration: wsConfig, shouldUpgrade: shouldUpgrade),
                configuration: .init(address: .hostname(configuration.host, port: configuration.ariPort), serverName: nil, reuseAddress: true),
                onServerRunning: onRunning,
                eventLoopGroupProvider: .singleton,
                logger: logger
            )
        }
        return AsteriskSimulator(configuration: configuration, core: core, server: server)
    }

    /// Stops the server, closes event sockets and RTP sockets.
    public func stop() async {
        let already = stopped.withLock { s in
            defer { s = true }
            return s
        }
        if already { return }
        core.shutdown()
        await server.stop()
    }

    public var ariPort: Int { server.port }
    /// "http://127.0.0.1:PORT"
    public var ariURL: String { "http://\(configuration.host):\(server.port)" }
    public var username: String { configuration.username }
    public var password: String { configuration.password }
    public var appName: String { configuration.appName }

    /// Places a call into the dialplan; it reaches `Stasis(app)` at once (or fails if no app is connected).
    @discardableResult
    public func placeCall(_ spec: SimCallSpec = SimCallSpec()) async -> SimCall {
        core.placeCall(spec)
    }

    /// Ids of every channel still alive (callers in Stasis, external media channels).
    public var liveChannelIDs: [String] {
        get async { core.state.withLock { st in st.channels.values.sorted { $0.order < $1.order }.map(\.id) } }
    }

    /// Ids of every bridge still alive.
    public var liveBridgeIDs: [String] {
        get async { core.state.withLock { st in st.bridges.values.sorted { $0.order < $1.order }.map(\.id) } }
    }

    /// Ids of the live external media channels (UnicastRTP and WebSocket).
    public var liveExternalChannelIDs: [String] {
        get async {
            core.state.withLock { st in st.channels.values.filter { $0.kind == .external }.sorted { $0.order < $1.order }.map(\.id) }
        }
    }

    /// Ids of the callers still in Stasis.
    public var liveCallerIDs: [String] {
        get async {
            core.state.withLock { st in st.channels.values.filter { $0.kind == .caller }.sorted { $0.order < $1.order }.map(\.id) }
        }
    }

    /// Whether an events WebSocket is connected for `app` (default: the configured app).
    public func isAppConnected(_ app: String? = nil) async -> Bool {
        core.isAppActive(app ?? configuration.appName)
    }

    /// Number of connected events WebSockets.
    public var eventSocketCount: Int {
        get async { core.state.withLock { $0.sockets.count } }
    }

    /// Waits until an events socket is connected for the app; false on timeout.
    public func waitForAppConnected(_ app: String? = nil, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if core.isAppActive(app ?? configuration.appName) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return core.isAppActive(app ?? configuration.appName)
    }

    /// Counter snapshot.
    public var counters: SimCounters { get async { core.counters.snapshot() } }
    public var droppedDynamicPayloadPackets: Int { get async { core.counters.droppedDynamicPayloadPackets.load(ordering: .relaxed) } }
    public var rtpPacketsReceived: Int { get async { core.counters.rtpPacketsReceived.load(ordering: .relaxed) } }
    public var rtpPacketsSent: Int { get async { core.counters.rtpPacketsSent.load(ordering: .relaxed) } }
    public var unknownRequests: Int { get async { core.counters.unknownRequests.load(ordering: .relaxed) } }
    public var droppedStrictRTPPackets: Int { get async { core.counters.droppedStrictRTPPackets.load(ordering: .relaxed) } }

    /// Up to 50 descriptions ("source -> channel (expected …)") of packets dropped by strict RTP.
    public var strictRTPDropSources: [String] { get async { core.counters.strictDropSources.withLock { $0 } } }

    /// Drops every events WebSocket abruptly (as if Asterisk's HTTP side restarted). Channels stay.
    public func restartARI() async {
        core.dropAllEventSockets()
    }

    /// Pushes an arbitrary text frame to every connected events socket.
    public func sendRawEvent(_ json: String) async {
        core.sendRaw(json)
    }

    /// What the WebSocket media channel `id` (externalMedia `transport=websocket`) saw so far;
    /// nil when there is no such live channel (use `SimCall.mediaWebSocketStats` after the call).
    public func mediaWebSocketStats(ofChannel id: String) async -> SimMediaWebSocketStats? {
        core.mediaSocket(ofChannel: id)?.stats
    }

    /// Test hook: the WebSocket media channel `id` sends `MEDIA_XOFF` now and `MEDIA_XON` only
    /// after `duration` (as if its queue had filled up). False when there is no such channel.
    @discardableResult
    public func forceMediaXOFF(channel id: String, for duration: Duration) async -> Bool {
        guard let ws = core.mediaSocket(ofChannel: id) else { return false }
        ws.forceXOFF(for: duration)
        return true
    }

    /// The UDP port of an external media channel's RTP socket (UNICASTRTP_LOCAL_PORT).
    public func rtpPort(ofExternalChannel id: String) async -> Int? {
        core.state.withLock { $0.channels[id]?.localPort }
    }
}

extension AsteriskCore {
    func runEventSocket(
        id sid: Int, stream: AsyncStream<String>, continuation cont: AsyncStream<String>.Continuation,
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter
    ) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    for try await _ in inbound {}
                } catch {}
            }
            group.addTask {
                for await text in stream {
                    do { try await outbound.write(.text(text)) } catch { break }
                }
            }
            await group.next()
            group.cancelAll()
            cont.finish()
        }
        unregisterSocket(sid)
    }
}
