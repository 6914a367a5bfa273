import FoundationEssentials
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Which wire protocol the AI test server speaks (docs/ai-protocol.md).
public enum AITestDialect: String, Sendable {
    /// The bridge's own protocol: JSON `type` messages and binary PCM16LE audio.
    case native
    /// Twilio Media Streams, server side: `connected`/`start`/`media`/`dtmf`/`mark`/`stop` from the
    /// bridge; `media` (base64 μ-law 8 kHz), `mark`, `clear` and the `foneai` extension event back.
    case twilio
}

/// What the AI test server does in a session. In the Twilio dialect audio is always 8 kHz μ-law
/// `media` events: rates given to `.tone` and to script steps are ignored (there is no `format`).
public enum AITestMode: Sendable {
    /// Sends every binary frame it receives straight back (same rate as `start`).
    case echo
    /// Declares `format` `sampleRate`, then streams a sine tone in real time (20 ms frames), for
    /// `seconds` (nil: until the connection ends).
    case tone(hz: Double, sampleRate: Int = 16000, seconds: Double? = nil)
    /// Receives and records only.
    case silent
    /// Runs the steps in order (after the `start` message arrived), recording everything inbound.
    case script([AIScriptStep])
    /// Chooses the mode once the `start` message has arrived (e.g. per caller number).
    case perCall(@Sendable (AIStartMessage) -> AITestMode)
}

/// One step of a scripted AI session.
public enum AIScriptStep: Sendable {
    case wait(Duration)
    /// Waits until caller audio has been received (at least `minFrames` binary frames, or Twilio
    /// `media` events), or the timeout.
    case waitForAudio(minFrames: Int = 1, timeout: Duration = .seconds(10))
    /// Waits until the bridge echoed the mark `name`, or the timeout.
    case waitForMark(String, timeout: Duration = .seconds(10))
    /// Sends `{"type":"format","sampleRate":…}` (Twilio: nothing; its audio is always 8 kHz).
    case sendFormat(sampleRate: Int)
    /// Sends a tone. Declares `format` first when `sampleRate` differs from the current rate.
    /// `paced`: one `chunkMs` frame per `chunkMs` of real time; else everything at once in `chunkMs` frames.
    /// Twilio: 8 kHz μ-law `media` events of `chunkMs` each, whatever `sampleRate` says.
    case sendTone(hz: Double, seconds: Double, sampleRate: Int = 16000, chunkMs: Int = 20, paced: Bool = true)
    /// Sends raw PCM16LE samples (at the current rate) as one binary frame (Twilio: 8 kHz samples
    /// as one `media` event).
    case sendSamples([Int16])
    /// Sends a raw text frame (any JSON, or not).
    case sendText(String)
    /// Sends a raw binary frame.
    case sendBinary([UInt8])
    case sendMark(String)
    case clear
    /// Native control messages; in the Twilio dialect they go inside the `foneai` extension event
    /// (`{"event":"foneai","streamSid":…,"foneai":{"type":"end",…}}`).
    case setVariables([String: String])
    case end(sessionId: String, variables: [String: String] = [:])
    case transfer(context: String, extension: String, priority: Int? = nil, jump: Bool = false, sessionId: String? = nil, variables: [String: String] = [:])
    case hangup(sessionId: String? = nil, variables: [String: String] = [:])
    /// Turns echo (send every received binary frame back) on or off.
    case echo(Bool)
    /// Closes the TCP connection abruptly (no WebSocket close frame, no `end`).
    case dropConnection
    /// Normal WebSocket close (no `end`).
    case closeSocket
}

/// The bridge's `start` message, parsed.
public struct AIStartMessage: Sendable {
    public var raw: String
    public var json: SimJSON
    public var version: Int?
    public var callId: String?
    public var channelId: String?
    public var callerNumber: String?
    public var callerName: String?
    public var exten: String?
    public var context: String?
    /// nil when absent or JSON null.
    public var campaign: String?
    public var apiKey: String?
    /// `custom` re-serialized as JSON ("null" when null, nil when absent).
    public var customJSON: String?
    public var custom: SimJSON?
    public var args: [String]
    public var sampleRate: Int?
    public var encoding: String?
    public var channels: Int?
    public var frameMs: Int?
    /// Twilio dialect: `start.streamSid`, `start.callSid` (the caller's channel id), `start.accountSid`,
    /// `start.tracks`, `start.customParameters` (every value as a string). The dialect-neutral fields
    /// above are filled from them (channelId = callSid, sampleRate/encoding from `mediaFormat`,
    /// `custom` parsed as JSON when it is JSON).
    public var streamSid: String?
    public var callSid: String?
    public var accountSid: String?
    public var tracks: [String] = []
    public var customParameters: [String: String] = [:]

