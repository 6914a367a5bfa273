import NIOCore
import Synchronization

/// How one call's audio is framed on the RTP side; fixed for the call's life.
public struct RTPMediaSettings: Sendable, Equatable {
    public var inboundFormat: InboundAudioFormat
    public var swap16: Bool
    public var outboundPayloadType: Int
    public var timestampIncrement: Int
    public var maxBufferedAudioMs: Int

    public init(inboundFormat: InboundAudioFormat, swap16: Bool, outboundPayloadType: Int, timestampIncrement: Int, maxBufferedAudioMs: Int) {
        self.inboundFormat = inboundFormat
        self.swap16 = swap16
        self.outboundPayloadType = outboundPayloadType
        self.timestampIncrement = timestampIncrement
        self.maxBufferedAudioMs = maxBufferedAudioMs
    }
}

/// One call's media leg: RTP from Asterisk to the AI, AI audio paced back to Asterisk.
///
/// Inbound runs on the shared RTP socket's event loop; AI audio arrives on the AI session's task;
/// the pacer runs on the RTP event loop. The only lock is this call's own playout lock.
public final class CallMedia: Sendable {
    let settings: RTPMediaSettings
    private let toAI: AsyncStream<ByteBuffer>.Continuation
    private let onMarkReached: @Sendable (String) -> Void

    private let inPackets = Atomic<UInt64>(0)
    private let outPackets = Atomic<UInt64>(0)
    private let droppedPackets = Atomic<UInt64>(0)
    private let pacerStopped = Atomic<Bool>(false)
    private let pacerStarted = Atomic<Bool>(false)
    private let outbound: Mutex<OutboundState>

    static let frameMs = 20
    /// A talkspurt starts once this many frames are queued (or after as many ticks of waiting):
    /// AI audio arrives with jitter and the resampler holds back a few samples, so starting on
    /// the first partial frame would pad nearly every packet with zeros.
    static let prebufferFrames = 2

    struct OutboundState: ~Copyable {
        var playout: PlayoutBuffer
        var resampler: Resampler
        var aiSampleRate: Int
        let encoder: OutboundEncoder
        var sequence: UInt16
        var timestamp: UInt32
        let ssrc: UInt32
        /// Silent packets still owed after a burst, so Asterisk lets go of its last ~10 ms now.
        var silentTail = 0
        /// The next packet starts a talkspurt (RTP marker bit).
        var startsTalkspurt = true
        /// Audio is being played; false while waiting for the prebuffer to fill.
        var talking = false
        var prebufferTicks = 0
        var frame: [Int16]
        /// Asterisk's end of this call's RTP (`UNICASTRTP_LOCAL_ADDRESS:PORT`), known once the
        /// external channel exists. AI audio queues up before that.
        var remote: SocketAddress?
        var decoded: [Int16] = []
        var resampled: [Int16] = []
    }

    public init(settings: RTPMediaSettings, aiSampleRate: Int,
                toAI: AsyncStream<ByteBuffer>.Continuation, onMarkReached: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.toAI = toAI
        self.onMarkReached = onMarkReached
        let encoder = OutboundEncoder(payloadType: settings.outboundPayloadType)
        let capacity = encoder.sampleRate * settings.maxBufferedAudioMs / 1000
        outbound = Mutex(OutboundState(
            playout: PlayoutBuffer(capacity: capacity),
            resampler: Resampler(from: aiSampleRate, to: encoder.sampleRate),
            aiSampleRate: aiSampleRate,
            encoder: encoder,
            sequence: UInt16.random(in: .min ... .max),
            timestamp: UInt32.random(in: .min ... .max),
            ssrc: UInt32.random(in: .min ... .max),
            frame: Array(repeating: 0, count: encoder.samplesPerPacket(ptimeMs: Self.frameMs))))
    }

    // MARK: Counters (read by status and stats from any thread)

    public var packetsIn: UInt64 { inPackets.load(ordering: .relaxed) }
    public var packetsOut: UInt64 { outPackets.load(ordering: .relaxed) }
    public var packetsDropped: UInt64 { droppedPackets.load(ordering: .relaxed) }
    public var playoutDepthMs: Int {
        outbound.withLock { $0.playout.depthSamples * 1000 / $0.encoder.sampleRate }
    }
    public var droppedPlayoutSamples: Int { outbound.withLock { $0.playout.droppedSamples } }

    // MARK: Asterisk → AI

    /// One RTP payload from Asterisk, already matched to this call. Runs on the RTP event loop.
    func receive(payload: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) {
        inPackets.wrappingAdd(1, ordering: .relaxed)
        var pcm = allocator.buffer(capacity: payload.count * 2)
        InboundDecoder.appendPCM16LE(payload: payload, format: settings.inboundFormat, swap16: settings.swap16, to: &pcm)
        if case .dropped = toAI.yield(pcm) {
            // The AI reads slower than real time: the oldest queued frame was dropped.
            droppedPackets.wrappingAdd(1, ordering: .relaxed)
        }
    }

    // MARK: AI → Asterisk

