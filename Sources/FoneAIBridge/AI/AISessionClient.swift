import Logging
import NIOCore
import NIOSSL
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
/// the AI reads too slowly (back-pressure must not grow memory); control text is never dropped.
public struct AIOutbound: Sendable {
    public let audio: AsyncStream<ByteBuffer>
    public let audioContinuation: AsyncStream<ByteBuffer>.Continuation
    public let text: AsyncStream<String>
    public let textContinuation: AsyncStream<String>.Continuation

    public init(maxQueuedAudioFrames: Int) {
        (audio, audioContinuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingNewest(maxQueuedAudioFrames))
        (text, textContinuation) = AsyncStream.makeStream(of: String.self)
    }

    /// Sends `stop` (or nothing) and lets the session close the socket once the text is written.
    public func finish(with last: AIOutboundMessage?) {
        if let last { textContinuation.yield(last.json()) }
        textContinuation.finish()
        audioContinuation.finish()
    }
}

public struct AISessionSettings: Sendable {
    public var url: String
    public var tls: TLSConfiguration?
    public var connectTimeout: Duration
    public var connectAttempts: Int
    public var maxFrameBytes: Int

    public init(url: String, tls: TLSConfiguration?, connectTimeout: Duration, connectAttempts: Int, maxFrameBytes: Int = 1 << 20) {
        self.url = url
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.connectAttempts = connectAttempts
        self.maxFrameBytes = maxFrameBytes
    }
}

/// One call's WebSocket to the AI server, native dialect (docs/ai-protocol.md).
public struct AISessionClient: Sendable {
    let settings: AISessionSettings
    let logger: Logger

    public init(settings: AISessionSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Connects (bounded attempts, each bounded in time), sends `start`, then pumps both ways until
    /// the outbound text stream finishes or the AI closes. Binary frames from the AI go to
    /// `onAudio` directly, off the call's event path.
    public func run(call: AICallInfo, outbound: AIOutbound,
                    onAudio: @escaping @Sendable (ByteBuffer) -> Void,
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
                                onAudio: @escaping @Sendable (ByteBuffer) -> Void,
                                onEvent: @escaping @Sendable (AISessionEvent) async -> Void) async -> AttemptResult {
        let (signals, signal) = AsyncStream.makeStream(of: Signal.self)
        let maxFrame = settings.maxFrameBytes
        let configuration = WebSocketClientConfiguration(maxFrameSize: maxFrame, autoPing: .enabled(timePeriod: .seconds(15)))
        let startText = AIOutboundMessage.start(call).json()
        let socketTask = Task {
            do {
                try await WebSocketClient.connect(url: settings.url, configuration: configuration,
                                                  tlsConfiguration: settings.tls, logger: logger) { inbound, writer, _ in
                    signal.yield(.connected)
                    try await writer.write(.text(startText))
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await frame in outbound.audio { try await writer.write(.binary(frame)) }
                            try await Task.sleep(for: .seconds(86_400 * 365))  // audio ending alone does not end the session
                        }
                        group.addTask {
                            for await text in outbound.text { try await writer.write(.text(text)) }
                        }
                        group.addTask {
                            for try await message in inbound.messages(maxSize: maxFrame) {
                                switch message {
                                case .binary(let audio):
                                    onAudio(audio)
                                case .text(let text):
                                    do throws(AIInboundMessage.DecodeError) {
                                        let decoded = try AIInboundMessage.decode(text)
                                        await onEvent(.message(decoded))
                                    } catch {
                                        await onEvent(.malformed(reason: error.description))
                                    }
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