    /// A Twilio `start` event.
    init(twilio raw: String, json: SimJSON) {
        self.raw = raw
        self.json = json
        let start = json["start"]
        streamSid = start?["streamSid"]?.stringValue
        callSid = start?["callSid"]?.stringValue
        accountSid = start?["accountSid"]?.stringValue
        tracks = start?["tracks"]?.arrayValue?.compactMap { $0.stringValue } ?? []
        for (k, v) in start?["customParameters"]?.objectValue ?? [] {
            customParameters[k] = v.stringValue ?? v.serialized
        }
        version = nil
        callId = customParameters["callId"]
        channelId = callSid
        callerNumber = customParameters["callerNumber"]
        callerName = customParameters["callerName"]
        exten = customParameters["exten"]
        context = customParameters["context"]
        campaign = customParameters["campaign"]
        apiKey = customParameters["apiKey"]
        if let text = customParameters["custom"] {
            let parsed = SimJSON.parse(text) ?? .string(text)
            custom = parsed
            customJSON = parsed.serialized
        }
        args = []
        sampleRate = start?["mediaFormat"]?["sampleRate"]?.intValue
        encoding = start?["mediaFormat"]?["encoding"]?.stringValue
        channels = start?["mediaFormat"]?["channels"]?.intValue
        frameMs = nil
    }

    init(raw: String, json: SimJSON) {
        self.raw = raw
        self.json = json
        version = json["version"]?.intValue
        callId = json["callId"]?.stringValue
        channelId = json["channelId"]?.stringValue
        callerNumber = json["caller"]?["number"]?.stringValue
        callerName = json["caller"]?["name"]?.stringValue
        exten = json["exten"]?.stringValue
        context = json["context"]?.stringValue
        campaign = json["campaign"]?.stringValue
        apiKey = json["apiKey"]?.stringValue
        custom = json["custom"]
        customJSON = json["custom"]?.serialized
        args = json["args"]?.arrayValue?.compactMap { $0.stringValue } ?? []
        sampleRate = json["media"]?["sampleRate"]?.intValue
        encoding = json["media"]?["encoding"]?.stringValue
        channels = json["media"]?["channels"]?.intValue
        frameMs = json["media"]?["frameMs"]?.intValue
    }
}

/// Everything seen in one AI WebSocket session.
public struct AISessionRecord: Sendable {
    public var index: Int
    /// Request target of the upgrade (path + query).
    public var requestPath: String
    /// Upgrade request headers (lower-cased names).
    public var requestHeaders: [String: String]
    public var connectedAtNanos: UInt64
    public var start: AIStartMessage?
    public var startAtNanos: UInt64?
    /// Caller audio: concatenated PCM16LE from the binary frames.
    public var receivedAudio: [Int16]
    public var binaryFrameCount: Int
    public var binaryFrameSizes: [Int]
    /// CLOCK_MONOTONIC ns of each binary frame (Twilio: of each inbound `media` event).
    public var binaryFrameArrivalNanos: [UInt64]
    /// Every text frame received, raw.
    public var textMessages: [String]
    public var stopReason: String?
    public var dtmfDigits: [String]
    public var dtmfDurations: [Int]
    /// Marks the bridge echoed back.
    public var marksEchoed: [String]
    /// Text frames that were not JSON objects with a string `type`.
    public var malformedMessages: Int
    /// Valid JSON with an unknown `type`.
    public var unknownMessages: Int
    /// Samples the AI sent (at whatever rate it declared).
    public var samplesSent: Int
    public var binaryFramesSent: Int
    public var textMessagesSent: [String]
    public var closed: Bool
    public var closedAtNanos: UInt64?
    public var dialect: AITestDialect = .native
    /// Caller audio frames received: binary frames (native) or `media` events (Twilio).
    public var audioFrameCount = 0
    /// Audio frames the AI sent: binary frames (native) or `media` events (Twilio).
    public var audioFramesSent = 0
    /// The bridge sent `stop` (native: `stopReason` holds its reason; Twilio: see `twilio.stop…`).
    public var stopReceived = false
    /// Twilio dialect only: everything Twilio-specific the bridge sent, and protocol violations.
    public var twilio: AITwilioRecord?

