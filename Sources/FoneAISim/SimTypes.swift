import FoundationEssentials

/// What the simulated caller says. Silence means *no RTP packets at all*, like real Asterisk.
public indirect enum SimAudio: Sendable {
    /// The caller never speaks: zero packets for the whole call.
    case silence
    /// A sine tone for `seconds` (use `.infinity` for the whole call), then silence (no packets).
    case tone(hz: Double, seconds: Double)
    /// Arbitrary 16 kHz samples (decimated for 8 kHz formats), then silence.
    case samples16k([Int16])
    /// `silenceSeconds` without packets, then a tone.
    case silenceThenTone(silenceSeconds: Double, hz: Double, seconds: Double)
    /// A timed pause (no packets) — for use inside `.sequence`.
    case pause(seconds: Double)
    /// Segments played one after another.
    case sequence([SimAudio])
}

/// A call to place into the simulated dialplan.
public struct SimCallSpec: Sendable {
    public var exten: String
    public var context: String
    public var callerNumber: String
    public var callerName: String
    /// Channel variables set by the dialplan before `Stasis()` (e.g. campaign, apiKey, custom).
    public var variables: [String: String]
    public var audio: SimAudio
    /// The caller hangs up after this long (measured from the moment the call enters Stasis).
    public var hangupAfter: Duration?
    /// The caller hangs up this long after its media started (caller and external channel bridged).
    public var hangupAfterMedia: Duration?
    /// `Stasis(app,arg1,arg2)` arguments.
    public var stasisArgs: [String]
    /// Stasis application; nil = the simulator's `appName`.
    public var app: String?

    public init(
        exten: String = "100",
        context: String = "foneai-in",
        callerNumber: String = "",
        callerName: String = "",
        variables: [String: String] = [:],
        audio: SimAudio = .silence,
        hangupAfter: Duration? = nil,
        hangupAfterMedia: Duration? = nil,
        stasisArgs: [String] = [],
        app: String? = nil
    ) {
        self.hangupAfterMedia = hangupAfterMedia
        self.exten = exten
        self.context = context
        self.callerNumber = callerNumber
        self.callerName = callerName
        self.variables = variables
        self.audio = audio
        self.hangupAfter = hangupAfter
        self.stasisArgs = stasisArgs
        self.app = app
    }

    /// Like the sample dialplan: `campaign=${EXTEN}`, `apiKey=…` set before `Stasis()`.
    public static func dialplan(
        exten: String = "100",
        apiKey: String = "API_KEY",
        callerNumber: String = "",
        callerName: String = "",
        custom: String? = nil,
        audio: SimAudio = .silence,
        hangupAfter: Duration? = nil
    ) -> SimCallSpec {
        var vars = ["campaign": exten, "apiKey": apiKey]
        if let custom { vars["custom"] = custom }
        return SimCallSpec(exten: exten, callerNumber: callerNumber, callerName: callerName, variables: vars, audio: audio, hangupAfter: hangupAfter)
    }
}

/// How a simulated call left Stasis.
public enum SimCallOutcome: Sendable, Equatable, CustomStringConvertible {
    /// `POST /channels/{id}/continue`: the dialplan goes on at context/exten/priority.
    case continued(context: String, exten: String, priority: Int)
    /// The call was hung up: by the caller (`hangup()` / `hangupAfter`) or by ARI (`DELETE /channels/{id}`).
    case hungUp(byCaller: Bool)
    /// `Stasis()` failed at once (no application connected): `STASISSTATUS=FAILED`.
    case stasisFailed

    public var description: String {
        switch self {
        case .continued(let c, let e, let p): return "continued(\(c),\(e),\(p))"
        case .hungUp(let byCaller): return byCaller ? "hungUp(caller)" : "hungUp(ari)"
        case .stasisFailed: return "stasisFailed"
        }
    }
}

/// One RTP packet the caller received from the bridge (after filtering).
public struct SimHeardPacket: Sendable {
    /// CLOCK_MONOTONIC nanoseconds at arrival (compare with `simMonotonicNanos()`).
    public var arrivalNanos: UInt64
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    public var payloadType: UInt8
    public var payloadBytes: Int
    public var marker: Bool
    /// How long after the kernel queued it this process read it (its own event loop's delay);
    /// nil when the socket gave no kernel receive time.
    public var readDelayNanos: UInt32? = nil
}

/// What a caller heard, and at which rate.
public struct SimHeardAudio: Sendable {
    public enum Transport: String, Sendable { case rtp, websocket }
    public var samples: [Int16]
    public var sampleRate: Int
    /// How the audio reached the caller: UnicastRTP (8 kHz back) or a WebSocket media channel.
    public var transport: Transport
    public var seconds: Double { Double(samples.count) / Double(sampleRate) }
}

/// externalMedia formats.
public enum SimRTPFormat: String, Sendable {
    case slin16, slin, ulaw, alaw

    public var payloadType: UInt8 {
        switch self {
        case .slin16: return 118
        case .slin: return 10
        case .ulaw: return 0
        case .alaw: return 8
        }
    }

    public var sampleRate: Int { self == .slin16 ? 16000 : 8000 }
    /// Samples per 20 ms packet.
    public var samplesPerPacket: Int { sampleRate / 50 }
    public var payloadBytes: Int {
        switch self {
        case .slin16: return 640
        case .slin: return 320
        case .ulaw, .alaw: return 160
        }
    }
}

/// Simulator counters (a snapshot).
public struct SimCounters: Sendable, CustomStringConvertible {
    public var rtpPacketsSent = 0
    public var rtpPacketsReceived = 0
    /// RTP packets that arrived after their external channel was gone (counted in `rtpPacketsReceived`).
    public var packetsAfterClose = 0
    public var droppedDynamicPayloadPackets = 0
    public var droppedStrictRTPPackets = 0
    public var droppedUnsupportedPayloadPackets = 0
    public var malformedRTPPackets = 0
    public var packetsWithNoListener = 0
    public var restRequests = 0
    public var unauthorizedRequests = 0
    public var unknownRequests = 0
    public var eventsSent = 0
    public var eventSocketsAccepted = 0
    /// Send ticks that ran more than 40 ms after their deadline (the simulator itself was overloaded).
    public var rtpLateSends = 0
    public var rtpSendErrors = 0

    public var description: String {
        "rtpSent=\(rtpPacketsSent) rtpReceived=\(rtpPacketsReceived) droppedDynamicPT=\(droppedDynamicPayloadPackets) droppedStrict=\(droppedStrictRTPPackets) malformed=\(malformedRTPPackets) noListener=\(packetsWithNoListener) afterClose=\(packetsAfterClose) rest=\(restRequests) unauthorized=\(unauthorizedRequests) unknown=\(unknownRequests) events=\(eventsSent) eventSockets=\(eventSocketsAccepted) lateSends=\(rtpLateSends) sendErrors=\(rtpSendErrors)"
    }
}
