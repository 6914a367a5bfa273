// Control protocol of foneai-bridge: newline-delimited JSON over a Unix stream socket.
// See docs/control-protocol.md for the wire format. Everything here is plain Codable data.

import FoundationEssentials

/// Constants shared by the daemon (server) and `foneaictl` (client).
public enum ControlProtocol {
    /// The protocol version sent as `"v"` in every request and response.
    public static let version = 1
    /// Longest accepted request line in bytes, excluding the trailing newline.
    public static let maxLineLength = 64 * 1024
    /// Default socket path of the daemon.
    public static let defaultSocketPath = "/run/foneai/control.sock"
    /// Environment variable overriding the default socket path (used by foneaictl).
    public static let socketPathEnvironmentVariable = "FONEAI_CONTROL_SOCKET"
    /// `stats` with `follow`: default, smallest and largest interval in milliseconds.
    public static let defaultFollowIntervalMs = 1000
    public static let minFollowIntervalMs = 100
    public static let maxFollowIntervalMs = 3_600_000
}

/// The commands of protocol version 1.
public enum ControlCommand: String, Codable, Sendable, CaseIterable {
    case status, calls, stats, drain, undrain, end, reload

    /// Commands that change daemon state and need a privileged peer.
    public var isMutating: Bool {
        switch self {
        case .status, .calls, .stats: return false
        case .drain, .undrain, .end, .reload: return true
        }
    }
}

/// The union of every command's arguments; each command reads only its own fields and the
/// others are omitted from the JSON. Unknown fields are ignored by the server.
public struct ControlArguments: Codable, Sendable, Equatable {
    /// stats: stream one snapshot per interval until the client closes.
    public var follow: Bool?
    /// stats with follow: interval in milliseconds (default 1000).
    public var intervalMs: Int?
    /// drain: wait until all live calls have ended (or the timeout passed) before answering.
    public var wait: Bool?
    /// drain with wait: give up waiting after this many seconds (nil: no limit).
    public var timeoutSeconds: Double?
    /// end: the call to hang up.
    public var callId: String?

    public init(follow: Bool? = nil, intervalMs: Int? = nil, wait: Bool? = nil,
                timeoutSeconds: Double? = nil, callId: String? = nil) {
        self.follow = follow
        self.intervalMs = intervalMs
        self.wait = wait
        self.timeoutSeconds = timeoutSeconds
        self.callId = callId
    }

    public var isEmpty: Bool { self == ControlArguments() }
}

/// `{"v":1,"id":N,"cmd":"...","args":{...}}`
public struct ControlRequest: Codable, Sendable, Equatable {
    public var v: Int
    public var id: Int
    /// Kept as a string so that an unknown command decodes and can be answered with `unknown_command`.
    public var cmd: String
    public var args: ControlArguments?

    public init(v: Int = ControlProtocol.version, id: Int, cmd: String, args: ControlArguments? = nil) {
        self.v = v
        self.id = id
        self.cmd = cmd
        self.args = args
    }

    public init(id: Int, command: ControlCommand, args: ControlArguments? = nil) {
        self.init(id: id, cmd: command.rawValue, args: (args?.isEmpty ?? true) ? nil : args)
    }

    public var command: ControlCommand? { ControlCommand(rawValue: cmd) }
}

