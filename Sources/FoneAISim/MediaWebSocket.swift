import FoundationEssentials
import HummingbirdWebSocket
import NIOCore
import NIOPosix
import Synchronization

/// What one WebSocket media channel (`externalMedia` with `transport=websocket`) saw and did.
public struct SimMediaWebSocketStats: Sendable {
    public var channelID: String
    /// `MEDIA_WEBSOCKET_CONNECTION_ID`.
    public var connectionID: String
    /// `WebSocket/INCOMING/0x…`.
    public var channelName: String
    public var format: String
    /// `MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE` (640 for slin16).
    public var optimalFrameSize: Int
    public var connected = false
    public var closed = false
    public var connectedAtNanos: UInt64?
    public var closedAtNanos: UInt64?
    /// "asterisk" (the channel was hung up or deleted), "app" (the application closed the socket).
    public var closedBy: String?
    /// The subprotocols the application offered in `Sec-WebSocket-Protocol`.
    public var offeredSubprotocols: [String] = []
    /// The `Authorization` header of the upgrade request (Asterisk does not check it here).
    public var authorizationHeader: String?
    /// Binary messages from the application: count, sizes, CLOCK_MONOTONIC arrival times.
    public var binaryMessagesReceived = 0
    public var binaryMessageSizes: [Int] = []
    public var binaryArrivalNanos: [UInt64] = []
    /// Frames of `optimalFrameSize` put on the queue.
    public var framesQueued = 0
    /// Bytes dropped because a message was not a multiple of the frame size (outside buffering mode).
    public var partialBytesDropped = 0
    /// Binary messages ignored because the queue held `queueMax` frames.
    public var messagesDroppedQueueFull = 0
    /// Frames played to the caller (one per 20 ms tick).
    public var framesPlayed = 0
    public var queueLength = 0
    public var maxQueueLength = 0
    /// Binary frames of caller audio sent to the application.
    public var framesSentToApp = 0
    /// Text messages sent to the application, in order (MEDIA_START, MEDIA_XOFF, DTMF_END, …).
    public var textsSentToApp: [String] = []
    /// CLOCK_MONOTONIC ns of every MEDIA_XOFF / MEDIA_XON sent.
    public var xoffSentNanos: [UInt64] = []
    public var xonSentNanos: [UInt64] = []
    /// Text commands received from the application, trimmed (FLUSH_MEDIA, HANGUP, …).
    public var commandsReceived: [String] = []
    public var unknownCommands = 0
    public var flushes = 0
    /// Queued frames dropped by FLUSH_MEDIA.
    public var framesFlushed = 0
    /// Frames still queued (never played) when the socket closed or the channel hung up.
    public var framesDiscardedAtClose = 0

    /// Binary messages that arrived in `[from, to)` (CLOCK_MONOTONIC ns).
    public func binaryMessages(from: UInt64, to: UInt64) -> Int {
        binaryArrivalNanos.filter { $0 >= from && $0 < to }.count
    }
}

/// Asterisk's chan_websocket for one `WebSocket/INCOMING` channel, as the facts file and the
/// driver's source describe it: the application connects to `/media/<connection id>` with
/// subprotocol `media`; the first text frame is `MEDIA_START …`; binary frames are raw
/// little-endian samples both ways. Frames from the application are cut into
/// `optimal_frame_size` pieces (a remainder is dropped unless buffering), queued (1000 at most,
/// `MEDIA_XOFF` at 900, `MEDIA_XON` once a dequeue finds fewer than 800) and played to the
/// bridged caller by a 20 ms timer that runs from the moment the socket connects. Caller audio
/// goes to the application only while the caller makes sound (simple bridge: no frames while
/// silent). Hanging up the channel closes the socket (1000); the application closing the socket
/// hangs up the channel.
final class MediaWebSocketChannel: Sendable {
    static let queueMax = 1000
    static let xoffLevel = 900
    static let xonLevel = 800
    static let maxTextLength = 128
    static let period = TimeAmount.milliseconds(20)

    let channelID: String
    let connectionID: String
    let channelName: String
    let format: SimRTPFormat
    let optimalFrameSize: Int

    enum Outgoing: Sendable {
        case text(String)
        case binary(ByteBuffer)
        case close
    }

    enum QueueItem {
        case audio([UInt8])
        /// A text event that is sent when it reaches the head of the queue (e.g. MEDIA_BUFFERING_COMPLETED).
        case option(String)
    }

