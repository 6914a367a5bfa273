import FoundationEssentials
import NIOCore
import Synchronization

/// A simulated caller: its channel in the fake Asterisk, what it sends and what it hears.
public final class SimCall: Sendable {
    /// Caller channel id (e.g. "1795747148.67").
    public let id: String
    /// Caller channel name (e.g. "Local/100@foneai-in-0000001a;2").
    public let name: String
    public let spec: SimCallSpec
    /// CLOCK_MONOTONIC nanoseconds when the call was placed.
    public let placedAtNanos: UInt64

    struct State {
        var outcome: SimCallOutcome?
        var finalVariables: [String: String]?
        var endedAtNanos: UInt64?
        var waiters: [Int: CheckedContinuation<SimCallOutcome?, Never>] = [:]
        var nextWaiter = 0
        var heard: [Int16] = []
        var heardPackets: [SimHeardPacket] = []
        /// Played to the caller from a WebSocket media channel, at `heardWebSocketRate`.
        var heardWebSocket: [Int16] = []
        var heardWebSocketRate: Int?
        var heardWebSocketFrames = 0
        var mediaSocket: MediaWebSocketChannel?
        var packetsSent = 0
        /// CLOCK_MONOTONIC ns when each packet to the bridge was sent, in order (load benchmark).
        var sentNanos: [UInt64] = []
        var strictRTPDropped = 0
        var firstSentNanos: UInt64?
        var lastSentNanos: UInt64?
        var mediaStartedAtNanos: UInt64?
        var externalChannelID: String?
        var bridgeID: String?
    }

    private let state = Mutex(State())
    // Set once by the simulator right after creation.
    private let coreRef: Mutex<AsteriskCore?> = Mutex(nil)

    init(id: String, name: String, spec: SimCallSpec) {
        self.id = id
        self.name = name
        self.spec = spec
        self.placedAtNanos = simMonotonicNanos()
    }

    func attach(core: AsteriskCore) { coreRef.withLock { $0 = core } }
    private var core: AsteriskCore? { coreRef.withLock { $0 } }

    // MARK: public API

    /// The outcome so far (nil while the call is still in Stasis).
    public var outcome: SimCallOutcome? { state.withLock { $0.outcome } }

    /// Waits until the call has left Stasis; nil on timeout.
    public func waitForEnd(timeout: Duration) async -> SimCallOutcome? {
        if let o = outcome { return o }
        let key: Int = state.withLock { st in
            st.nextWaiter += 1
            return st.nextWaiter
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.resumeWaiter(key, with: nil)
        }
        let result: SimCallOutcome? = await withCheckedContinuation { cont in
            let done: SimCallOutcome?? = state.withLock { st in
                if let o = st.outcome { return .some(o) }
                st.waiters[key] = cont
                return .none
            }
            if let done { cont.resume(returning: done) }
        }
        timer.cancel()
        return result
    }

    private func resumeWaiter(_ key: Int, with value: SimCallOutcome?) {
        let cont = state.withLock { $0.waiters.removeValue(forKey: key) }
        cont?.resume(returning: value)
    }

    /// The caller channel's variables: live while in Stasis, frozen when it left
    /// (sessionId, FONEAI_STATUS, transferContext, STASISSTATUS …).
    public func variables() async -> [String: String] {
        if let v = state.withLock({ $0.finalVariables }) { return v }
        return core?.channelVariables(id) ?? state.withLock { $0.finalVariables ?? [:] }
    }

    /// Everything the caller heard over RTP (UnicastRTP), decoded to 8 kHz samples, in arrival order.
    public func heardAudio() async -> [Int16] { state.withLock { $0.heard } }

    /// Everything the caller heard from a WebSocket media channel (`transport=websocket`), one
    /// 20 ms frame per tick as Asterisk played it out, at the channel's rate (16 kHz for slin16).
    /// Empty when the call's media went over RTP.
    public func heardAudio16k() async -> [Int16] { state.withLock { $0.heardWebSocket } }

    /// What the caller heard, with its sample rate: the WebSocket media channel's audio when the
    /// call was bridged to one (16 kHz for slin16), else the RTP audio at 8 kHz.
    public func heard() async -> SimHeardAudio {
        state.withLock { st in
            if let rate = st.heardWebSocketRate {
                return SimHeardAudio(samples: st.heardWebSocket, sampleRate: rate, transport: .websocket)
            }
            return SimHeardAudio(samples: st.heard, sampleRate: 8000, transport: .rtp)
        }
    }

    /// Frames played to the caller from a WebSocket media channel.
    public var webSocketFramesHeard: Int { state.withLock { $0.heardWebSocketFrames } }

    /// The WebSocket media channel this caller was (last) bridged with: what it received, played,
    /// sent (MEDIA_XOFF/XON…) and which commands (FLUSH_MEDIA…) it got. Kept after the call ended.
    public var mediaWebSocketStats: SimMediaWebSocketStats? {
        get async { state.withLock { $0.mediaSocket }?.stats }
    }

    /// Test hook: the WebSocket media channel bridged with this caller sends `MEDIA_XOFF` now and
    /// `MEDIA_XON` only once `duration` has passed. False when the call has no such channel.
    @discardableResult
    public func forceMediaXOFF(for duration: Duration) async -> Bool {
        guard let ws = state.withLock({ $0.mediaSocket }) else { return false }
        ws.forceXOFF(for: duration)
        return true
    }

