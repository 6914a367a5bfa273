import FoundationEssentials
import Logging

/// The daemon's configuration, as loaded and validated by `ConfigLoader`.
///
/// `description`, `debugDescription` and reflection (`dump`) never show `ari.password`.
public struct BridgeConfig: Sendable, Equatable {
    public var ari: ARISettings
    public var rtpServer: RTPServerSettings
    public var asterisk: AsteriskSettings
    public var ai: AISettings
    public var log: LogSettings
    public var calls: CallSettings
    public var control: ControlSettings
    public var media: MediaSettings

    public init(ari: ARISettings, rtpServer: RTPServerSettings, asterisk: AsteriskSettings = .init(),
                ai: AISettings, log: LogSettings = .init(), calls: CallSettings = .init(),
                control: ControlSettings = .init(), media: MediaSettings = .init()) {
        self.ari = ari
        self.rtpServer = rtpServer
        self.asterisk = asterisk
        self.ai = ai
        self.log = log
        self.calls = calls
        self.control = control
        self.media = media
    }
}

/// `ari` section.
public struct ARISettings: Sendable, Equatable {
    /// Base URL of Asterisk's HTTP server, `http://` or `https://` (e.g. `http://127.0.0.1:8088`).
    public var url: String
    public var username: String
    public var password: String
    /// The Stasis application name (`Stasis(foneai)` in the dialplan).
    public var appName: String
    /// PEM file with the CA to trust for an `https://` URL; `nil` uses the system trust store.
    public var caFile: String?
    /// Upper bound of the back-off between reconnection attempts to ARI, in seconds.
    public var reconnectMaxSeconds: Double

    public init(url: String, username: String, password: String, appName: String,
                caFile: String? = nil, reconnectMaxSeconds: Double = 10) {
        self.url = url
        self.username = username
        self.password = password
        self.appName = appName
        self.caFile = caFile
        self.reconnectMaxSeconds = reconnectMaxSeconds
    }
}

/// `rtpServer` section: where the bridge receives RTP from Asterisk (also sent to Asterisk as
/// `external_host`).
public struct RTPServerSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// The format requested from Asterisk for the caller's audio (externalMedia `format=`).
    public var format: InboundAudioFormat
    /// Convert Asterisk's big-endian linear samples to little-endian for the AI.
    public var swap16: Bool
    public var socketType: SocketType

    public init(host: String, port: Int, format: InboundAudioFormat = .slin16, swap16: Bool = true,
                socketType: SocketType = .udp4) {
        self.host = host
        self.port = port
        self.format = format
        self.swap16 = swap16
        self.socketType = socketType
    }

    /// `host:port`, with brackets around an IPv6 address, as used for externalMedia's `external_host`.
    public var hostAndPort: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

public enum SocketType: String, Sendable, Equatable, CaseIterable {
    case udp4
    case udp6
}

/// The audio format of RTP from Asterisk (`rtpServer.format`, externalMedia `format=`).
public enum InboundAudioFormat: String, Sendable, Equatable, CaseIterable {
    /// 16 kHz signed linear, big-endian, payload type 118.
    case slin16
    /// 8 kHz signed linear, big-endian, payload type 10.
    case slin
    /// 8 kHz G.711 μ-law, payload type 0.
    case ulaw
    /// 8 kHz G.711 A-law, payload type 8.
    case alaw

    public var sampleRate: Int {
        self == .slin16 ? 16000 : 8000
    }

    /// Bytes per encoded sample in the RTP payload.
    public var bytesPerSample: Int {
        switch self {
        case .slin16, .slin: return 2
        case .ulaw, .alaw: return 1
        }
    }

    /// Samples in 20 ms (320 for slin16, 160 otherwise).
    public var samplesPer20ms: Int { sampleRate / 50 }

    /// RTP payload bytes in 20 ms: 640 for slin16, 320 for slin, 160 for ulaw/alaw.
    public var payloadBytesPer20ms: Int { samplesPer20ms * bytesPerSample }

    /// The RTP payload type Asterisk uses when sending this format.
    public var asteriskPayloadType: UInt8 {
        switch self {
        case .slin16: return 118
        case .slin: return 10
        case .ulaw: return 0
        case .alaw: return 8
        }
    }