    struct CallerStream {
        let generation: Int
        let timeline: AudioTimeline
        let call: SimCall
        let startSlot: Int
    }

    struct State {
        var claimed = false
        var closed = false
        var out: AsyncStream<Outgoing>.Continuation?
        var listener: SimCall?
        var stream: CallerStream?
        var generation = 0
        var queue: [QueueItem] = []
        var head = 0
        var queueLength = 0
        var queueFull = false
        var forcedXoffUntilNanos: UInt64?
        var paused = false
        var bulk = false
        var leftover: [UInt8] = []
        var reportDrained = false
        var start: NIODeadline?
        var slot = 0
        var stats: SimMediaWebSocketStats
    }

    let state: Mutex<State>

    init(channelID: String, connectionID: String, channelName: String, format: SimRTPFormat) {
        self.channelID = channelID
        self.connectionID = connectionID
        self.channelName = channelName
        self.format = format
        optimalFrameSize = format.payloadBytes
        state = Mutex(State(stats: SimMediaWebSocketStats(
            channelID: channelID, connectionID: connectionID, channelName: channelName,
            format: format.rawValue, optimalFrameSize: format.payloadBytes)))
    }

    var stats: SimMediaWebSocketStats {
        state.withLock { st in
            var s = st.stats
            s.queueLength = st.queueLength
            return s
        }
    }

    var isConnectedOrClaimed: Bool { state.withLock { $0.claimed } }

    /// Reserves the connection for one upgrade (a second one gets 409); false when taken or closed.
    func claim(subprotocols: [String], authorization: String?) -> Bool {
        state.withLock { st in
            guard !st.claimed, !st.closed else { return false }
            st.claimed = true
            st.stats.offeredSubprotocols = subprotocols
            st.stats.authorizationHeader = authorization
            return true
        }
    }

    // MARK: the socket

    /// Runs the accepted media socket until either side closes it. `onConnected` runs once
    /// MEDIA_START is queued (the channel is answered and enters Stasis then); `onClosedByApp`
    /// when the application (not Asterisk) ended the connection.
    func run(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, eventLoop: any EventLoop,
        channelUniqueID: String, onConnected: @escaping @Sendable () -> Void, onClosedByApp: @escaping @Sendable () -> Void
    ) async {
        let (stream, cont) = AsyncStream<Outgoing>.makeStream()
        let proceed: Bool = state.withLock { st in
            if st.closed { return false }
            st.out = cont
            st.stats.connected = true
            st.stats.connectedAtNanos = simMonotonicNanos()
            let start = "MEDIA_START connection_id:\(connectionID) channel:\(channelName) channel_id:\(channelUniqueID) format:\(format.rawValue) optimal_frame_size:\(optimalFrameSize) ptime:20"
            send(&st, .text(start))
            st.start = NIODeadline.now() + Self.period
            return true
        }
        guard proceed else {
            try? await outbound.close(.normalClosure, reason: nil)
            return
        }
        eventLoop.execute { self.tick(on: eventLoop) }
        onConnected()

        enum Ended { case byApp, byAsterisk }
        let ended: Ended = await withTaskGroup(of: Ended?.self) { group in
            group.addTask {
                do {
                    for try await message in inbound.messages(maxSize: 1 << 20) {
                        switch message {
                        case .binary(let buffer): self.receiveBinary(buffer)
                        case .text(let text): self.receiveText(text)
                        }
                    }
                } catch {}
                return .byApp
            }
            group.addTask {
                for await item in stream {
                    switch item {
                    case .text(let text):
                        do { try await outbound.write(.text(text)) } catch { return nil }
                    case .binary(let buffer):
                        do { try await outbound.write(.binary(buffer)) } catch { return nil }
                    case .close:
                        try? await outbound.close(.normalClosure, reason: nil)
                        return .byAsterisk
                    }
                }
                return nil
            }
            var result: Ended = .byApp
            while let next = await group.next() {
                if let next {
                    result = next
                    break
                }
            }
            group.cancelAll()
            return result
        }
        let wasOpen: Bool = state.withLock { st in
            let open = !st.closed
            if open {
                st.closed = true
                st.stats.closed = true
                st.stats.closedAtNanos = simMonotonicNanos()
                st.stats.closedBy = "app"
                discardQueue(&st)
            }
            st.out?.finish()
            st.out = nil
            st.listener = nil
            st.stream = nil
            return open
        }
        _ = ended
        if wasOpen { onClosedByApp() }
    }