    /// Queues AI audio (PCM16LE at `sampleRate`) for playout. Called from the AI session's task.
    public func enqueueAIAudio(_ pcm: ByteBuffer, sampleRate: Int) {
        outbound.withLock { state in
            if sampleRate != state.aiSampleRate {
                state.aiSampleRate = sampleRate
                state.resampler = Resampler(from: sampleRate, to: state.encoder.sampleRate)
            }
            PCM16.appendLittleEndian(pcm.readableBytesView, to: &state.decoded)
            state.resampled.removeAll(keepingCapacity: true)
            state.decoded.withUnsafeBufferPointer { state.resampler.process($0, into: &state.resampled) }
            state.decoded.removeAll(keepingCapacity: true)
            state.resampled.withUnsafeBufferPointer { state.playout.append($0) }
        }
    }

    /// Marks reach the AI as `mark` once every sample queued before them has been played.
    public func addMark(_ name: String) {
        outbound.withLock { $0.playout.appendMark(name) }
    }

    /// Barge-in: drops queued audio; returns the marks that will now never be reached.
    public func clearPlayout() -> [String] {
        outbound.withLock { state in
            state.talking = false
            state.prebufferTicks = 0
            return state.playout.clear()
        }
    }

    /// True when nothing is queued or owed: the caller has heard everything the AI sent.
    public var playoutIdle: Bool {
        outbound.withLock { $0.playout.depthSamples == 0 && $0.silentTail == 0 }
    }

    public var remote: SocketAddress? { outbound.withLock { $0.remote } }

    func setRemote(_ remote: SocketAddress) {
        outbound.withLock { $0.remote = remote }
    }

    /// Starts sending one packet per 20 ms on the RTP socket's event loop, from a monotonic
    /// schedule (deadlines, not delays, so there is no drift). Sending never waits for inbound RTP.
    func startPacer(on channel: any Channel) {
        guard !pacerStarted.exchange(true, ordering: .relaxed) else { return }
        let start = NIODeadline.now()
        schedulePacerTick(channel: channel, start: start, tick: 1)
    }

    /// Whether queued audio is actually being played (the pacer runs and has not been stopped).
    public var isPacing: Bool { pacerStarted.load(ordering: .relaxed) && !pacerStopped.load(ordering: .relaxed) }

    func stopPacer() {
        pacerStopped.store(true, ordering: .relaxed)
    }

    private func schedulePacerTick(channel: any Channel, start: NIODeadline, tick: Int64) {
        let period = Int64(Self.frameMs) * 1_000_000
        channel.eventLoop.scheduleTask(deadline: start + .nanoseconds(period * tick)) { [self] in
            guard !pacerStopped.load(ordering: .relaxed) else { return }
            var next = tick + 1
            // After a stall (loop busy, machine suspended) skip the missed slots instead of
            // bursting: Asterisk has no jitter buffer and would play a burst as extra delay.
            let now = NIODeadline.now()
            let elapsed = (now - start).nanoseconds
            if elapsed > period * (tick + 2) {
                next = elapsed / period + 1
            }
            for _ in tick..<(next - 1) { skipSlot() }
            sendNextPacket(channel: channel)
            schedulePacerTick(channel: channel, start: start, tick: next)
        }
    }

    private func skipSlot() {
        outbound.withLock { state in
            state.timestamp &+= UInt32(truncatingIfNeeded: settings.timestampIncrement)
            state.startsTalkspurt = true
        }
    }

    private func sendNextPacket(channel: any Channel) {
        var marks: [String] = []
        let packet: AddressedEnvelope<ByteBuffer>? = outbound.withLock { state in
            guard let remote = state.remote else { return nil }
            defer { state.timestamp &+= UInt32(truncatingIfNeeded: settings.timestampIncrement) }
            let count = state.frame.count
            if !state.talking && state.playout.depthSamples > 0 {
                state.prebufferTicks += 1
                if state.playout.depthSamples >= count * Self.prebufferFrames || state.prebufferTicks > Self.prebufferFrames {
                    state.talking = true
                    state.prebufferTicks = 0
                }
            }
            let hadAudio = state.talking && state.frame.withUnsafeMutableBufferPointer { state.playout.popFrame(count: count, into: $0) }
            if state.playout.hasPendingMarks { marks = state.playout.takeReachedMarks() }
            if hadAudio {
                state.silentTail = 2
            } else if state.silentTail > 0 {
                state.talking = false
                state.silentTail -= 1
                state.frame.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            } else {
                state.talking = false
                state.startsTalkspurt = true
                return nil
            }
            var buffer = channel.allocator.buffer(capacity: 12 + count * 2)
            RTPPacket.writeHeader(payloadType: UInt8(settings.outboundPayloadType), marker: state.startsTalkspurt,
                                  sequence: state.sequence, timestamp: state.timestamp, ssrc: state.ssrc, into: &buffer)
            state.frame.withUnsafeBufferPointer { state.encoder.encode($0, into: &buffer) }
            state.sequence &+= 1
            state.startsTalkspurt = false
            return AddressedEnvelope(remoteAddress: remote, data: buffer)
        }
        for mark in marks { onMarkReached(mark) }
        guard let packet else { return }
        outPackets.wrappingAdd(1, ordering: .relaxed)
        channel.writeAndFlush(packet, promise: nil)
    }
}
