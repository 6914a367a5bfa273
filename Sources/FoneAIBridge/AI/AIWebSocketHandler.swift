#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOWebSocket

/// The end of an AI session's channel pipeline, after NIO's WebSocket codec: decodes the AI's
/// frames in the session's dialect and hands audio straight to the call's playout (on this event
/// loop, no task in between); other messages go to the session as events. It also writes what
/// `AIOutbound` sends, answers pings, pings the AI, and closes cleanly.
final class AIWebSocketHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    enum Event {
        case inbound(AISessionEvent)
        /// The channel closed; the reason when it broke rather than closed.
        case closed(String?)
    }

    /// Pings the AI this often; a ping still unanswered at the next one closes the session.
    static let pingInterval = TimeAmount.seconds(15)
    /// How long to wait for the AI's close frame after ours.
    static let closeTimeout = TimeAmount.seconds(1)

    private let dialect: any AIDialect
    private let outbound: AIOutbound
    private let onAudio: @Sendable (ByteBuffer, Int?) -> Void
    private let onEvent: (Event) -> Void
    private var context: ChannelHandlerContext?
    /// NIO's frame encoder's context: binary frames written through it skip the encoder
    /// (`MaskedBinaryFrame`). Nil when the pipeline has no encoder (then NIO encodes them too).
    private var encoderContext: ChannelHandlerContext?
    /// The last caller-audio frame's buffer, reused for the next (see `MaskedBinaryFrame.write`).
    private var callerFrame = ByteBuffer()
    private var sentClose = false
    private var awaitingPong = false
    private var failure: String?
    private var pinger: RepeatedTask?
    private var random = PooledSystemRandom()

    init(dialect: any AIDialect, outbound: AIOutbound, onAudio: @escaping @Sendable (ByteBuffer, Int?) -> Void,
         onEvent: @escaping (Event) -> Void) {
        self.dialect = dialect
        self.outbound = outbound
        self.onAudio = onAudio
        self.onEvent = onEvent
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loop = context.eventLoop
        let this = NIOLoopBound(self, eventLoop: loop)
        pinger = loop.scheduleRepeatedTask(initialDelay: Self.pingInterval, delay: Self.pingInterval) { _ in
            this.value.ping()
        }
    }

    /// Sends the dialect's opening messages, then whatever the call queued meanwhile. The pipeline
    /// is complete by now, so this is where the frame encoder is found.
    func open(call: AICallInfo) {
        encoderContext = try? context?.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        for text in dialect.openingMessages(for: call) { write(.text(text)) }
        outbound.attach(self)
        context?.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finishUp()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finishUp()
        context.fireChannelInactive()
    }

    private func finishUp() {
        guard context != nil else { return }
        context = nil
        encoderContext = nil
        pinger?.cancel()
        outbound.detach(self)
        onEvent(.closed(failure))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if failure == nil { failure = "\(error)" }
        context.close(promise: nil)
    }

    // MARK: From the AI

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            deliver(Result { () throws(AIInboundMessage.DecodeError) in try dialect.decodeBinary(frame.unmaskedData) })
        case .text:
            let text = String(buffer: frame.unmaskedData)
            deliver(Result { () throws(AIInboundMessage.DecodeError) in try dialect.decodeText(text) })
        case .ping:
            if !sentClose {
                context.writeAndFlush(wrapOutboundOut(makeFrame(.pong, frame.unmaskedData)), promise: nil)
            }
        case .pong:
            awaitingPong = false
        case .connectionClose:
            if !sentClose {
                // Echo the AI's status code, as RFC 6455 §5.5.1 asks, then close.
                sentClose = true
                var status = frame.unmaskedData
                let code = status.readSlice(length: 2) ?? context.channel.allocator.buffer(capacity: 0)
                context.writeAndFlush(wrapOutboundOut(makeFrame(.connectionClose, code)), promise: nil)
            }
            context.close(promise: nil)
        default:
            break
        }
    }

    private func deliver(_ decoded: Result<AIInbound, AIInboundMessage.DecodeError>) {
        switch decoded {
        case .success(.audio(let pcm, let rate)): onAudio(pcm, rate)
        case .success(.message(let message)): onEvent(.inbound(.message(message)))
        case .success(.ignored): break
        case .failure(let error): onEvent(.inbound(.malformed(reason: error.description)))
        }
    }

    // MARK: To the AI (on the event loop, from AIOutbound)

    /// False when the AI reads too slowly (the socket's write buffer is over its high-water mark)
    /// and the frame was dropped.
    func writeCallerAudio(_ pcm: ByteBuffer) -> Bool {
        guard let context, !sentClose else { return false }
        guard context.channel.isWritable else { return false }
        if let message = dialect.encodeCallerAudio(pcm) {
            write(message)
            // From below the handlers that only read: the encoder holds nothing back.
            (encoderContext ?? context).flush()
        }
        return true
    }

    func writeControl(_ message: AIOutboundMessage) {
        guard let context, !sentClose, let text = dialect.encode(message) else { return }
        write(.text(text))
        context.flush()
    }

    /// Sends a close frame (after everything written before it) and closes the socket when the
    /// AI answers, or after `closeTimeout`.
    func close() {
        guard let context, !sentClose else { return }
        sentClose = true
        var code = context.channel.allocator.buffer(capacity: 2)
        code.writeInteger(UInt16(1000))
        context.writeAndFlush(wrapOutboundOut(makeFrame(.connectionClose, code)), promise: nil)
        let channel = context.channel
        context.eventLoop.scheduleTask(in: Self.closeTimeout) { channel.close(promise: nil) }
    }

    private func ping() {
        guard let context, !sentClose else { return }
        if awaitingPong {
            failure = "no answer to a ping within \(Self.pingInterval.nanoseconds / 1_000_000_000) s"
            context.close(promise: nil)
            return
        }
        awaitingPong = true
        context.writeAndFlush(wrapOutboundOut(makeFrame(.ping, context.channel.allocator.buffer(capacity: 0))), promise: nil)
    }

    private func write(_ message: AIWireMessage) {
        guard let context else { return }
        switch message {
        case .binary(let data):
            if let encoderContext {
                let mask = UInt32(truncatingIfNeeded: random.next())
                MaskedBinaryFrame.write(payload: data, mask: mask, into: &callerFrame)
                encoderContext.write(NIOAny(callerFrame), promise: nil)
            } else {
                context.write(wrapOutboundOut(makeFrame(.binary, data)), promise: nil)
            }
        case .text(let text): context.write(wrapOutboundOut(makeFrame(.text, context.channel.allocator.buffer(string: text))), promise: nil)
        }
    }

    /// A client's frames must be masked (RFC 6455 §5.3).
    private func makeFrame(_ opcode: WebSocketOpcode, _ data: ByteBuffer) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: opcode, maskKey: .random(using: &random), data: data)
    }
}

/// The kernel's random numbers, fetched 32 at a time: masking keys need one per frame, and one
/// kernel call per 32 frames instead of one per frame keeps them unpredictable (RFC 6455 §10.3)
/// at a fraction of the cost.
struct PooledSystemRandom: RandomNumberGenerator {
    private var pool = [UInt64](repeating: 0, count: 32)
    private var used = 32

    mutating func next() -> UInt64 {
        if used == pool.count {
            refill()
            used = 0
        }
        defer { used += 1 }
        return pool[used]
    }

    private mutating func refill() {
        pool.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
    }
}