/// Error codes of failed responses. A struct over a string so that a newer server's codes still decode.
public struct ControlErrorCode: RawRepresentable, Codable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// Malformed JSON, wrong protocol version, missing or invalid arguments.
    public static let badRequest = ControlErrorCode("bad_request")
    /// A mutating command from a peer whose uid is not privileged.
    public static let forbidden = ControlErrorCode("forbidden")
    /// `cmd` is not a command of this protocol version.
    public static let unknownCommand = ControlErrorCode("unknown_command")
    /// `end`: no live call with that id.
    public static let notFound = ControlErrorCode("not_found")
    /// The request line exceeded `ControlProtocol.maxLineLength`; the server closes the connection.
    public static let tooLarge = ControlErrorCode("too_large")
    /// Too many concurrent control connections; the server closes the connection.
    public static let busy = ControlErrorCode("busy")
    /// Anything else that went wrong in the server.
    public static let `internal` = ControlErrorCode("internal")

    public init(from decoder: any Decoder) throws {
        self.rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

public struct ControlErrorBody: Codable, Sendable, Equatable {
    public var code: ControlErrorCode
    public var message: String

    public init(code: ControlErrorCode, message: String) {
        self.code = code
        self.message = message
    }
}

/// `{"v":1,"id":N,"ok":true,"result":{...}}` or `{"v":1,"id":N,"ok":false,"error":{...}}`.
/// `id` is null when the request could not be parsed far enough to read it.
public struct ControlResponse<Result: Codable & Sendable>: Codable, Sendable {
    public var v: Int
    public var id: Int?
    public var ok: Bool
    public var result: Result?
    public var error: ControlErrorBody?

    public init(id: Int?, result: Result) {
        self.v = ControlProtocol.version
        self.id = id
        self.ok = true
        self.result = result
        self.error = nil
    }

    public init(id: Int?, error: ControlErrorBody) {
        self.v = ControlProtocol.version
        self.id = id
        self.ok = false
        self.result = nil
        self.error = error
    }

    enum CodingKeys: String, CodingKey { case v, id, ok, result, error }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.v = try c.decode(Int.self, forKey: .v)
        self.id = try c.decodeIfPresent(Int.self, forKey: .id)
        self.ok = try c.decode(Bool.self, forKey: .ok)
        if self.ok {
            self.result = try c.decode(Result.self, forKey: .result)
            self.error = nil
        } else {
            self.result = nil
            self.error = try c.decode(ControlErrorBody.self, forKey: .error)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(v, forKey: .v)
        try c.encode(id, forKey: .id)  // always present, null if unknown
        try c.encode(ok, forKey: .ok)
        if ok {
            try c.encodeIfPresent(result, forKey: .result)
        } else {
            try c.encodeIfPresent(error, forKey: .error)
        }
    }
}

/// The `result` of a failed response (never present); used to encode errors.
public struct NoResult: Codable, Sendable, Equatable {
    public init() {}
}

// MARK: - Results

public struct CallTotals: Codable, Sendable, Equatable {
    /// Calls answered and bridged since start.
    public var handled: UInt64
    /// Calls that failed (setup error, media error, ...).
    public var failed: UInt64
    /// Calls that ended because of an AI server error.
    public var aiErrors: UInt64
    /// Calls rejected because the call limit was reached.
    public var rejectedBusy: UInt64
    /// Calls rejected because the daemon was draining.
    public var rejectedDraining: UInt64

    public init(handled: UInt64 = 0, failed: UInt64 = 0, aiErrors: UInt64 = 0,
                rejectedBusy: UInt64 = 0, rejectedDraining: UInt64 = 0) {
        self.handled = handled
        self.failed = failed
        self.aiErrors = aiErrors
        self.rejectedBusy = rejectedBusy
        self.rejectedDraining = rejectedDraining
    }
}

public struct ReloadInfo: Codable, Sendable, Equatable {
    /// When the reload happened, unix seconds.
    public var at: Double
    public var ok: Bool
    /// What changed, or why the reload failed.
    public var message: String

    public init(at: Double, ok: Bool, message: String) {
        self.at = at
        self.ok = ok
        self.message = message
    }
}

/// Result of `status`.
public struct StatusInfo: Codable, Sendable, Equatable {
    public var version: String
    public var pid: Int32
    public var uptimeSeconds: Double
    public var ariConnected: Bool
    /// ARI base URL without credentials.
    public var ariURL: String
    public var appName: String
    public var draining: Bool
    public var liveCalls: Int
    public var totals: CallTotals
    public var configPath: String
    public var lastReload: ReloadInfo?

    public init(version: String, pid: Int32, uptimeSeconds: Double, ariConnected: Bool, ariURL: String,
                appName: String, draining: Bool, liveCalls: Int, totals: CallTotals, configPath: String,
                lastReload: ReloadInfo?) {
        self.version = version
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
        self.ariConnected = ariConnected
        self.ariURL = ariURL
        self.appName = appName
        self.draining = draining
        self.liveCalls = liveCalls
        self.totals = totals
        self.configPath = configPath
        self.lastReload = lastReload
    }
}

/// One live call, in the result of `calls`.
public struct CallInfo: Codable, Sendable, Equatable {
    public var callId: String
    public var channelId: String
    /// Caller number and/or name as Asterisk reported it.
    public var caller: String
    public var campaign: String?
    public var state: String
    public var ageSeconds: Double
    public var packetsIn: UInt64
    public var packetsOut: UInt64
    public var packetsDropped: UInt64
    public var playoutBufferMs: Int
    public var aiSessionId: String?

    public init(callId: String, channelId: String, caller: String, campaign: String?, state: String,
                ageSeconds: Double, packetsIn: UInt64, packetsOut: UInt64, packetsDropped: UInt64,
                playoutBufferMs: Int, aiSessionId: String?) {
        self.callId = callId
        self.channelId = channelId
        self.caller = caller
        self.campaign = campaign
        self.state = state
        self.ageSeconds = ageSeconds
        self.packetsIn = packetsIn
        self.packetsOut = packetsOut
        self.packetsDropped = packetsDropped
        self.playoutBufferMs = playoutBufferMs
        self.aiSessionId = aiSessionId
    }
}

/// Result of `calls`: `{"calls":[...]}`.
public struct CallsResult: Codable, Sendable, Equatable {
    public var calls: [CallInfo]
    public init(calls: [CallInfo]) { self.calls = calls }
}

/// Result of `stats` (and of every line of a followed `stats`).
public struct StatsSnapshot: Codable, Sendable, Equatable {
    /// When the snapshot was taken, unix seconds.
    public var at: Double
    public var uptimeSeconds: Double
    public var liveCalls: Int
    /// Monotonic counters since start, e.g. rtp_in_packets, rtp_out_packets, rtp_dropped_unknown_source,
    /// rtp_malformed, ai_frames_in, ai_frames_out, ai_malformed, ari_events, ari_events_malformed,
    /// calls_started, calls_ended.
    public var counters: [String: UInt64]

    public init(at: Double, uptimeSeconds: Double, liveCalls: Int, counters: [String: UInt64]) {
        self.at = at
        self.uptimeSeconds = uptimeSeconds
        self.liveCalls = liveCalls
        self.counters = counters
    }
}

/// Arguments of `drain`.
public struct DrainRequest: Codable, Sendable, Equatable {
    public var wait: Bool
    public var timeoutSeconds: Double?

    public init(wait: Bool = false, timeoutSeconds: Double? = nil) {
        self.wait = wait
        self.timeoutSeconds = timeoutSeconds
    }

    public var arguments: ControlArguments { ControlArguments(wait: wait, timeoutSeconds: timeoutSeconds) }
}

/// Result of `drain`. Without `wait`, `remainingCalls` is the number of live calls when draining started
/// and `timedOut` is false.
public struct DrainResult: Codable, Sendable, Equatable {
    public var remainingCalls: Int
    public var timedOut: Bool

    public init(remainingCalls: Int, timedOut: Bool) {
        self.remainingCalls = remainingCalls
        self.timedOut = timedOut
    }
}

/// Result of `undrain`.
public struct UndrainResult: Codable, Sendable, Equatable {
    public var draining: Bool
    public init(draining: Bool = false) { self.draining = draining }
}

/// Arguments of `end`.
public struct EndCallRequest: Codable, Sendable, Equatable {
    public var callId: String
    public init(callId: String) { self.callId = callId }
}

/// Result of `end`.
public struct EndCallResult: Codable, Sendable, Equatable {
    public var callId: String
    public var ended: Bool
    public init(callId: String, ended: Bool = true) {
        self.callId = callId
        self.ended = ended
    }
}