    /// The channel was hung up or deleted: close the socket with 1000.
    func close() {
        state.withLock { st in
            guard !st.closed else { return }
            st.closed = true
            st.stats.closed = true
            st.stats.closedAtNanos = simMonotonicNanos()
            st.stats.closedBy = "asterisk"
            discardQueue(&st)
            st.out?.yield(.close)
            st.listener = nil
            st.stream = nil
            st.generation += 1
        }
    }

    /// Lock held: the channel is gone, what is queued is never played.
    private func discardQueue(_ st: inout State) {
        st.stats.framesDiscardedAtClose += st.queueLength
        st.queue.removeAll()
        st.head = 0
        st.queueLength = 0
    }

    /// Lock held.
    private func send(_ st: inout State, _ item: Outgoing) {
        guard let out = st.out else { return }
        if case .text(let text) = item {
            st.stats.textsSentToApp.append(text)
            let now = simMonotonicNanos()
            if text == "MEDIA_XOFF" { st.stats.xoffSentNanos.append(now) }
            if text == "MEDIA_XON" { st.stats.xonSentNanos.append(now) }
        }
        out.yield(item)
    }

    /// Sends a text event now (DTMF_END from the bridged caller, …).
    func sendEvent(_ text: String) {
        state.withLock { st in
            guard !st.closed else { return }
            send(&st, .text(text))
        }
    }

    // MARK: bridging

    /// The caller that hears what is played out (nil: nobody; frames are still consumed).
    func setListener(_ call: SimCall?) {
        state.withLock { $0.listener = call }
    }

    /// Streams `call`'s audio to the application from the next tick on.
    func startSending(for call: SimCall) {
        let timeline = call.timeline(for: format)
        state.withLock { st in
            st.generation += 1
            guard !st.closed else { return }
            st.stream = CallerStream(generation: st.generation, timeline: timeline, call: call, startSlot: st.slot)
        }
    }

    func stopSending() {
        state.withLock { st in
            st.generation += 1
            st.stream = nil
        }
    }

    /// Test hook: sends MEDIA_XOFF now (as if the queue had reached 900) and holds back MEDIA_XON
    /// until `duration` has passed; the XON then goes out on the next tick, as Asterisk would send it.
    func forceXOFF(for duration: Duration) {
        let nanos = UInt64(max(0, duration.components.seconds)) * 1_000_000_000 + UInt64(max(0, duration.components.attoseconds / 1_000_000_000))
        state.withLock { st in
            guard !st.closed else { return }
            st.forcedXoffUntilNanos = simMonotonicNanos() + nanos
            if !st.queueFull {
                st.queueFull = true
                send(&st, .text("MEDIA_XOFF"))
            }
        }
    }

    // MARK: the 20 ms timer

    private func tick(on eventLoop: any EventLoop) {
        let now = NIODeadline.now()
        let sentAt = simMonotonicNanos()  // before the sends (see `RTPStream.sendDue`)
        var heard: [(SimCall, [Int16])] = []
        var sentFor: SimCall? = nil
        var sentCount = 0
        let next: NIODeadline? = state.withLock { st in
            guard !st.closed, let start = st.start else { return nil }
            while start + Self.period * Int64(st.slot) <= now + .milliseconds(2) {
                if let frame = playSlot(&st), let listener = st.listener {
                    heard.append((listener, frame))
                }
                if sendCallerSlot(&st) {
                    sentFor = st.stream?.call ?? sentFor
                    sentCount += 1
                }
                st.slot += 1
            }
            return start + Self.period * Int64(st.slot)
        }
        for (call, samples) in heard {
            call.recordHeardWebSocket(samples: samples, sampleRate: format.sampleRate)
        }
        if let sentFor, sentCount > 0 { sentFor.noteSent(count: sentCount, at: sentAt) }
        guard let next else { return }
        eventLoop.scheduleTask(deadline: next) { self.tick(on: eventLoop) }
    }

