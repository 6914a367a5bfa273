import HTTPTypes
import Logging
import NIOCore
import NIOSSL
import Synchronization
import WSClient

/// What the events socket reports to its owner, in order.
public enum ARIEventInput: Sendable {
    case connected
    case disconnected(reason: String)
    case event(ARIEvent)
    /// Text that is not an ARI event (not JSON, or no `type`); counted and dropped by the owner.
    case malformed(String)
}

/// Keeps the ARI events WebSocket open: connects, reports events, and on any drop reconnects with
/// capped, jittered exponential backoff. Calls in progress are not touched by a drop; that is the
/// owner's business.
public struct ARIEventConnection: Sendable {
    public let endpoint: ARIEndpoint
    let probe: ARIClient
    let tlsConfiguration: TLSConfiguration?
    let maxBackoff: Duration
    let maxEventBytes: Int
    /// Connect, TLS and WebSocket upgrade together; as long as ARI's REST requests may take.
    let handshakeTimeout: Duration
    let logger: Logger

    public init(endpoint: ARIEndpoint, probe: ARIClient, tlsConfiguration: TLSConfiguration?,
                maxBackoff: Duration = .seconds(10), maxEventBytes: Int = 1 << 20,
                handshakeTimeout: Duration = .seconds(5), logger: Logger) {
        self.endpoint = endpoint
        self.probe = probe
        self.tlsConfiguration = tlsConfiguration
        self.maxBackoff = maxBackoff
        self.maxEventBytes = maxEventBytes
        self.handshakeTimeout = handshakeTimeout
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    public func run(_ report: @escaping @Sendable (ARIEventInput) async -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            let outcome = await connectOnce(report)
            // A connection ended by our own shutdown is no drop to report.
            if Task.isCancelled { return }
            let reason: String
            let wasConnected: Bool
            switch outcome {
            case .cancelled:
                return
            case .noAnswer:
                reason = "Asterisk did not complete the WebSocket connection within \(handshakeTimeout)"
                wasConnected = false
            case .ended(let connected, .failure(let error)):
                reason = await explain(error)
                wasConnected = connected
            case .ended(let connected, .success(let closeFrame)):
                reason = Self.describe(closeFrame)
                wasConnected = connected
            }
            if wasConnected {
                failures = 0
                await report(.disconnected(reason: reason))
                logger.warning("ARI websocket closed, reconnecting", metadata: ["reason": "\(reason)"])
            } else {
                failures += 1
                // First failure at warning, then only every tenth so a long Asterisk outage does
                // not flood the journal.
                if failures == 1 || failures % 10 == 0 {
                    logger.warning("Cannot connect to the ARI websocket, retrying",
                                   metadata: ["reason": "\(reason)", "url": "\(endpoint.eventsURL)", "attempts": "\(failures)"])
                }
            }
            do {
                try await Task.sleep(for: Self.backoff(failures: failures, cap: maxBackoff))
            } catch {
                return
            }
        }
    }

    private enum AttemptEnd {
        case cancelled
        /// Connect, TLS and upgrade not done within `handshakeTimeout`.
        case noAnswer
        case ended(connected: Bool, Result<WebSocketCloseFrame?, any Error>)
    }

    private enum AttemptSignal {
        case ended(Result<WebSocketCloseFrame?, any Error>)
        case timedOut
        case cancelled
    }

