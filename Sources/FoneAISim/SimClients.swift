import FoundationEssentials
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import Synchronization
import WSClient

/// A minimal HTTP/1.1 client (one request per connection), enough to drive ARI REST in tests.
public enum SimHTTPClient {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: String
        public var json: SimJSON? { SimJSON.parse(body) }
    }

    public struct ClientError: Error, CustomStringConvertible {
        public var description: String
    }

    /// `url` like "http://127.0.0.1:8088/ari/channels?x=y". Basic auth when username is given.
    public static func request(
        _ method: String, _ url: String, username: String? = nil, password: String? = nil,
        body: String? = nil, timeout: Duration = .seconds(10)
    ) async throws -> Response {
        guard url.hasPrefix("http://") else { throw ClientError(description: "only http:// URLs") }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = String(rest[..<slash])
        let target = slash == rest.endIndex ? "/" : String(rest[slash...])
        let host: String, port: Int
        if let c = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<c])
            port = Int(hostPort[hostPort.index(after: c)...]) ?? 80
        } else {
            host = hostPort
            port = 80
        }
        var req = "\(method) \(target) HTTP/1.1\r\nHost: \(hostPort)\r\nConnection: close\r\nUser-Agent: foneai-sim\r\n"
        if let username {
            let cred = Data("\(username):\(password ?? "")".utf8).base64EncodedString()
            req += "Authorization: Basic \(cred)\r\n"
        }
        let bodyBytes = Array((body ?? "").utf8)
        if body != nil { req += "Content-Type: application/json\r\n" }
        req += "Content-Length: \(bodyBytes.count)\r\n\r\n"
        let requestHead = req

        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { ch in
                ch.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch)
                }
            }
        let raw: [UInt8] = try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    var out = ByteBuffer(string: requestHead)
                    out.writeBytes(bodyBytes)
                    try await outbound.write(out)
                    var acc: [UInt8] = []
                    for try await var chunk in inbound {
                        acc.append(contentsOf: chunk.readBytes(length: chunk.readableBytes) ?? [])
                        if Self.isComplete(acc) { break }
                    }
                    return acc
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next()!
            group.cancelAll()
            guard let first else {
                channel.channel.close(promise: nil)
                throw ClientError(description: "timeout")
            }
            return first
        }
        return try parse(raw)
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    static func isComplete(_ bytes: [UInt8]) -> Bool {
        guard let end = headerEnd(bytes) else { return false }
        let head = String(decoding: bytes[..<end], as: UTF8.self).lowercased()
        for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
            let n = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            return bytes.count >= end + 4 + n
        }
        if head.hasPrefix("http/1.1 204") || head.hasPrefix("http/1.1 304") { return true }
        return false
    }

    static func parse(_ bytes: [UInt8]) throws -> Response {
        guard let end = headerEnd(bytes) else { throw ClientError(description: "incomplete response") }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        var lines = head.split(separator: "\r\n").map(String.init)
        guard !lines.isEmpty else { throw ClientError(description: "no status line") }
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw ClientError(description: "bad status line") }
        var headers: [String: String] = [:]
        for l in lines {
            if let c = l.firstIndex(of: ":") {
                headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
        }
        var bodyBytes = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var out: [UInt8] = []
            var i = 0
            while i < bodyBytes.count {
                guard let lineEnd = (i..<bodyBytes.count - 1).first(where: { bodyBytes[$0] == 13 && bodyBytes[$0 + 1] == 10 }) else { break }
                let size = Int(String(decoding: bodyBytes[i..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
                if size == 0 { break }
                let start = lineEnd + 2
                out.append(contentsOf: bodyBytes[start..<min(bodyBytes.count, start + size)])
                i = start + size + 2
            }
            bodyBytes = out
        } else if let n = headers["content-length"].flatMap(Int.init), bodyBytes.count > n {
            bodyBytes = Array(bodyBytes[..<n])
        }
        return Response(status: status, headers: headers, body: String(decoding: bodyBytes, as: UTF8.self))
    }
}

/// An ARI events WebSocket client that records every event (for tests that play the ARI application).
public final class SimARIEventClient: Sendable {
    struct State {
        var events: [SimJSON] = []
        var raw: [String] = []
        var connected = false
        var closed = false
    }

    private let state = Mutex(State())
    private let closeStream: AsyncStream<Void>
    private let closeCont: AsyncStream<Void>.Continuation
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    private init() {
        (closeStream, closeCont) = AsyncStream<Void>.makeStream()
    }

    /// Connects to `ws://host:port/ari/events?app=APP&api_key=USER:PASS` (api_key in the query, like
    /// many ARI clients). Returns once the upgrade succeeded; throws if it failed.
    public static func connect(ariURL: String, app: String, username: String, password: String, useBasicAuth: Bool = false) async throws -> SimARIEventClient {
        let client = SimARIEventClient()
        let wsBase = ariURL.replacingOccurrences(of: "http://", with: "ws://")
        var url = "\(wsBase)/ari/events?app=\(SimURL.percentEncode(app))"
        var config = WebSocketClientConfiguration(maxFrameSize: 1 << 20)
        if useBasicAuth {
            config.additionalHeaders[.authorization] = "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        } else {
            url += "&api_key=\(SimURL.percentEncode("\(username):\(password)"))"
        }
        var logger = Logger(label: "foneai-sim.ari-client")
        logger.logLevel = .critical
        let (connectedStream, connectedCont) = AsyncStream<Bool>.makeStream()
        let closeStream = client.closeStream
        let t = Task {
            do {
                try await WebSocketClient.connect(url: url, configuration: config, logger: logger) { inbound, _, _ in
                    client.state.withLock { $0.connected = true }
                    connectedCont.yield(true)
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask {
                            do {
                                for try await msg in inbound.messages(maxSize: 1 << 22) {
                                    if case .text(let text) = msg {
                                        let json = SimJSON.parse(text)
                                        client.state.withLock { st in
                                            st.raw.append(text)
                                            if let json { st.events.append(json) }
                                        }
                                    }
                                }
                            } catch {}
                        }
                        group.addTask {
                            for await _ in closeStream {}
                        }
                        await group.next()
                        group.cancelAll()
                    }
                }
            } catch {}
            client.state.withLock { $0.closed = true }
            connectedCont.yield(false)
            connectedCont.finish()
        }
        client.task.withLock { $0 = t }
        var it = connectedStream.makeAsyncIterator()
        let ok = await it.next() ?? false
        guard ok else { throw SimHTTPClient.ClientError(description: "events WebSocket upgrade failed") }
        return client
    }

    /// All events received so far (parsed).
    public var events: [SimJSON] { state.withLock { $0.events } }
    /// All text frames received so far.
    public var rawMessages: [String] { state.withLock { $0.raw } }
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Events of a type (optionally for a channel id).
    public func events(ofType type: String, channel: String? = nil) -> [SimJSON] {
        events.filter { e in
            e["type"]?.stringValue == type && (channel == nil || e["channel"]?["id"]?.stringValue == channel)
        }
    }

    /// Waits for the `count`-th event matching; nil on timeout.
    public func waitForEvent(
        _ type: String, channel: String? = nil, count: Int = 1, timeout: Duration = .seconds(5),
        where predicate: @Sendable (SimJSON) -> Bool = { _ in true }
    ) async -> SimJSON? {
        let deadline = ContinuousClock.now + timeout
        var scanned = 0
        var found = 0
        while true {
            // Only look at events that arrived since the last look.
            let fresh: [SimJSON] = state.withLock { st in
                scanned < st.events.count ? Array(st.events[scanned...]) : []
            }
            scanned += fresh.count
            for e in fresh
            where e["type"]?.stringValue == type && (channel == nil || e["channel"]?["id"]?.stringValue == channel) && predicate(e) {
                found += 1
                if found >= count { return e }
            }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Waits until the socket is closed by the server; false on timeout.
    public func waitForClose(timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if isClosed { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return isClosed
    }

    /// Closes the socket (normal close) and waits for the client task.
    public func close() async {
        closeCont.finish()
        let t = task.withLock { $0 }
        await t?.value
    }
}

/// A UDP RTP endpoint playing the bridge's side in tests: receives what the simulator sends and can
/// send RTP back.
public final class SimRTPPeer: Sendable {
    public struct Packet: Sendable {
        public var source: String
        public var sourcePort: Int
        public var arrivalNanos: UInt64
        public var payloadType: UInt8
        public var marker: Bool
        public var sequenceNumber: UInt16
        public var timestamp: UInt32
        public var ssrc: UInt32
        public var payload: [UInt8]

        /// Payload as big-endian 16-bit samples (slin/slin16).
        public var samplesBigEndian: [Int16] {
            var out = [Int16]()
            var i = 0
            while i + 1 < payload.count {
                out.append(Int16(bitPattern: UInt16(payload[i]) << 8 | UInt16(payload[i + 1])))
                i += 2
            }
            return out
        }
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let packets: Mutex<[Packet]>
        let recordPayloads: Bool
        init(recordPayloads: Bool) {
            packets = Mutex([])
            self.recordPayloads = recordPayloads
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let env = Self.unwrapInboundIn(data)
            let now = simMonotonicNanos()
            guard let (h, payload) = RTPHeader.parse(env.data) else { return }
            var p = payload
            let bytes = recordPayloads ? (p.readBytes(length: p.readableBytes) ?? []) : []
            let pkt = Packet(
                source: env.remoteAddress.ipAddress ?? "", sourcePort: env.remoteAddress.port ?? 0, arrivalNanos: now,
                payloadType: h.payloadType, marker: h.marker, sequenceNumber: h.sequenceNumber, timestamp: h.timestamp,
                ssrc: h.ssrc, payload: bytes)
            packets.withLock { $0.append(pkt) }
        }
    }

    private let channel: any Channel
    private let handler: Handler
    public let port: Int

    private init(channel: any Channel, handler: Handler) {
        self.channel = channel
        self.handler = handler
        self.port = channel.localAddress?.port ?? 0
    }

    /// `recordPayloads: false` keeps only headers and arrival times (cheaper under load).
    public static func bind(host: String = "127.0.0.1", port: Int = 0, recordPayloads: Bool = true) async throws -> SimRTPPeer {
        let handler = Handler(recordPayloads: recordPayloads)
        let ch = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler) }
            }
            .bind(host: host, port: port).get()
        return SimRTPPeer(channel: ch, handler: handler)
    }

    public var packets: [Packet] { handler.packets.withLock { $0 } }
    public var packetCount: Int { handler.packets.withLock { $0.count } }

    /// Sends one RTP packet to host:port.
    public func send(
        to host: String, port: Int, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32 = 0x1234_5678,
        payload: [UInt8], marker: Bool = false
    ) async throws {
        var buf = channel.allocator.buffer(capacity: 12 + payload.count)
        buf.writeInteger(UInt8(0x80))
        buf.writeInteger((marker ? 0x80 : 0) | (payloadType & 0x7F))
        buf.writeInteger(sequenceNumber, endianness: .big)
        buf.writeInteger(timestamp, endianness: .big)
        buf.writeInteger(ssrc, endianness: .big)
        buf.writeBytes(payload)
        let addr = try SocketAddress(ipAddress: host, port: port)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: addr, data: buf))
    }

    /// Sends raw bytes (e.g. a malformed packet).
    public func sendRaw(to host: String, port: Int, bytes: [UInt8]) async throws {
        var buf = channel.allocator.buffer(capacity: bytes.count)
        buf.writeBytes(bytes)
        try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: try SocketAddress(ipAddress: host, port: port), data: buf))
    }

    /// Big-endian bytes of samples (for PT 10/11/118 payloads).
    public static func bigEndianBytes(_ samples: [Int16]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(samples.count * 2)
        for s in samples {
            let u = UInt16(bitPattern: s)
            out.append(UInt8(u >> 8))
            out.append(UInt8(u & 0xFF))
        }
        return out
    }

    public func close() async {
        try? await channel.close()
    }
}