    /// One dequeue, as chan_websocket's `dequeue_frame`; returns the samples played (nil: silence).
    private func playSlot(_ st: inout State) -> [Int16]? {
        if st.paused { return nil }
        if let until = st.forcedXoffUntilNanos {
            if simMonotonicNanos() >= until { st.forcedXoffUntilNanos = nil }
        }
        if st.queueFull && st.forcedXoffUntilNanos == nil && st.queueLength < Self.xonLevel {
            st.queueFull = false
            send(&st, .text("MEDIA_XON"))
        }
        while st.head < st.queue.count {
            let item = st.queue[st.head]
            st.head += 1
            switch item {
            case .option(let text):
                send(&st, .text(text))
            case .audio(let bytes):
                st.queueLength -= 1
                st.stats.framesPlayed += 1
                compact(&st)
                return decode(bytes)
            }
        }
        compact(&st)
        if st.reportDrained {
            st.reportDrained = false
            send(&st, .text("QUEUE_DRAINED"))
        }
        return nil
    }

    private func compact(_ st: inout State) {
        if st.head >= st.queue.count {
            st.queue.removeAll(keepingCapacity: true)
            st.head = 0
        } else if st.head > 256 {
            st.queue.removeFirst(st.head)
            st.head = 0
        }
    }

    private func decode(_ bytes: [UInt8]) -> [Int16] {
        switch format {
        case .slin16, .slin:
            return ToneAnalysis.samplesFromPCM16LE(bytes)
        case .ulaw:
            return bytes.map { G711.ulawDecode($0) }
        case .alaw:
            return bytes.map { G711.alawDecode($0) }
        }
    }

    /// Sends the caller's packet for this slot, if it has one; true when a frame went out.
    private func sendCallerSlot(_ st: inout State) -> Bool {
        guard let s = st.stream, s.generation == st.generation else { return false }
        switch s.timeline.packet(st.slot - s.startSlot) {
        case .ended:
            st.stream = nil
            return false
        case .silent:
            return false
        case .payload(let payload):
            var buf = payload
            if format == .slin16 || format == .slin {
                // The timeline holds RTP (big-endian) payloads; chan_websocket carries little-endian.
                var le = ByteBufferAllocator().buffer(capacity: payload.readableBytes)
                while let sample = buf.readInteger(endianness: .big, as: Int16.self) { le.writeInteger(sample, endianness: .little) }
                buf = le
            }
            st.stats.framesSentToApp += 1
            send(&st, .binary(buf))
            return true
        }
    }

    // MARK: from the application

    private func receiveBinary(_ buffer: ByteBuffer) {
        let now = simMonotonicNanos()
        let bytes = Array(buffer.readableBytesView)
        state.withLock { st in
            st.stats.binaryMessagesReceived += 1
            st.stats.binaryMessageSizes.append(bytes.count)
            st.stats.binaryArrivalNanos.append(now)
            guard !st.closed else { return }
            if st.queueLength >= Self.queueMax {
                st.stats.messagesDroppedQueueFull += 1
                return
            }
            var offset = 0
            let size = optimalFrameSize
            if st.bulk && !st.leftover.isEmpty {
                let needed = size - st.leftover.count
                let take = min(needed, bytes.count)
                st.leftover.append(contentsOf: bytes[0..<take])
                if take < needed { return }
                queueAudio(&st, st.leftover)
                st.leftover = []
                offset = take
            }
            if !st.bulk { st.leftover = [] }
            while bytes.count - offset >= size {
                queueAudio(&st, Array(bytes[offset..<offset + size]))
                offset += size
            }
            let rest = bytes.count - offset
            if rest > 0 {
                if st.bulk {
                    st.leftover = Array(bytes[offset...])
                } else {
                    st.stats.partialBytesDropped += rest
                }
            }
        }
    }

    private func queueAudio(_ st: inout State, _ frame: [UInt8]) {
        st.queue.append(.audio(frame))
        st.queueLength += 1
        st.stats.framesQueued += 1
        st.stats.maxQueueLength = max(st.stats.maxQueueLength, st.queueLength)
        if !st.queueFull && st.queueLength >= Self.xoffLevel {
            st.queueFull = true
            send(&st, .text("MEDIA_XOFF"))
        }
    }

