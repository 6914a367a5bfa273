import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import WSClient

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

/// The two outbound streams of one AI session. Audio is bounded and drops the oldest frame when
/// the AI reads too slowly (back-pressure must not grow memory); control messages are never dropped.
public struct AIOutbound: Sendable {
    public let audio: AsyncStream<ByteBuffer>
    public let audioContinuation: AsyncStream<ByteBuffer>.Continuation
    public let control: AsyncStream<AIOutboundMessage>
    public let controlContinuation: AsyncStream<AIOutboundMessage>.Continuation

    public init(maxQueuedAudioFrames: Int) {
        (audio, audioContinuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingNewest(maxQueuedAudioFrames))
        (control, controlContinuation) = AsyncStream.makeStream(of: AIOutboundMessage.self)
    }

    public func send(_ message: AIOutboundMessage) {
        controlContinuation.yield(message)
    }

    /// Sends `stop` (or nothing) and lets the session close the socket once it is written.
    public func finish(with last: AIOutboundMessage?) {
        if let last { controlContinuation.yield(last) }
        controlContinuation.finish()
        audioContinuation.finish()
    }
}

public struct AISessionSettings: Sendable {
    public var url: String
    public var tls: TLSConfiguration?
    public var connectTimeout: Duration
    public var connectAttempts: Int
    public var maxFrameBytes: Int
    public var dialect: AIProtocol
    /// Where the sessions' sockets and tasks run (one event loop per session).
    public var eventLoopGroup: any EventLoopGroup

    public init(url: String, tls: TLSConfiguration?, connectTimeout: Duration, connectAttempts: Int,
                dialect: AIProtocol = .native, maxFrameBytes: Int = 1 << 20,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.url = url
        self.eventLoopGroup = eventLoopGroup
        self.dialect = dialect
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.connectAttempts = connectAttempts
        self.maxFrameBytes = maxFrameBytes
    }
}

/// One call's WebSocket to the AI server, in the configured dialect (docs/ai-protocol.md).
public struct AISessionClient: Sendable {
    let settings: AISessionSettings
    let logger: Logger

    public init(settings: AISessionSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Connects (bounded attempts, each bounded in time), sends the dialect's opening messages,
    /// then pumps both ways until the outbound control stream finishes or the AI closes. Audio
    /// from the AI goes to `onAudio` directly (with its rate when the dialect fixes it), off the
    /// call's event path.
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
        case ended(String?)
    }

    private func attemptSession(call: AICallInfo, outbound: AIOutbound,
                                onAudio: @escaping @Sendable (ByteBuffer, Int?) -> Void,
                                onEvent: @escaping @Sendable (AISessionEvent) async -> Void) async -> AttemptResult {
        let (signals, signal) = AsyncStream.makeStream(of: Signal.self)
        let maxFrame = settings.maxFrameBytes
        let configuration = WebSocketClientConfiguration(maxFrameSize: maxFrame, autoPing: .enabled(timePeriod: .seconds(15)))
        let dialect = settings.dialect.makeDialect(call: call)
        // The socket and every task of the session share one event loop (see EventLoopTaskExecutor).
        let loop = settings.eventLoopGroup.next()
        let socketTask = Task(executorPreference: EventLoopTaskExecutor(eventLoop: loop)) {
            do {
                try await WebSocketClient.connect(url: settings.url, configuration: configuration,
                                                  tlsConfiguration: settings.tls, eventLoopGroup: loop,
                                                  logger: logger) { inbound, writer, _ in
                    signal.yield(.connected)
                    for text in dialect.openingMessages(for: call) { try await writer.write(.text(text)) }
                    // Encoding and writing happen as one step under `turn`: a dialect that numbers its
                    // messages (Twilio's sequenceNumber) must see them in the order they go out.
                    let turn = WriteTurn()
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await pcm in outbound.audio {
                                try await turn.run {
                                    if let frame = dialect.encodeCallerAudio(pcm) { try await writer.write(frame) }
                                }
                            }
                            try await Task.sleep(for: .seconds(86_400 * 365))  // audio ending alone does not end the session
                        }
                        group.addTask {
                            for await message in outbound.control {
                                try await turn.run {
                                    if let text = dialect.encode(message) { try await writer.write(.text(text)) }
                                }
                            }
                        }
                        group.addTask {
                            for try await message in inbound.messages(maxSize: maxFrame) {
                                let decoded: AIInbound
                                do throws(AIInboundMessage.DecodeError) {
                                    switch message {
                                    case .binary(let data): decoded = try dialect.decodeBinary(data)
                                    case .text(let text): decoded = try dialect.decodeText(text)
                                    }
                                } catch {
                                    await onEvent(.malformed(reason: error.description))
                                    continue
                                }
                                switch decoded {
                                case .audio(let pcm, let rate): onAudio(pcm, rate)
                                case .message(let message): await onEvent(.message(message))
                                case .ignored: break
                                }
                            }
                        }
                        // Whichever ends first, our `stop` written or the AI closing, ends the session.
                        try await group.next()
                        group.cancelAll()
                    }
                }
                signal.yield(.ended(nil))
            } catch {
                signal.yield(.ended("\(error)"))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: settings.connectTimeout)
            signal.yield(.timedOut)
        }
        defer { timer.cancel() }
        var connected = false
        for await event in signals {
            switch event {
            case .connected:
                connected = true
                timer.cancel()
                await onEvent(.connected)
            case .timedOut:
                if !connected {
                    socketTask.cancel()
                    return .failedToConnect("no connection within \(settings.connectTimeout)")
                }
            case .ended(let error):
                signal.finish()
                if !connected { return .failedToConnect(error ?? "closed before the handshake") }
                await onEvent(.closed(reason: error ?? "closed"))
                return .finished
            }
        }
        return .finished
    }
}

/// A first-come, first-served turn for the session's two writer tasks (audio, control), held
/// across an `await`: `run` numbers-and-writes one message while the other task waits.
final class WriteTurn: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func run(_ body: () async throws -> Void) async throws {
        await acquire()
        defer { release() }
        try await body()
    }

    private func acquire() async {
        // Uncontended (nearly always): take the turn without suspending, which would cost the
        // frame a trip through the executor's queue.
        let taken = state.withLock { state -> Bool in
            guard !state.busy else { return false }
            state.busy = true
            return true
        }
        if taken { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if !state.busy {
                    state.busy = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