    init(index: Int, requestPath: String, requestHeaders: [String: String]) {
        self.index = index
        self.requestPath = requestPath
        self.requestHeaders = requestHeaders
        connectedAtNanos = simMonotonicNanos()
        receivedAudio = []
        binaryFrameCount = 0
        binaryFrameSizes = []
        binaryFrameArrivalNanos = []
        textMessages = []
        dtmfDigits = []
        dtmfDurations = []
        marksEchoed = []
        malformedMessages = 0
        unknownMessages = 0
        samplesSent = 0
        binaryFramesSent = 0
        textMessagesSent = []
        closed = false
    }

    public var callerNumber: String? { start?.callerNumber }
    public var channelId: String? { start?.channelId }
    /// The rate of `receivedAudio`: the `start` rate (Twilio: 8000).
    public var receivedSampleRate: Int { start?.sampleRate ?? (dialect == .twilio ? 8000 : 16000) }
    /// Duration of caller audio received, at the `start` sample rate.
    public var receivedAudioSeconds: Double {
        Double(receivedAudio.count) / Double(receivedSampleRate)
    }
}

/// What a Twilio Media Streams client (the bridge) sent, checked against Twilio's message reference.
public struct AITwilioRecord: Sendable {
    /// The `connected` event (must come first, without sequenceNumber or streamSid).
    public var connected: SimJSON?
    /// Event names in arrival order (connected, start, media, …).
    public var events: [String] = []
    /// `sequenceNumber`s of every event after `connected`, parsed (they must be strings "1", "2", …).
    public var sequenceNumbers: [Int] = []
    /// Inbound `media` events: count, `media.chunk` values, `media.timestamp` values (ms), payload sizes (μ-law bytes).
    public var mediaEvents = 0
    public var chunks: [Int] = []
    public var timestamps: [Int] = []
    public var payloadSizes: [Int] = []
    /// `dtmf.track` of each `dtmf` event (digits are in the session's `dtmfDigits`).
    public var dtmfTracks: [String] = []
    /// The `stop` event's `stop.accountSid` / `stop.callSid`.
    public var stop: SimJSON?
    public var stopAccountSid: String?
    public var stopCallSid: String?
    /// Everything that deviates from Twilio's message reference (empty when the bridge is correct).
    public var protocolErrors: [String] = []
}

final class AISessionBox: Sendable {
    let record: Mutex<AISessionRecord>
    init(_ r: AISessionRecord) { record = Mutex(r) }
    var snapshot: AISessionRecord { record.withLock { $0 } }
}

/// A WebSocket server that speaks docs/ai-protocol.md (the AI side), for tests and the demo: the
/// native protocol or, per server, the Twilio Media Streams dialect.
public final class AITestServer: Sendable {
    private let server: SimHTTPServer
    private let holder: Holder
    public let host: String
    public let path: String
    private let logger: Logger

    /// The protocol this server speaks.
    public let dialect: AITestDialect

    private init(server: SimHTTPServer, host: String, path: String, dialect: AITestDialect, holder: Holder, logger: Logger) {
        self.server = server
        self.dialect = dialect
        self.host = host
        self.path = path
        self.holder = holder
        self.logger = logger
    }

    final class Holder: Sendable {
        let state: Mutex<(mode: AITestMode, sessions: [AISessionBox])>
        init(mode: AITestMode) { state = Mutex((mode, [])) }
    }