    /// Plain-text commands (the default control format); HANGUP hangs the channel up.
    private func receiveText(_ raw: String) {
        guard !raw.isEmpty, raw.utf8.count <= Self.maxTextLength else {
            state.withLock { $0.stats.unknownCommands += 1 }
            return
        }
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        let command: String
        let data: String?
        if let space = text.firstIndex(of: " ") {
            command = String(text[..<space])
            data = String(text[text.index(after: space)...]).trimmingCharacters(in: .whitespaces)
        } else {
            command = text
            data = nil
        }
        var hangup = false
        state.withLock { st in
            st.stats.commandsReceived.append(text)
            switch command {
            case "ANSWER":
                break
            case "HANGUP":
                hangup = true
            case "START_MEDIA_BUFFERING":
                st.bulk = true
            case "STOP_MEDIA_BUFFERING":
                st.bulk = false
                if !st.leftover.isEmpty {
                    // A short last frame: played padded with silence.
                    var frame = st.leftover
                    frame.append(contentsOf: [UInt8](repeating: format == .ulaw ? 0xFF : (format == .alaw ? 0xD5 : 0), count: optimalFrameSize - frame.count))
                    queueAudio(&st, frame)
                }
                st.leftover = []
                let id = data.flatMap { $0.isEmpty ? nil : $0 }
                st.queue.append(.option("MEDIA_BUFFERING_COMPLETED" + (id.map { " " + $0 } ?? "")))
            case "FLUSH_MEDIA":
                st.stats.framesFlushed += st.queueLength
                st.queue.removeAll(keepingCapacity: true)
                st.head = 0
                st.queueLength = 0
                st.bulk = false
                st.leftover = []
                st.stats.flushes += 1
            case "REPORT_QUEUE_DRAINED":
                st.reportDrained = true
            case "GET_STATUS":
                send(&st, .text(
                    "STATUS channel_id:\(channelID) queue_length:\(st.queueLength) xon_level:\(Self.xonLevel) xoff_level:\(Self.xoffLevel) queue_full:\(st.queueFull) bulk_media:\(st.bulk) media_paused:\(st.paused)"))
            case "PAUSE_MEDIA":
                st.paused = true
            case "CONTINUE_MEDIA":
                st.paused = false
            case "MARK_MEDIA":
                var id = data ?? ""
                if id.hasPrefix("correlation_id:") { id = String(id.dropFirst("correlation_id:".count)) }
                st.queue.append(.option("MEDIA_MARK_PROCESSED correlation_id:\(id) channel_id:\(channelID)"))
            default:
                st.stats.unknownCommands += 1
            }
        }
        if hangup { onHangupCommand?() }
    }

    // Set once by the core when the channel is created.
    private let hangupHandler = Mutex<(@Sendable () -> Void)?>(nil)
    var onHangupCommand: (@Sendable () -> Void)? {
        get { hangupHandler.withLock { $0 } }
        set { hangupHandler.withLock { $0 = newValue } }
    }
}

// MARK: - the fake Asterisk's side

extension AsteriskCore {
    /// `POST /channels/externalMedia?transport=websocket&encapsulation=none&connection_type=server&format=…`
    /// (no `external_host`): a `WebSocket/INCOMING/…` channel, state Down, not in Stasis until the
    /// application connects to `/media/<MEDIA_WEBSOCKET_CONNECTION_ID>`.
    func webSocketExternalMedia(app: String, query: [String: String], body: String?) -> SimRESTResponse {
        let encapsulation = query["encapsulation"] ?? "none"
        guard encapsulation == "none" else { return .message(400, "encapsulation must be 'none' for transport 'websocket'") }
        let connectionType = query["connection_type"] ?? "client"
        switch connectionType {
        case "server":
            break
        case "client":
            guard let host = query["external_host"], !host.isEmpty else { return .message(400, "external_host is required") }
            return .message(501, "connection_type=client (websocket_client.conf) is not implemented by the simulator")
        default:
            return .message(400, "connection_type must be 'client' or 'server'")
        }
        guard let formatName = query["format"], !formatName.isEmpty else { return .message(400, "format is required") }
        guard let format = SimRTPFormat(rawValue: formatName) else { return .message(422, "Invalid format") }
        var extraVars: [String: String] = [:]
        if let body, let json = SimJSON.parse(body), let vars = json["variables"]?.stringDictionary { extraVars = vars }
        if let q = query["variables"], let json = SimJSON.parse(q), let vars = json.stringDictionary { extraVars.merge(vars) { $1 } }

        let (generatedID, order) = allocateExternalChannelID()
        let id = (query["channelId"].flatMap { $0.isEmpty ? nil : $0 }) ?? generatedID
        let connectionID = Self.uuid()
        let name = "WebSocket/INCOMING/0x7f\(randomHex(10))"
        let ws = MediaWebSocketChannel(channelID: id, connectionID: connectionID, channelName: name, format: format)
        ws.onHangupCommand = { [weak self] in self?.hangupWebSocketChannel(id) }
        let wsVars = [
            "MEDIA_WEBSOCKET_CONNECTION_ID": connectionID,
            "MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE": String(format.payloadBytes),
        ]
        let rec = ChannelRecord(
            id: id, kind: .external, order: order, name: name, state: "Down",
            callerName: "", callerNumber: "", context: "default", exten: "s", priority: 1,
            appName: "Stasis", appData: app, variables: extraVars.merging(wsVars) { $1 }, app: app, inStasis: false, bridgeID: nil,
            creationtime: SimTime.asteriskTimestamp(), args: [], call: nil, media: nil, wsMedia: ws)
        let ok: Bool = state.withLock { st in
            if st.channels[id] != nil { return false }
            st.channels[id] = rec
            st.mediaConnections[connectionID] = id
            return true
        }
        guard ok else { return .message(409, "Channel with given unique ID already exists") }
        return .json(200, channelJSON(rec, includeVars: wsVars))
    }