    /// One connection, from connect to close. The WebSocket client has no timeout for the
    /// handshake and does not see cancellation before the upgrade, so a hung Asterisk that accepts
    /// TCP but never answers would hold it (and a SIGTERM) forever. The attempt therefore runs in
    /// a task of its own: when the handshake is not done within `handshakeTimeout`, or the owner is
    /// cancelled first, it is abandoned (it closes at once should it ever connect) and left to end
    /// on its own when Asterisk closes the socket.
    private func connectOnce(_ report: @escaping @Sendable (ARIEventInput) async -> Void) async -> AttemptEnd {
        var headers = HTTPFields()
        headers[.authorization] = endpoint.authorizationHeader
        let configuration = WebSocketClientConfiguration(
            maxFrameSize: maxEventBytes, additionalHeaders: headers,
            autoPing: .enabled(timePeriod: .seconds(20)))
        let (url, tls, maxEventBytes, logger) = (endpoint.eventsURL, tlsConfiguration, self.maxEventBytes, self.logger)
        let gate = HandshakeGate()
        let (signals, signal) = AsyncStream.makeStream(of: AttemptSignal.self)
        let connecting = Task {
            do {
                let closeFrame = try await WebSocketClient.connect(url: url, configuration: configuration, tlsConfiguration: tls, logger: logger) { inbound, _, _ in
                    guard gate.open() else { return }
                    logger.info("Successfully connected to the ARI websocket")
                    await report(.connected)
                    for try await message in inbound.messages(maxSize: maxEventBytes) {
                        guard case .text(let text) = message else { continue }
                        do {
                            await report(.event(try ARIEvent.decode(text)))
                        } catch {
                            await report(.malformed(text))
                        }
                    }
                }
                signal.yield(.ended(.success(closeFrame)))
            } catch {
                signal.yield(.ended(.failure(error)))
            }
        }
        let timer = Task { [handshakeTimeout] in
            try? await Task.sleep(for: handshakeTimeout)
            if !Task.isCancelled { signal.yield(.timedOut) }
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            for await event in signals {
                switch event {
                case .timedOut:
                    if gate.abandon() { return .noAnswer }
                case .cancelled:
                    if gate.abandon() { return .cancelled }
                    // Connected: the client ends the WebSocket when its task is cancelled.
                    connecting.cancel()
                case .ended(let result):
                    return .ended(connected: gate.opened, result)
                }
            }
            return .cancelled
        } onCancel: {
            signal.yield(.cancelled)
        }
    }

    /// Asterisk's close frame when it sent one; without one the socket just ended (Asterisk
    /// stopped or crashed) or the client closed it after pings went unanswered (Asterisk hung).
    private static func describe(_ closeFrame: WebSocketCloseFrame?) -> String {
        guard let closeFrame else { return "the connection ended without a WebSocket close from Asterisk (socket closed, or pings unanswered)" }
        return "closed by Asterisk (\(closeFrame.closeCode)" + (closeFrame.reason.map { ": \($0)" } ?? "") + ")"
    }

    /// Full-jitter exponential backoff: uniform in [0, min(cap, 250 ms · 2^failures)], at least 100 ms.
    static func backoff(failures: Int, cap: Duration) -> Duration {
        let ceilingMs = min(Double(cap.components.seconds) * 1000, 250 * Double(1 << min(failures, 16)))
        return .milliseconds(Int(max(100, Double.random(in: 0...ceilingMs))))
    }

    /// The WebSocket client reports a refused upgrade only as "upgrade failed"; ask ARI over
    /// HTTP so the log says what is really wrong (401 bad credentials, 404 no ARI, …).
    private func explain(_ error: any Error) async -> String {
        guard let wsError = error as? WebSocketClientError, wsError == .webSocketUpgradeFailed else {
            return "\(error)"
        }
        do {
            try await probe.ping()
            return "WebSocket upgrade refused although ARI answers over HTTP"
        } catch let ariError as ARIError {
            if ariError.statusCode == 401 { return "ARI refused the credentials (401): check ari.username and ari.password" }
            return ariError.description
        } catch {
            return "\(error)"
        }
    }
}

/// Decides, once, whether a connection attempt goes on to carry events or was given up on.
private final class HandshakeGate: Sendable {
    private enum State { case pending, open, abandoned }
    private let state = Mutex(State.pending)

    /// The WebSocket is up: true if it may carry events, false if the attempt was abandoned.
    func open() -> Bool {
        state.withLock { state in
            guard state == .pending else { return false }
            state = .open
            return true
        }
    }

    /// Gives up on an attempt still in its handshake; false if it has already connected.
    func abandon() -> Bool {
        state.withLock { state in
            guard state == .pending else { return false }
            state = .abandoned
            return true
        }
    }

    var opened: Bool { state.withLock { $0 == .open } }
}