    /// Whether the payload is big-endian 16-bit linear PCM (what `swap16` applies to).
    public var isLinear: Bool { self == .slin16 || self == .slin }
}

/// `asterisk` section: how audio is sent back to Asterisk.
public struct AsteriskSettings: Sendable, Equatable {
    /// RTP timestamp increment per 20 ms packet sent to Asterisk (160 at 8 kHz).
    public var packetTimestampIncrement: Int
    /// RTP payload type of audio sent to Asterisk: 11 or 10 (8 kHz L16), 0 (μ-law) or 8 (A-law).
    public var rtpPayloadType: Int

    public init(packetTimestampIncrement: Int = 160, rtpPayloadType: Int = 11) {
        self.packetTimestampIncrement = packetTimestampIncrement
        self.rtpPayloadType = rtpPayloadType
    }

    /// The payload types the bridge can encode audio for.
    public static let supportedPayloadTypes: [Int] = [11, 10, 0, 8]
}

/// `ai` section.
public struct AISettings: Sendable, Equatable {
    /// WebSocket URL of the AI server, `ws://` or `wss://`.
    public var serverUrl: String
    /// PEM file with the CA to trust for a `wss://` URL; `nil` uses the system trust store.
    public var caFile: String?
    public var connectTimeoutMs: Int
    public var connectAttempts: Int
    /// Bound of the queue of AI audio waiting to be played; the oldest is dropped beyond it.
    public var maxBufferedAudioMs: Int
    /// How long queued audio may still play after the AI ended the call.
    public var playoutOnEndMs: Int
    /// The AI protocol; only "native" (docs/ai-protocol.md) exists.
    public var `protocol`: String

    public init(serverUrl: String, caFile: String? = nil, connectTimeoutMs: Int = 3000, connectAttempts: Int = 2,
                maxBufferedAudioMs: Int = 10000, playoutOnEndMs: Int = 5000, protocol: String = "native") {
        self.serverUrl = serverUrl
        self.caFile = caFile
        self.connectTimeoutMs = connectTimeoutMs
        self.connectAttempts = connectAttempts
        self.maxBufferedAudioMs = maxBufferedAudioMs
        self.playoutOnEndMs = playoutOnEndMs
        self.protocol = `protocol`
    }

    public static let supportedProtocols: [String] = ["native", "twilio"]
}

/// `log` section.
public struct LogSettings: Sendable, Equatable {
    public var logLevel: Logger.Level

    public init(logLevel: Logger.Level = .info) {
        self.logLevel = logLevel
    }
}

/// `calls` section (optional).
public struct CallSettings: Sendable, Equatable {
    /// Calls beyond this many are refused (continued with `FONEAI_STATUS=busy`).
    public var maxCalls: Int
    /// On a drain or shutdown, how long calls may run before they are ended.
    public var drainTimeoutSeconds: Int
    /// Prefix of the ids the bridge gives the channels and bridges it creates
    /// (lowercase letters, digits and '-', at most 16 characters).
    public var idPrefix: String

    public init(maxCalls: Int = 500, drainTimeoutSeconds: Int = 30, idPrefix: String = "foneai") {
        self.maxCalls = maxCalls
        self.drainTimeoutSeconds = drainTimeoutSeconds
        self.idPrefix = idPrefix
    }
}

/// How call audio travels between Asterisk and the bridge.
public enum MediaTransport: String, Sendable, Equatable, CaseIterable {
    /// externalMedia over UDP RTP to `rtpServer` (every Asterisk; 8 kHz back to the caller).
    case rtp
    /// Asterisk's WebSocket media channel (Asterisk 20.16+, 22.6+, 23+): 16 kHz both ways.
    case websocket
}

/// `media` section (optional).
public struct MediaSettings: Sendable, Equatable {
    public var transport: MediaTransport
    /// SCHED_RR priority of the daemon's threads; 0 keeps normal scheduling. Like Asterisk's
    /// `-p`: other work on the media thread's CPU, kernel threads included, then waits for it
    /// instead of delaying packets.
    public var realtimePriority: Int

    public init(transport: MediaTransport = .rtp, realtimePriority: Int = 0) {
        self.transport = transport
        self.realtimePriority = realtimePriority
    }
}