    /// Lock held: a channel that is gone closes its media socket and forgets its connection id.
    func releaseWebSocketMedia(_ st: inout CoreState, _ rec: ChannelRecord) {
        guard let ws = rec.wsMedia else { return }
        st.mediaConnections[ws.connectionID] = nil
        ws.close()
    }

    enum MediaUpgradeCheck {
        case accept(MediaWebSocketChannel)
        case notFound
        case conflict
        case badProtocol
    }

    /// Whether `GET /media/<connection id>` may become this channel's media socket (and claims it).
    func checkMediaUpgrade(connectionID: String, subprotocols: [String]?, authorization: String?) -> MediaUpgradeCheck {
        let ws: MediaWebSocketChannel? = state.withLock { st in
            st.mediaConnections[connectionID].flatMap { st.channels[$0]?.wsMedia }
        }
        guard let ws else { return .notFound }
        if let subprotocols, !subprotocols.contains("media") { return .badProtocol }
        return ws.claim(subprotocols: subprotocols ?? [], authorization: authorization) ? .accept(ws) : .conflict
    }

    /// The HTTP answer for a `/media/…` request that was not upgraded.
    func mediaNonUpgradeResponse(connectionID: String) -> SimRESTResponse {
        let ws: MediaWebSocketChannel? = state.withLock { st in
            st.mediaConnections[connectionID].flatMap { st.channels[$0]?.wsMedia }
        }
        guard let ws else { return .message(404, "WebSocket instance not found") }
        if ws.isConnectedOrClaimed { return .message(409, "Another websocket connection exists for this connection id") }
        return .message(400, "WebSocket upgrade with subprotocol 'media' required")
    }

    /// The media socket is open: the channel is answered and, a moment later, enters Stasis.
    func mediaSocketConnected(_ id: String) {
        state.withLock { st in
            if st.channels[id] != nil { st.channels[id]!.state = "Up" }  // auto-answer
        }
        let delayMs = Double.random(in: config.externalStasisDelayMs)
        Task {
            try? await Task.sleep(for: .microseconds(Int(delayMs * 1000)))
            self.externalEntersStasis(id)
        }
    }

    /// The application closed the media socket, or sent HANGUP: Asterisk hangs the channel up.
    func hangupWebSocketChannel(_ id: String) {
        state.withLock { st in
            guard let c = st.channels[id], c.kind == .external, c.wsMedia != nil else { return }
            emitChannel(&st, id, type: "ChannelHangupRequest", extra: [("cause", 16)])
            removeFromBridge(&st, id)
            if c.inStasis { emitChannel(&st, id, type: "StasisEnd") }
            emitChannel(&st, id, type: "ChannelDestroyed", extra: [("cause", 16), ("cause_txt", "Normal Clearing")])
            if let rec = st.channels.removeValue(forKey: id) { releaseWebSocketMedia(&st, rec) }
        }
    }

    /// Runs an accepted media socket to its end.
    func runMediaSocket(_ ws: MediaWebSocketChannel, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, eventLoop: any EventLoop) async {
        let id = ws.channelID
        await ws.run(
            inbound: inbound, outbound: outbound, eventLoop: eventLoop, channelUniqueID: id,
            onConnected: { self.mediaSocketConnected(id) },
            onClosedByApp: { self.hangupWebSocketChannel(id) })
    }

    func mediaSocket(ofChannel id: String) -> MediaWebSocketChannel? {
        state.withLock { $0.channels[id]?.wsMedia }
    }
}