    /// Starts the server. `dialect` is the protocol every session on this server speaks (the
    /// bridge's `ai.protocol`): `.native` (default) or `.twilio` (Twilio Media Streams).
    public static func start(
        host: String = "127.0.0.1", port: Int = 0, path: String = "/stream", mode: AITestMode = .silent,
        dialect: AITestDialect = .native, logLevel: Logger.Level = .warning
    ) async throws -> AITestServer {
        var logger = Logger(label: "foneai-sim.ai")
        logger.logLevel = logLevel <= .debug ? logLevel : .critical
        let holder = Holder(mode: mode)
        let responder = CallbackResponder<BasicRequestContext> { _, _ in
            Response.simJSON(status: 404, body: #"{"error":"not found"}"#)
        }
        let wsConfig = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: nil),
            ws: .init(maxFrameSize: 1 << 22, autoPing: .disabled)
        )
        let shouldUpgrade: @Sendable (HTTPRequest, any Channel, Logger) throws -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> = { head, channel, _ in
            let target = head.path ?? "/"
            let (reqPath, _) = SimURL.split(target)
            guard reqPath == path else { return .dontUpgrade }
            var headers: [String: String] = [:]
            for field in head.headerFields { headers[field.name.canonicalName] = field.value }
            let box: AISessionBox = holder.state.withLock { st in
                var record = AISessionRecord(index: st.sessions.count, requestPath: target, requestHeaders: headers)
                record.dialect = dialect
                if dialect == .twilio { record.twilio = AITwilioRecord() }
                let b = AISessionBox(record)
                st.sessions.append(b)
                return b
            }
            let mode = holder.state.withLock { $0.mode }
            return .upgrade([:]) { inbound, outbound, _ in
                await AISessionRunner(box: box, channel: channel, outbound: outbound, mode: mode, dialect: dialect).run(inbound: inbound)
            }
        }
        let server = try await SimHTTPServer.start(description: "AI \(host):\(port)") { onRunning in
            Application(
                responder: responder,
                server: .http1WebSocketUpgrade(configuration: wsConfig, shouldUpgrade: shouldUpgrade),
                configuration: .init(address: .hostname(host, port: port), serverName: nil, reuseAddress: true),
                onServerRunning: onRunning,
                eventLoopGroupProvider: .singleton,
                logger: logger
            )
        }
        return AITestServer(server: server, host: host, path: path, dialect: dialect, holder: holder, logger: logger)
    }

    public var port: Int { server.port }
    /// "ws://127.0.0.1:PORT/stream"
    public var url: String { "ws://\(host):\(server.port)\(path)" }

    public func stop() async {
        await server.stop()
    }

    /// The mode for sessions accepted from now on.
    public func setMode(_ mode: AITestMode) async {
        holder.state.withLock { $0.mode = mode }
    }

    /// One record per accepted connection, in order.
    public func sessions() async -> [AISessionRecord] {
        holder.state.withLock { $0.sessions }.map(\.snapshot)
    }

    public var sessionCount: Int { get async { holder.state.withLock { $0.sessions.count } } }

    /// Waits until at least `count` sessions were accepted; returns them (maybe fewer on timeout).
    public func waitForSessions(_ count: Int, timeout: Duration = .seconds(10)) async -> [AISessionRecord] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if holder.state.withLock({ $0.sessions.count }) >= count { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return await sessions()
    }

    /// Waits until session `index` satisfies `predicate`; returns its last snapshot.
    public func waitForSession(
        _ index: Int, timeout: Duration = .seconds(10), until predicate: @Sendable (AISessionRecord) -> Bool
    ) async -> AISessionRecord? {
        let deadline = ContinuousClock.now + timeout
        var last: AISessionRecord? = nil
        while ContinuousClock.now < deadline {
            let box = holder.state.withLock { index < $0.sessions.count ? $0.sessions[index] : nil }
            if let box {
                last = box.snapshot
                if predicate(last!) { return last }
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return last
    }

    /// Sum of malformed text messages over all sessions.
    public var malformedMessagesReceived: Int {
        get async { holder.state.withLock { $0.sessions }.reduce(0) { $0 + $1.snapshot.malformedMessages } }
    }

    /// Sum of unknown-type messages over all sessions.
    public var unknownMessagesReceived: Int {
        get async { holder.state.withLock { $0.sessions }.reduce(0) { $0 + $1.snapshot.unknownMessages } }
    }

    /// Sessions whose connection is still open.
    public var openSessionCount: Int {
        get async { holder.state.withLock { $0.sessions }.filter { !$0.snapshot.closed }.count }
    }
}

/// Drives one AI session.
struct AISessionRunner: Sendable {
    let box: AISessionBox
    let channel: any Channel
    let outbound: WebSocketOutboundWriter
    let mode: AITestMode
    let dialect: AITestDialect

    init(box: AISessionBox, channel: any Channel, outbound: WebSocketOutboundWriter, mode: AITestMode, dialect: AITestDialect = .native) {
        self.box = box
        self.channel = channel
        self.outbound = outbound
        self.mode = mode
        self.dialect = dialect
    }

    enum Tag { case reader, driver }

    func run(inbound: WebSocketInboundStream) async {
        let echoFlag = EchoFlag()
        await withTaskGroup(of: Tag.self) { group in
            group.addTask {
                await self.read(inbound: inbound, echo: echoFlag)
                return .reader
            }
            group.addTask {
                await self.drive(echo: echoFlag)
                return .driver
            }
            for await tag in group where tag == .reader {
                group.cancelAll()
                break
            }
        }
        box.record.withLock { r in
            if !r.closed {
                r.closed = true
                r.closedAtNanos = simMonotonicNanos()
            }
        }
    }

    final class EchoFlag: Sendable {
        let on = Atomic<Bool>(false)
    }

    func read(inbound: WebSocketInboundStream, echo: EchoFlag) async {
        do {
            for try await message in inbound.messages(maxSize: 1 << 24) {
                switch message {
                case .binary(let buffer):
                    var buf = buffer
                    let n = buf.readableBytes
                    var samples = [Int16]()
                    samples.reserveCapacity(n / 2)
                    while let s = buf.readInteger(endianness: .little, as: Int16.self) { samples.append(s) }
                    let now = simMonotonicNanos()
                    box.record.withLock { r in
                        r.binaryFrameCount += 1
                        r.binaryFrameSizes.append(n)
                        r.binaryFrameArrivalNanos.append(now)
                        if dialect == .twilio {
                            // Twilio carries audio as base64 in text `media` events only.
                            r.twilio?.protocolErrors.append("binary frame of \(n) bytes")
                            return
                        }
                        r.receivedAudio.append(contentsOf: samples)
                        r.audioFrameCount += 1
                    }
                    if dialect == .native && echo.on.load(ordering: .relaxed) {
                        try await outbound.write(.binary(buffer))
                        box.record.withLock { r in
                            r.samplesSent += n / 2
                            r.binaryFramesSent += 1
                            r.audioFramesSent += 1
                        }
                    }
                case .text(let text):
                    switch dialect {
                    case .native:
                        handleText(text)
                    case .twilio:
                        if let payload = handleTwilioText(text), echo.on.load(ordering: .relaxed) {
                            try await sendTwilioMedia(base64: payload, samples: payload.count * 3 / 4)
                        }
                    }
                }
            }
        } catch {}
        box.record.withLock { r in
            r.closed = true
            r.closedAtNanos = simMonotonicNanos()
        }
    }

    func handleText(_ text: String) {
        let now = simMonotonicNanos()
        box.record.withLock { r in
            r.textMessages.append(text)
            guard let json = SimJSON.parse(text), let type = json["type"]?.stringValue else {
                r.malformedMessages += 1
                return
            }
            switch type {
            case "start":
                if r.start == nil {
                    r.start = AIStartMessage(raw: text, json: json)
                    r.startAtNanos = now
                }
            case "stop":
                r.stopReason = json["reason"]?.stringValue ?? ""
                r.stopReceived = true
            case "dtmf":
                r.dtmfDigits.append(json["digit"]?.stringValue ?? "")
                r.dtmfDurations.append(json["durationMs"]?.intValue ?? 0)
            case "mark":
                r.marksEchoed.append(json["name"]?.stringValue ?? "")
            default:
                r.unknownMessages += 1
            }
        }
    }

    /// One Twilio event from the bridge, checked against Twilio's message reference. Returns the
    /// base64 payload of an inbound `media` event (for echo).
    func handleTwilioText(_ text: String) -> String? {
        let now = simMonotonicNanos()
        return box.record.withLock { r -> String? in
            r.textMessages.append(text)
            guard let json = SimJSON.parse(text), let event = json["event"]?.stringValue else {
                r.malformedMessages += 1
                return nil
            }
            var tw = r.twilio ?? AITwilioRecord()
            defer { r.twilio = tw }
            func error(_ what: String) { tw.protocolErrors.append("\(event) #\(tw.events.count - 1): \(what)") }
            let isFirst = tw.events.isEmpty
            tw.events.append(event)
            if event == "connected" {
                if !isFirst { error("connected is not the first message") }
                if json["sequenceNumber"] != nil || json["streamSid"] != nil { error("connected carries sequenceNumber/streamSid") }
                if json["protocol"]?.stringValue != "Call" { error("protocol is not \"Call\"") }
                if json["version"]?.stringValue != "1.0.0" { error("version is not \"1.0.0\"") }
                tw.connected = json
                return nil
            }
            if isFirst { error("the first message is not connected") }
            // Every other message: a string sequenceNumber counting from "1", and the streamSid.
            if let seqText = json["sequenceNumber"]?.stringValue, let seq = Int(seqText) {
                let expected = (tw.sequenceNumbers.last ?? 0) + 1
                if seq != expected { error("sequenceNumber \(seq), expected \(expected)") }
                tw.sequenceNumbers.append(seq)
            } else {
                error("sequenceNumber missing or not a string")
            }
            guard let sid = json["streamSid"]?.stringValue else {
                error("streamSid missing")
                return nil
            }
            if event != "start", let known = r.start?.streamSid, sid != known { error("streamSid \(sid) != \(known)") }
            switch event {
            case "start":
                if tw.events.count != 2 { error("start is not the second message") }
                if r.start == nil {
                    let start = AIStartMessage(twilio: text, json: json)
                    if start.streamSid != sid { error("start.streamSid differs from streamSid") }
                    if start.streamSid?.hasPrefix("MZ") != true || start.streamSid?.count != 34 { error("streamSid is not MZ + 32 characters") }
                    if start.accountSid?.hasPrefix("AC") != true { error("accountSid does not start with AC") }
                    if start.callSid == nil { error("callSid missing") }
                    if start.encoding != "audio/x-mulaw" || start.sampleRate != 8000 || start.channels != 1 {
                        error("mediaFormat is not audio/x-mulaw 8000 Hz mono")
                    }
                    if json["start"]?["customParameters"]?.objectValue == nil { error("customParameters missing") }
                    if json["start"]?["customParameters"]?.objectValue?.contains(where: { $0.1.stringValue == nil }) == true {
                        error("a customParameters value is not a string")
                    }
                    r.start = start
                    r.startAtNanos = now
                }
            case "media":
                let media = json["media"]
                if media?["track"]?.stringValue != "inbound" { error("media.track is not inbound") }
                if let chunk = media?["chunk"]?.stringValue.flatMap({ Int($0) }) {
                    if chunk != (tw.chunks.last ?? 0) + 1 { error("media.chunk \(chunk) out of order") }
                    tw.chunks.append(chunk)
                } else {
                    error("media.chunk missing or not a string")
                }
                if let ts = media?["timestamp"]?.stringValue.flatMap({ Int($0) }) {
                    tw.timestamps.append(ts)
                } else {
                    error("media.timestamp missing or not a string")
                }
                guard let payload = media?["payload"]?.stringValue, let data = Data(base64Encoded: payload) else {
                    error("media.payload is not base64")
                    return nil
                }
                tw.mediaEvents += 1
                tw.payloadSizes.append(data.count)
                r.receivedAudio.append(contentsOf: data.map { G711.ulawDecode($0) })
                r.audioFrameCount += 1
                r.binaryFrameArrivalNanos.append(now)
                return payload
            case "dtmf":
                tw.dtmfTracks.append(json["dtmf"]?["track"]?.stringValue ?? "")
                if json["dtmf"]?["track"]?.stringValue != "inbound_track" { error("dtmf.track is not inbound_track") }
                if let digit = json["dtmf"]?["digit"]?.stringValue {
                    r.dtmfDigits.append(digit)
                } else {
                    error("dtmf.digit missing")
                }
            case "mark":
                if let name = json["mark"]?["name"]?.stringValue {
                    r.marksEchoed.append(name)
                } else {
                    error("mark.name missing")
                }
            case "stop":
                r.stopReceived = true
                tw.stop = json
                tw.stopAccountSid = json["stop"]?["accountSid"]?.stringValue
                tw.stopCallSid = json["stop"]?["callSid"]?.stringValue
                if tw.stopCallSid == nil || tw.stopAccountSid == nil { error("stop.callSid/accountSid missing") }
            default:
                r.unknownMessages += 1
            }
            return nil
        }
    }

    // MARK: driving

    func waitForStart(timeout: Duration = .seconds(5)) async -> AIStartMessage? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (start, closed) = box.record.withLock { ($0.start, $0.closed) }
            if let start { return start }
            if closed { return nil }
            do { try await Task.sleep(for: .milliseconds(2)) } catch { return nil }
        }
        return nil
    }

    func drive(echo: EchoFlag) async {
        let start = await waitForStart()
        if Task.isCancelled { return }
        var mode = self.mode
        if case .perCall(let choose) = mode {
            guard let start else { return }
            mode = choose(start)
        }
        var currentRate = start?.sampleRate ?? (dialect == .twilio ? 8000 : 16000)
        do {
            switch mode {
            case .echo:
                echo.on.store(true, ordering: .relaxed)
            case .silent, .perCall:
                return
            case .tone(let hz, let rate, let seconds):
                if dialect == .native {
                    try await sendText(SimJSON.object([("type", "format"), ("sampleRate", .int(rate))]).serialized)
                }
                try await sendTone(hz: hz, seconds: seconds ?? .infinity, sampleRate: rate, chunkMs: 20, paced: true)
            case .script(let steps):
                for step in steps {
                    try Task.checkCancellation()
                    if case .echo(let on) = step {
                        echo.on.store(on, ordering: .relaxed)
                        continue
                    }
                    try await run(step, currentRate: &currentRate)
                }
            }
        } catch {}
    }

    func sendText(_ text: String) async throws {
        try await outbound.write(.text(text))
        box.record.withLock { $0.textMessagesSent.append(text) }
    }

    /// The streamSid to put on Twilio messages (the one `start` announced).
    var streamSid: String { box.record.withLock { $0.start?.streamSid } ?? "" }

    /// A Twilio event from the AI: `{"event":…,"streamSid":…, …}`.
    func sendTwilio(_ event: String, _ fields: [(String, SimJSON)] = []) async throws {
        try await sendText(SimJSON.object([("event", .string(event)), ("streamSid", .string(streamSid))] + fields).serialized)
    }

    func sendTwilioMedia(base64 payload: String, samples: Int) async throws {
        try await sendTwilio("media", [("media", ["payload": .string(payload)])])
        box.record.withLock { r in
            r.samplesSent += samples
            r.audioFramesSent += 1
        }
    }

    /// A native control message, or in the Twilio dialect the same object in a `foneai` event.
    func sendControl(_ object: SimJSON) async throws {
        switch dialect {
        case .native: try await sendText(object.serialized)
        case .twilio: try await sendTwilio("foneai", [("foneai", object)])
        }
    }

    func sendSamples(_ samples: [Int16]) async throws {
        if dialect == .twilio {
            let ulaw = samples.map { G711.ulawEncode($0) }
            try await sendTwilioMedia(base64: Data(ulaw).base64EncodedString(), samples: samples.count)
            return
        }
        var buf = channel.allocator.buffer(capacity: samples.count * 2)
        for s in samples { buf.writeInteger(s, endianness: .little) }
        try await outbound.write(.binary(buf))
        box.record.withLock { r in
            r.samplesSent += samples.count
            r.binaryFramesSent += 1
            r.audioFramesSent += 1
        }
    }

    func sendTone(hz: Double, seconds: Double, sampleRate requested: Int, chunkMs: Int, paced: Bool) async throws {
        let sampleRate = dialect == .twilio ? 8000 : requested
        let chunk = max(1, sampleRate * max(1, chunkMs) / 1000)
        let total = seconds.isFinite ? Int((seconds * Double(sampleRate)).rounded()) : Int.max
        var gen = ToneGenerator(frequency: hz, sampleRate: sampleRate)
        let clock = ContinuousClock()
        let t0 = clock.now
        var sent = 0
        var i = 0
        while sent < total {
            try Task.checkCancellation()
            if box.record.withLock({ $0.closed }) { return }
            let n = min(chunk, total - sent)
            try await sendSamples(gen.next(n))
            sent += n
            i += 1
            if paced {
                try await Task.sleep(until: t0 + .milliseconds(chunkMs * i), clock: clock)
            }
        }
    }

    func run(_ step: AIScriptStep, currentRate: inout Int) async throws {
        switch step {
        case .wait(let d):
            try await Task.sleep(for: d)
        case .waitForAudio(let minFrames, let timeout):
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline, box.record.withLock({ $0.audioFrameCount < minFrames && !$0.closed }) {
                try await Task.sleep(for: .milliseconds(5))
            }
        case .waitForMark(let name, let timeout):
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline, box.record.withLock({ !$0.marksEchoed.contains(name) && !$0.closed }) {
                try await Task.sleep(for: .milliseconds(5))
            }
        case .sendFormat(let rate):
            guard dialect == .native else { return }
            try await sendText(SimJSON.object([("type", "format"), ("sampleRate", .int(rate))]).serialized)
            currentRate = rate
        case .sendTone(let hz, let seconds, let rate, let chunkMs, let paced):
            if dialect == .native && rate != currentRate {
                try await sendText(SimJSON.object([("type", "format"), ("sampleRate", .int(rate))]).serialized)
                currentRate = rate
            }
            try await sendTone(hz: hz, seconds: seconds, sampleRate: rate, chunkMs: chunkMs, paced: paced)
        case .sendSamples(let samples):
            try await sendSamples(samples)
        case .sendText(let text):
            try await sendText(text)
        case .sendBinary(let bytes):
            var buf = channel.allocator.buffer(capacity: bytes.count)
            buf.writeBytes(bytes)
            try await outbound.write(.binary(buf))
        case .sendMark(let name):
            switch dialect {
            case .native: try await sendText(SimJSON.object([("type", "mark"), ("name", .string(name))]).serialized)
            case .twilio: try await sendTwilio("mark", [("mark", ["name": .string(name)])])
            }
        case .clear:
            switch dialect {
            case .native: try await sendText(#"{"type":"clear"}"#)
            case .twilio: try await sendTwilio("clear")
            }
        case .setVariables(let vars):
            try await sendControl(SimJSON.object([("type", "setVariables"), ("variables", .strings(vars))]))
        case .end(let sessionId, let vars):
            var pairs: [(String, SimJSON)] = [("type", "end"), ("sessionId", .string(sessionId))]
            if !vars.isEmpty { pairs.append(("variables", .strings(vars))) }
            try await sendControl(SimJSON.object(pairs))
        case .transfer(let context, let ext, let priority, let jump, let sessionId, let vars):
            var pairs: [(String, SimJSON)] = [("type", "transfer"), ("context", .string(context)), ("extension", .string(ext))]
            if let priority { pairs.append(("priority", .int(priority))) }
            if jump { pairs.append(("jump", true)) }
            if let sessionId { pairs.append(("sessionId", .string(sessionId))) }
            if !vars.isEmpty { pairs.append(("variables", .strings(vars))) }
            try await sendControl(SimJSON.object(pairs))
        case .hangup(let sessionId, let vars):
            var pairs: [(String, SimJSON)] = [("type", "hangup")]
            if let sessionId { pairs.append(("sessionId", .string(sessionId))) }
            if !vars.isEmpty { pairs.append(("variables", .strings(vars))) }
            try await sendControl(SimJSON.object(pairs))
        case .echo:
            break  // handled by drive()
        case .dropConnection:
            try? await channel.close()
        case .closeSocket:
            try await outbound.close(.normalClosure, reason: nil)
        }
    }
}