    /// The RTP packets the caller received (after strict-RTP and payload-type filtering).
    public func heardPackets() async -> [SimHeardPacket] { state.withLock { $0.heardPackets } }

    /// Number of packets the caller heard.
    public var rtpPacketsHeard: Int { state.withLock { $0.heardPackets.count } }

    /// Arrival times (CLOCK_MONOTONIC ns) of the packets the caller heard.
    public func heardArrivalNanos() async -> [UInt64] { state.withLock { $0.heardPackets.map(\.arrivalNanos) } }

    /// Packets to this caller's external channel dropped by strict RTP (unlearned source).
    public var strictRTPDropped: Int { state.withLock { $0.strictRTPDropped } }

    /// CLOCK_MONOTONIC ns when each RTP packet was sent to the bridge, in sending order (packets
    /// sent in one tick share a time). Element `n` is the call's packet number `n`.
    public func sentPacketNanos() async -> [UInt64] { state.withLock { $0.sentNanos } }

    /// Number of RTP packets sent from this call's audio to the bridge.
    public var rtpPacketsSent: Int { state.withLock { $0.packetsSent } }

    /// CLOCK_MONOTONIC ns of the first/last RTP packet sent to the bridge.
    public var firstSentNanos: UInt64? { state.withLock { $0.firstSentNanos } }
    public var lastSentNanos: UInt64? { state.withLock { $0.lastSentNanos } }
    /// When the caller and an external media channel were first bridged together.
    public var mediaStartedAtNanos: UInt64? { state.withLock { $0.mediaStartedAtNanos } }
    /// When the call left Stasis.
    public var endedAtNanos: UInt64? { state.withLock { $0.endedAtNanos } }
    /// The external media channel / bridge this caller was bridged with (last seen).
    public var externalChannelID: String? { state.withLock { $0.externalChannelID } }
    public var bridgeID: String? { state.withLock { $0.bridgeID } }

    /// The caller hangs up now (ChannelHangupRequest cause 16, ChannelLeftBridge, StasisEnd).
    public func hangup() async {
        core?.callerHangup(id)
    }

    /// The caller presses a key: ChannelDtmfReceived.
    public func sendDTMF(_ digit: Character, durationMs: Int = 120) async {
        core?.dtmf(id, digit: String(digit), durationMs: durationMs)
    }

    // MARK: internal

    func timeline(for format: SimRTPFormat) -> AudioTimeline { AudioTimeline(spec.audio, format: format) }

    func noteSent(count: Int, at now: UInt64) {
        state.withLock { st in
            st.packetsSent += count
            for _ in 0..<count { st.sentNanos.append(now) }
            if st.firstSentNanos == nil { st.firstSentNanos = now }
            st.lastSentNanos = now
        }
    }

    func noteMediaStarted(externalChannelID: String, bridgeID: String) {
        let now = simMonotonicNanos()
        state.withLock { st in
            if st.mediaStartedAtNanos == nil { st.mediaStartedAtNanos = now }
            st.externalChannelID = externalChannelID
            st.bridgeID = bridgeID
        }
    }

    func noteMediaSocket(_ ws: MediaWebSocketChannel) {
        state.withLock { st in
            st.mediaSocket = ws
            st.heardWebSocketRate = ws.format.sampleRate
        }
    }

    func recordHeardWebSocket(samples: [Int16], sampleRate: Int) {
        state.withLock { st in
            st.heardWebSocket.append(contentsOf: samples)
            st.heardWebSocketRate = sampleRate
            st.heardWebSocketFrames += 1
        }
    }

    func noteStrictRTPDrop() {
        state.withLock { $0.strictRTPDropped += 1 }
    }

    /// Makes room for `seconds` of recording up front (load benchmark): growing large arrays
    /// mid-call copies megabytes and stalls the event loop that records, which the measurements
    /// would then blame on the bridge.
    public func reserveRecording(seconds: Double) {
        let packets = Int(seconds * 50) + 50
        state.withLock { st in
            st.heard.reserveCapacity(packets * 160)
            st.heardPackets.reserveCapacity(packets)
            st.sentNanos.reserveCapacity(packets)
        }
    }

    /// Decodes an RTP payload straight onto the end of the recording: no array per packet on the
    /// simulator's one loop.
    func recordHeard(payload: ByteBuffer, codec: HeardCodec, packet: SimHeardPacket) {
        state.withLock { st in
            payload.withUnsafeReadableBytes { bytes in
                switch codec {
                case .slin16BigEndian:
                    for i in stride(from: 0, to: bytes.count &- 1, by: 2) {
                        st.heard.append(Int16(bitPattern: UInt16(bytes[i]) << 8 | UInt16(bytes[i &+ 1])))
                    }
                case .ulaw: for byte in bytes { st.heard.append(G711.ulawDecode(byte)) }
                case .alaw: for byte in bytes { st.heard.append(G711.alawDecode(byte)) }
                }
            }
            st.heardPackets.append(packet)
        }
    }

    /// Marks the end; returns false when it had already ended.
    @discardableResult
    func finish(_ outcome: SimCallOutcome, variables: [String: String]) -> Bool {
        let waiters: [CheckedContinuation<SimCallOutcome?, Never>]? = state.withLock { st in
            guard st.outcome == nil else { return nil }
            st.outcome = outcome
            st.finalVariables = variables
            st.endedAtNanos = simMonotonicNanos()
            let w = Array(st.waiters.values)
            st.waiters = [:]
            return w
        }
        guard let waiters else { return false }
        for w in waiters { w.resume(returning: outcome) }
        return true
    }
}
