import Logging
import NIOCore
import NIOSSL
import Synchronization

/// Everything a call needs from the daemon, captured when the call arrives. A reload builds a new
/// environment for new calls; calls in progress keep the one they started with.
public struct CallEnvironment: Sendable {
    public var ari: ARIClient
    public var rtp: RTPSocket
    public var ai: AISessionSettings
    public var media: RTPMediaSettings
    public var transport: MediaTransport
    /// TLS for the media WebSocket when ARI is `https://`.
    public var ariTLS: TLSConfiguration?
    /// The rate of caller audio given to the AI: what Asterisk sends.
    public var callerSampleRate: Int {
        transport == .websocket ? WebSocketMediaLeg.sampleRate : media.inboundFormat.sampleRate
    }

    /// `external_host` for externalMedia: where Asterisk sends this call's RTP.
    public var externalHost: String
    public var idPrefix: String
    public var playoutOnEnd: Duration
    public var counters: BridgeCounters
    public var logger: Logger

    public init(ari: ARIClient, rtp: RTPSocket, ai: AISessionSettings, media: RTPMediaSettings, transport: MediaTransport,
                ariTLS: TLSConfiguration?, externalHost: String, idPrefix: String, playoutOnEnd: Duration,
                counters: BridgeCounters, logger: Logger) {
        self.transport = transport
        self.ariTLS = ariTLS
        self.ari = ari
        self.rtp = rtp
        self.ai = ai
        self.media = media
        self.externalHost = externalHost
        self.idPrefix = idPrefix
        self.playoutOnEnd = playoutOnEnd
        self.counters = counters
        self.logger = logger
    }
}

/// Daemon-wide counters. Touched per call event, never per packet (per-packet counts live in
/// each call's `CallMedia` and on the RTP socket's own event loop).
public final class BridgeCounters: Sendable {
    public enum Name: String, CaseIterable, Sendable {
        case callsStarted = "calls_started"
        case callsEnded = "calls_ended"
        case callsFailed = "calls_failed"
        case aiErrors = "ai_errors"
        case aiUnavailable = "ai_unavailable"
        case aiMalformed = "ai_malformed"
        case rejectedBusy = "rejected_busy"
        case rejectedDraining = "rejected_draining"
        case ariEvents = "ari_events"
        case ariEventsMalformed = "ari_events_malformed"
        case ariEventsUnhandled = "ari_events_unhandled"
        case ariReconnects = "ari_reconnects"
        case ariErrors = "ari_errors"
        case rtpInPacketsEnded = "rtp_in_packets_ended_calls"
        case rtpOutPacketsEnded = "rtp_out_packets_ended_calls"
    }

    private let values = Mutex<[Name: UInt64]>([:])

    public init() {}

    public func add(_ name: Name, _ amount: UInt64 = 1) {
        values.withLock { $0[name, default: 0] &+= amount }
    }

    public subscript(_ name: Name) -> UInt64 {
        values.withLock { $0[name] ?? 0 }
    }

    public var snapshot: [String: UInt64] {
        let copy = values.withLock { $0 }
        return Dictionary(uniqueKeysWithValues: Name.allCases.map { ($0.rawValue, copy[$0] ?? 0) })
    }
}
