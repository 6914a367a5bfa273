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
    let logger: Logger

    public init(endpoint: ARIEndpoint, probe: ARIClient, tlsConfiguration: TLSConfiguration?,
                maxBackoff: Duration = .seconds(10), maxEventBytes: Int = 1 << 20, logger: Logger) {
        self.endpoint = endpoint
        self.probe = probe
        self.tlsConfiguration = tlsConfiguration
        self.maxBackoff = maxBackoff
        self.maxEventBytes = maxEventBytes
        self.logger = logger
    }

    /// Runs until the task is cancelled.
    public func run(_ report: @escaping @Sendable (ARIEventInput) async -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            var headers = HTTPFields()
            headers[.authorization] = endpoint.authorizationHeader
            let configuration = WebSocketClientConfiguration(
                maxFrameSize: maxEventBytes, additionalHeaders: headers,
                autoPing: .enabled(timePeriod: .seconds(20)))
            let maxEventBytes = self.maxEventBytes
            let logger = self.logger
            let connected = ConnectedFlag()
            var reason = "closed by Asterisk"
            do {
                try await WebSocketClient.connect(
                    url: endpoint.eventsURL, configuration: configuration,
                    tlsConfiguration: tlsConfiguration, logger: logger
                ) { inbound, _, _ in
                    connected.set()
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
            } catch is CancellationError {
                return
            } catch {
                reason = await explain(error)
            }
            if Task.isCancelled { return }
            if connected.value {
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

private final class ConnectedFlag: Sendable {
    private let flag = Atomic(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var value: Bool { flag.load(ordering: .relaxed) }
}
