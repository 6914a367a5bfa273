import FoundationEssentials
import NIOCore
import NIOPosix
import Synchronization

/// The AI side of the load benchmark: a minimal WebSocket server (RFC 6455, no extensions) that
/// answers every binary frame at once, from its event loop, with one 20 ms frame of its own — a
/// tagged echo: the answer's timing is the caller's, its content names the answer (`EchoTags`)
/// so the packet that carries it to the caller can be found after resampling. It records, per
/// frame, when it arrived, when the answer was written and which caller packet it carried.
///
/// `AITestServer` keeps every sample it receives (≈1 GB for 500 calls × 60 s) and hops through an
/// async stream per frame; this one records three numbers per frame, so the simulator process
/// stays small and its timestamps stay close to the socket.
public final class LoadEchoServer: Sendable {
    private let channel: any Channel
    private let registry: LoadEchoRegistry
    public let host: String
    public let path: String

    private init(channel: any Channel, registry: LoadEchoRegistry, host: String, path: String) {
        self.channel = channel
        self.registry = registry
        self.host = host
        self.path = path
    }

    /// Starts listening on `host:port` (0 = any), on `group`'s event loops (the load benchmark
    /// shares one loop between the whole simulator and this server).
    /// `tone` tells the server how to recognise the caller's packets (see `ToneFrameIndexer`).
    public static func start(host: String = "127.0.0.1", port: Int = 0, path: String = "/stream",
                             group: any EventLoopGroup, tone: ToneFrameIndexer, tags: EchoTags) async throws -> LoadEchoServer {
        let registry = LoadEchoRegistry(indexer: tone, tags: tags, path: path)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(LoadEchoHandler(registry: registry))
                }
            }
            .bind(host: host, port: port).get()
        return LoadEchoServer(channel: channel, registry: registry, host: host, path: path)
    }

    public var port: Int { channel.localAddress?.port ?? 0 }
    /// "ws://127.0.0.1:PORT/stream"
    public var url: String { "ws://\(host):\(port)\(path)" }

    /// Snapshots of every session accepted so far, in order.
    public func sessions() -> [LoadEchoSessionRecord] {
        registry.sessions.withLock { $0 }.map { $0.snapshot() }
    }

    public var sessionCount: Int { registry.sessions.withLock { $0.count } }

    public func stop() async {
        try? await channel.close()
    }
}

/// What one AI session saw. Arrays are per binary frame, in arrival order.
public struct LoadEchoSessionRecord: Sendable {
    public var index: Int
    /// `channelId` of the bridge's `start` message (the caller's channel id).
    public var channelId: String?
    public var connectedAtNanos: UInt64
    public var startAtNanos: UInt64?
    /// CLOCK_MONOTONIC ns when each binary frame was read from the socket.
    public var arrivalNanos: [UInt64]
    /// CLOCK_MONOTONIC ns when the answer to each frame had been written and flushed. The answer
    /// to frame `j` carries tag `j % tags.count`.
    public var echoNanos: [UInt64]
    /// Packet index modulo the tone period that each frame carries (-1: not the tone).
    public var toneSlot: [Int16]
    public var textFrames: Int
    public var stopReason: String?
    public var closedAtNanos: UInt64?
    public var protocolErrors: Int
}

final class LoadEchoSession: Sendable {
    let index: Int
    let connectedAtNanos = simMonotonicNanos()
    struct State {
        var channelId: String?
        var startAtNanos: UInt64?
        var arrivalNanos: [UInt64] = []
        var echoNanos: [UInt64] = []
        var toneSlot: [Int16] = []
        var textFrames = 0
        var stopReason: String?
        var closedAtNanos: UInt64?
        var protocolErrors = 0
    }
    let state: Mutex<State>

    init(index: Int) {
        self.index = index
        var st = State()
        st.arrivalNanos.reserveCapacity(4096)
        st.echoNanos.reserveCapacity(4096)
        st.toneSlot.reserveCapacity(4096)
        state = Mutex(st)
    }

    func snapshot() -> LoadEchoSessionRecord {
        state.withLock { st in
            LoadEchoSessionRecord(
                index: index, channelId: st.channelId, connectedAtNanos: connectedAtNanos, startAtNanos: st.startAtNanos,
                arrivalNanos: st.arrivalNanos, echoNanos: st.echoNanos, toneSlot: st.toneSlot, textFrames: st.textFrames,
                stopReason: st.stopReason, closedAtNanos: st.closedAtNanos, protocolErrors: st.protocolErrors)
        }
    }
}

final class LoadEchoRegistry: Sendable {
    let sessions = Mutex<[LoadEchoSession]>([])
    let indexer: ToneFrameIndexer
    let tags: EchoTags
    /// The tag frames as ready-to-send WebSocket binary frames (header + payload).
    let tagFrames: [ByteBuffer]
    let path: String