/// A generic WebSocket client for tests (e.g. to play the bridge against `AITestServer`).
public final class SimWebSocketClient: Sendable {
    public enum Message: Sendable {
        case text(String)
        case binary([UInt8])
    }

    struct State {
        var received: [Message] = []
        var binaryArrivalNanos: [UInt64] = []
        var closed = false
        var outbound: WebSocketOutboundWriter?
    }

    private let state = Mutex(State())
    private let closeCont: AsyncStream<Void>.Continuation
    private let closeStream: AsyncStream<Void>
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    private init() {
        (closeStream, closeCont) = AsyncStream<Void>.makeStream()
    }

    /// - Parameters:
    ///   - subprotocol: offered in `Sec-WebSocket-Protocol` (e.g. "media" for Asterisk's `/media/<id>`).
    ///   - headers: extra request headers (e.g. "Authorization").
    public static func connect(url: String, subprotocol: String? = nil, headers: [String: String] = [:]) async throws -> SimWebSocketClient {
        let client = SimWebSocketClient()
        var extra = HTTPFields()
        if let subprotocol { extra[.secWebSocketProtocol] = subprotocol }
        for (name, value) in headers {
            if let field = HTTPField.Name(name) { extra[field] = value }
        }
        var logger = Logger(label: "foneai-sim.ws-client")
        logger.logLevel = .critical
        let (connectedStream, connectedCont) = AsyncStream<Bool>.makeStream()
        let closeStream = client.closeStream
        let t = Task {
            do {
                try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 22, additionalHeaders: extra), logger: logger) { inbound, outbound, _ in
                    client.state.withLock { $0.outbound = outbound }
                    connectedCont.yield(true)
                    await withTaskGroup(of: Void.self) { group in
                        group.addTask {
                            do {
                                for try await msg in inbound.messages(maxSize: 1 << 24) {
                                    switch msg {
                                    case .text(let s): client.state.withLock { $0.received.append(.text(s)) }
                                    case .binary(var b):
                                        let bytes = b.readBytes(length: b.readableBytes) ?? []
                                        let now = simMonotonicNanos()
                                        client.state.withLock {
                                            $0.received.append(.binary(bytes))
                                            $0.binaryArrivalNanos.append(now)
                                        }
                                    }
                                }
                            } catch {}
                        }
                        group.addTask { for await _ in closeStream {} }
                        await group.next()
                        group.cancelAll()
                    }
                }
            } catch {}
            client.state.withLock { $0.closed = true }
            connectedCont.yield(false)
            connectedCont.finish()
        }
        client.task.withLock { $0 = t }
        var it = connectedStream.makeAsyncIterator()
        guard await it.next() == true else { throw SimHTTPClient.ClientError(description: "WebSocket connect failed: \(url)") }
        return client
    }

    public var received: [Message] { state.withLock { $0.received } }
    public var receivedTexts: [String] {
        received.compactMap { if case .text(let s) = $0 { return s } else { return nil } }
    }
    /// All binary payloads, decoded as PCM16LE.
    public var receivedSamples: [Int16] {
        received.flatMap { m -> [Int16] in
            if case .binary(let b) = m { return ToneAnalysis.samplesFromPCM16LE(b) }
            return []
        }
    }
    public var isClosed: Bool { state.withLock { $0.closed } }
    /// CLOCK_MONOTONIC ns of each binary message received.
    public var binaryArrivalNanos: [UInt64] { state.withLock { $0.binaryArrivalNanos } }

    /// Waits until a text message satisfying `predicate` arrived; returns it (nil on timeout).
    public func waitForText(timeout: Duration = .seconds(5), where predicate: @Sendable (String) -> Bool) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let t = receivedTexts.first(where: predicate) { return t }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return receivedTexts.first(where: predicate)
    }

    public func send(text: String) async throws {
        guard let out = state.withLock({ $0.outbound }) else { throw SimHTTPClient.ClientError(description: "not connected") }
        try await out.write(.text(text))
    }

    public func send(binary bytes: [UInt8]) async throws {
        guard let out = state.withLock({ $0.outbound }) else { throw SimHTTPClient.ClientError(description: "not connected") }
        try await out.write(.binary(ByteBuffer(bytes: bytes)))
    }

    public func send(samples: [Int16]) async throws {
        try await send(binary: ToneAnalysis.pcm16LEBytes(samples))
    }

    public func waitForClose(timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if isClosed { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return isClosed
    }

    public func close() async {
        closeCont.finish()
        let t = task.withLock { $0 }
        await t?.value
    }
}

/// Helpers to find free loopback ports.
public enum SimPorts {
    /// Binds UDP port 0 on `host`, reads the port, closes.
    public static func freeUDPPort(host: String = "127.0.0.1") async throws -> Int {
        let ch = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: host, port: 0).get()
        let port = ch.localAddress?.port ?? 0
        try await ch.close()
        return port
    }

    /// Binds TCP port 0 on `host`, reads the port, closes.
    public static func freeTCPPort(host: String = "127.0.0.1") async throws -> Int {
        let ch = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: 0).get()
        let port = ch.localAddress?.port ?? 0
        try await ch.close()
        return port
    }
}