/// `control` section (optional).
public struct ControlSettings: Sendable, Equatable {
    /// Path of the Unix socket `foneaictl` talks to.
    public var socketPath: String

    public init(socketPath: String = "/run/foneai/control.sock") {
        self.socketPath = socketPath
    }
}

// MARK: - Descriptions without secrets

extension ARISettings: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        var s = "url=\(BridgeConfig.quoted(BridgeConfig.redactURL(url))) username=\(BridgeConfig.quoted(username)) "
        s += "password=\(password.isEmpty ? "(empty)" : BridgeConfig.redactedMarker) appName=\(BridgeConfig.quoted(appName))"
        s += " caFile=\(caFile.map(BridgeConfig.quoted) ?? "none") reconnectMaxSeconds=\(reconnectMaxSeconds)"
        return s
    }

    public var debugDescription: String { "ARISettings(\(description))" }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "url": BridgeConfig.redactURL(url), "username": username, "password": BridgeConfig.redactedMarker,
            "appName": appName, "caFile": caFile as Any, "reconnectMaxSeconds": reconnectMaxSeconds,
        ], displayStyle: .struct)
    }
}

extension BridgeConfig: CustomStringConvertible, CustomDebugStringConvertible {
    static let redactedMarker = "********"

    static func quoted(_ s: String) -> String {
        var out = ""
        JSONValue.writeString(s, to: &out)
        return out
    }

    /// Removes any `user:password@` from a URL.
    static func redactURL(_ url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<schemeEnd.upperBound]) + redactedMarker + String(rest[at...])
    }

    /// A multi-line, human-readable rendering of the whole configuration with the ARI password
    /// (and any credentials inside URLs) masked. Safe to log.
    public var redactedDescription: String {
        var lines: [String] = []
        lines.append("ari.url = \(Self.quoted(Self.redactURL(ari.url)))")
        lines.append("ari.username = \(Self.quoted(ari.username))")
        lines.append("ari.password = \(ari.password.isEmpty ? "(empty)" : Self.redactedMarker)")
        lines.append("ari.appName = \(Self.quoted(ari.appName))")
        lines.append("ari.caFile = \(ari.caFile.map(Self.quoted) ?? "none")")
        lines.append("ari.reconnectMaxSeconds = \(ari.reconnectMaxSeconds)")
        lines.append("rtpServer.host = \(Self.quoted(rtpServer.host))")
        lines.append("rtpServer.port = \(rtpServer.port)")
        lines.append("rtpServer.format = \(rtpServer.format.rawValue)")
        lines.append("rtpServer.swap16 = \(rtpServer.swap16)")
        lines.append("rtpServer.socketType = \(rtpServer.socketType.rawValue)")
        lines.append("asterisk.packetTimestampIncrement = \(asterisk.packetTimestampIncrement)")
        lines.append("asterisk.rtpPayloadType = \(asterisk.rtpPayloadType)")
        lines.append("ai.serverUrl = \(Self.quoted(Self.redactURL(ai.serverUrl)))")
        lines.append("ai.caFile = \(ai.caFile.map(Self.quoted) ?? "none")")
        lines.append("ai.connectTimeoutMs = \(ai.connectTimeoutMs)")
        lines.append("ai.connectAttempts = \(ai.connectAttempts)")
        lines.append("ai.maxBufferedAudioMs = \(ai.maxBufferedAudioMs)")
        lines.append("ai.playoutOnEndMs = \(ai.playoutOnEndMs)")
        lines.append("ai.protocol = \(Self.quoted(ai.protocol))")
        lines.append("log.logLevel = \(log.logLevel.rawValue)")
        lines.append("calls.maxCalls = \(calls.maxCalls)")
        lines.append("calls.drainTimeoutSeconds = \(calls.drainTimeoutSeconds)")
        lines.append("calls.idPrefix = \(Self.quoted(calls.idPrefix))")
        lines.append("control.socketPath = \(Self.quoted(control.socketPath))")
        lines.append("media.transport = \(media.transport.rawValue)")
        lines.append("media.realtimePriority = \(media.realtimePriority)")
        return lines.joined(separator: "\n")
    }

    public var description: String { redactedDescription }
    public var debugDescription: String { "BridgeConfig(\n\(redactedDescription)\n)" }
}