    init(indexer: ToneFrameIndexer, tags: EchoTags, path: String) {
        self.indexer = indexer
        self.tags = tags
        self.path = path
        tagFrames = tags.frames16k.map { payload in
            var b = ByteBufferAllocator().buffer(capacity: payload.count + 4)
            b.writeInteger(UInt8(0x82))
            b.writeInteger(UInt8(126))
            b.writeInteger(UInt16(payload.count), endianness: .big)
            b.writeBytes(payload)
            return b
        }
    }

    func newSession() -> LoadEchoSession {
        sessions.withLock { list in
            let s = LoadEchoSession(index: list.count)
            list.append(s)
            return s
        }
    }
}

/// One connection: HTTP upgrade, then WebSocket frames. Runs on its channel's event loop only.
final class LoadEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let registry: LoadEchoRegistry
    var pending: ByteBuffer?
    var session: LoadEchoSession?
    /// A fragmented message being assembled: its opcode and unmasked payload.
    var fragment: (opcode: UInt8, payload: ByteBuffer)?
    var closing = false
    /// Answers sent so far in this session.
    var answered = 0

    init(registry: LoadEchoRegistry) { self.registry = registry }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = simMonotonicNanos()
        var incoming = unwrapInboundIn(data)
        if pending == nil {
            pending = incoming
        } else {
            pending!.writeBuffer(&incoming)
        }
        if session == nil {
            guard handshake(context: context) else { return }
        }
        var wrote = false
        while !closing, let frame = nextFrame() {
            if handle(frame, context: context, arrival: now) { wrote = true }
        }
        if wrote { context.flush() }
        if let p = pending, p.readableBytes == 0 { pending = nil } else { pending?.discardReadBytes() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        session?.state.withLock { st in
            if st.closedAtNanos == nil { st.closedAtNanos = simMonotonicNanos() }
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: upgrade

    /// Answers the upgrade once the request head is complete; false while it is not (or on error).
    func handshake(context: ChannelHandlerContext) -> Bool {
        guard var buf = pending else { return false }
        let view = buf.readableBytesView
        guard let end = Self.headEnd(view) else {
            if view.count > 16384 { context.close(promise: nil) }
            return false
        }
        let head = buf.readString(length: end - view.startIndex + 4) ?? ""
        pending = buf
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: true)
        let requestLine = lines.first.map(String.init) ?? ""
        var key: String?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            if name == "sec-websocket-key" {
                key = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        let target = requestLine.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard requestLine.hasPrefix("GET "), path == registry.path, let key else {
            var out = context.channel.allocator.buffer(capacity: 64)
            out.writeString("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
            closing = true
            return false
        }
        let accept = Data(SHA1.hash(Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
        var out = context.channel.allocator.buffer(capacity: 160)
        out.writeString("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: \(accept)\r\n\r\n")
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        session = registry.newSession()
        return true
    }

    static func headEnd(_ view: ByteBufferView) -> ByteBufferView.Index? {
        var i = view.startIndex
        let last = view.endIndex - 3
        while i < last {
            if view[i] == 13, view[i + 1] == 10, view[i + 2] == 13, view[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }

    // MARK: frames

    struct Frame {
        var fin: Bool
        var opcode: UInt8
        /// Unmasked payload.
        var payload: ByteBuffer
    }

    /// Takes one complete frame from `pending` (unmasked), or nil when more bytes are needed.
    func nextFrame() -> Frame? {
        guard var buf = pending, buf.readableBytes >= 2 else { return nil }
        let start = buf.readerIndex
        let b0 = buf.getInteger(at: start, as: UInt8.self)!
        let b1 = buf.getInteger(at: start + 1, as: UInt8.self)!
        var offset = 2
        var length = Int(b1 & 0x7F)
        if length == 126 {
            guard let l = buf.getInteger(at: start + 2, endianness: .big, as: UInt16.self) else { return nil }
            length = Int(l)
            offset = 4
        } else if length == 127 {
            guard let l = buf.getInteger(at: start + 2, endianness: .big, as: UInt64.self) else { return nil }
            length = Int(min(l, UInt64(Int32.max)))
            offset = 10
        }
        let masked = b1 & 0x80 != 0
        var mask: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        if masked {
            guard buf.readableBytes >= offset + 4 else { return nil }
            mask = (buf.getInteger(at: start + offset, as: UInt8.self)!, buf.getInteger(at: start + offset + 1, as: UInt8.self)!,
                    buf.getInteger(at: start + offset + 2, as: UInt8.self)!, buf.getInteger(at: start + offset + 3, as: UInt8.self)!)
            offset += 4
        }
        guard buf.readableBytes >= offset + length else { return nil }
        buf.moveReaderIndex(forwardBy: offset)
        var payload = buf.readSlice(length: length)!
        pending = buf
        if masked {
            // Unmask into a fresh buffer (the read buffer is shared).
            var out = ByteBufferAllocator().buffer(capacity: length)
            let m0 = mask.0, m1 = mask.1, m2 = mask.2, m3 = mask.3
            _ = payload.withUnsafeReadableBytes { src in
                out.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { dst in
                    var i = 0
                    while i + 4 <= length {
                        dst[i] = src[i] ^ m0
                        dst[i + 1] = src[i + 1] ^ m1
                        dst[i + 2] = src[i + 2] ^ m2
                        dst[i + 3] = src[i + 3] ^ m3
                        i += 4
                    }
                    if i < length { dst[i] = src[i] ^ m0 }
                    if i + 1 < length { dst[i + 1] = src[i + 1] ^ m1 }
                    if i + 2 < length { dst[i + 2] = src[i + 2] ^ m2 }
                    return length
                }
            }
            payload = out
        }
        return Frame(fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, payload: payload)
    }

    /// Handles one frame; true when something was written.
    func handle(_ frame: Frame, context: ChannelHandlerContext, arrival: UInt64) -> Bool {
        var opcode = frame.opcode
        var payload = frame.payload
        switch opcode {
        case 0x0:  // continuation
            guard var f = fragment else { return protocolError(context) }
            var p = payload
            f.payload.writeBuffer(&p)
            if !frame.fin {
                fragment = f
                return false
            }
            fragment = nil
            opcode = f.opcode
            payload = f.payload
        case 0x1, 0x2:
            if !frame.fin {
                fragment = (opcode, payload)
                return false
            }
        default:
            break
        }
        switch opcode {
        case 0x2:
            // The clock before the send (see `RTPStream.sendDue`).
            let sent = simMonotonicNanos()
            context.write(wrapOutboundOut(registry.tagFrames[answered % registry.tagFrames.count]), promise: nil)
            answered += 1
            context.flush()
            let slot = payload.withUnsafeReadableBytes { registry.indexer.slot(pcm16le: $0) }
            session?.state.withLock { st in
                st.arrivalNanos.append(arrival)
                st.echoNanos.append(sent)
                st.toneSlot.append(Int16(slot))
            }
            return false
        case 0x1:
            let text = payload.readString(length: payload.readableBytes) ?? ""
            let json = SimJSON.parse(text)
            let type = json?["type"]?.stringValue
            session?.state.withLock { st in
                st.textFrames += 1
                if type == "start", st.startAtNanos == nil {
                    st.startAtNanos = arrival
                    st.channelId = json?["channelId"]?.stringValue
                } else if type == "stop" {
                    st.stopReason = json?["reason"]?.stringValue ?? ""
                }
            }
            return false
        case 0x8:  // close: answer with the same code, then close
            writeFrame(opcode: 0x8, payload: payload.getSlice(at: payload.readerIndex, length: min(2, payload.readableBytes))!, context: context)
            closing = true
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                channel.close(promise: nil)
            }
            return false
        case 0x9:  // ping → pong
            writeFrame(opcode: 0xA, payload: payload, context: context)
            return true
        case 0xA:
            return false
        default:
            return protocolError(context)
        }
    }

    func protocolError(_ context: ChannelHandlerContext) -> Bool {
        session?.state.withLock { $0.protocolErrors += 1 }
        closing = true
        context.close(promise: nil)
        return false
    }

    /// Writes an unmasked, final server frame.
    func writeFrame(opcode: UInt8, payload: ByteBuffer, context: ChannelHandlerContext) {
        let n = payload.readableBytes
        var out = context.channel.allocator.buffer(capacity: n + 10)
        out.writeInteger(UInt8(0x80 | opcode))
        if n < 126 {
            out.writeInteger(UInt8(n))
        } else if n <= 0xFFFF {
            out.writeInteger(UInt8(126))
            out.writeInteger(UInt16(n), endianness: .big)
        } else {
            out.writeInteger(UInt8(127))
            out.writeInteger(UInt64(n), endianness: .big)
        }
        var p = payload
        out.writeBuffer(&p)
        context.write(wrapOutboundOut(out), promise: nil)
    }
}

/// SHA-1 (for the WebSocket accept key only).
enum SHA1 {
    static func hash(_ message: [UInt8]) -> [UInt8] {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        var msg = message
        let bitLength = UInt64(message.count) * 8
        msg.append(0x80)
        while msg.count % 64 != 56 { msg.append(0) }
        for i in (0..<8).reversed() { msg.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: msg.count, by: 64) {
            for i in 0..<16 {
                w[i] = UInt32(msg[chunk + 4 * i]) << 24 | UInt32(msg[chunk + 4 * i + 1]) << 16
                    | UInt32(msg[chunk + 4 * i + 2]) << 8 | UInt32(msg[chunk + 4 * i + 3])
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w[i] = (x << 1) | (x >> 31)
            }
            var (a, b, c, d, e) = h
            for i in 0..<80 {
                let f: UInt32
                let k: UInt32
                switch i {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
                default: f = b ^ c ^ d; k = 0xCA62_C1D6
                }
                let t = ((a << 5) | (a >> 27)) &+ f &+ e &+ k &+ w[i]
                e = d
                d = c
                c = (b << 30) | (b >> 2)
                b = a
                a = t
            }
            h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e)
        }
        var out: [UInt8] = []
        for v in [h.0, h.1, h.2, h.3, h.4] {
            out.append(contentsOf: [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)])
        }
        return out
    }
}
