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

/// One call's RTP media leg: RTP from Asterisk to the AI, AI audio paced back to Asterisk.
///
/// Inbound runs on the shared RTP socket's event loop; AI audio arrives on the AI session's task;
/// the pacer runs on the RTP event loop. The only locks are this call's own.
public final class CallMedia: MediaLeg {
    let settings: RTPMediaSettings
    public let playout: PlayoutQueue
    private let toAI: AsyncStream<ByteBuffer>.Continuation
    private let onMarkReached: @Sendable (String) -> Void
    private let encoder: OutboundEncoder

    private let inPackets = Atomic<UInt64>(0)
    private let outPackets = Atomic<UInt64>(0)
    private let droppedPackets = Atomic<UInt64>(0)
    private let pacerStopped = Atomic<Bool>(false)
    private let pacerStarted = Atomic<Bool>(false)
    private let rtp: Mutex<RTPState>

    static let frameMs = 20

    struct RTPState {
        var sequence = UInt16.random(in: .min ... .max)
        var timestamp = UInt32.random(in: .min ... .max)
        let ssrc = UInt32.random(in: .min ... .max)
        /// Asterisk's end of this call's RTP (`UNICASTRTP_LOCAL_ADDRESS:PORT`), known once the
        /// external channel exists. AI audio queues up before that.
        var remote: SocketAddress?
    }

    public init(settings: RTPMediaSettings, aiSampleRate: Int,
                toAI: AsyncStream<ByteBuffer>.Continuation, onMarkReached: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.toAI = toAI
        self.onMarkReached = onMarkReached
        encoder = OutboundEncoder(payloadType: settings.outboundPayloadType)
        playout = PlayoutQueue(outputRate: encoder.sampleRate, frameMs: Self.frameMs,
                               maxBufferedMs: settings.maxBufferedAudioMs, aiSampleRate: aiSampleRate)
        rtp = Mutex(RTPState())
    }

    // MARK: Counters (read by status and stats from any thread)

    public var packetsIn: UInt64 { inPackets.load(ordering: .relaxed) }
    public var packetsOut: UInt64 { outPackets.load(ordering: .relaxed) }
    public var packetsDropped: UInt64 { droppedPackets.load(ordering: .relaxed) }
    public var isPacing: Bool { pacerStarted.load(ordering: .relaxed) && !pacerStopped.load(ordering: .relaxed) }

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

    public var remote: SocketAddress? { rtp.withLock { $0.remote } }

    func setRemote(_ remote: SocketAddress) {
        rtp.withLock { $0.remote = remote }
    }

    /// Starts sending one packet per 20 ms on the RTP socket's event loop, from a monotonic
    /// schedule (deadlines, not delays, so there is no drift). Sending never waits for inbound RTP.
    func startPacer(on channel: any Channel) {
        guard !pacerStarted.exchange(true, ordering: .relaxed) else { return }
        schedulePacerTick(channel: channel, start: NIODeadline.now(), tick: 1)
    }

    public func stopPacer() {
        pacerStopped.store(true, ordering: .relaxed)
    }

    private func schedulePacerTick(channel: any Channel, start: NIODeadline, tick: Int64) {
        let period = Int64(Self.frameMs) * 1_000_000
        channel.eventLoop.scheduleTask(deadline: start + .nanoseconds(period * tick)) { [self] in
            guard !pacerStopped.load(ordering: .relaxed) else { return }
            var next = tick + 1
            // After a stall (loop busy, machine suspended) skip the missed slots instead of
            // bursting: Asterisk has no jitter buffer and would play a burst as extra delay.
            let elapsed = (NIODeadline.now() - start).nanoseconds
            if elapsed > period * (tick + 2) {
                next = elapsed / period + 1
            }
            if next - 1 > tick {
                let skipped = UInt32(truncatingIfNeeded: Int(next - 1 - tick) * settings.timestampIncrement)
                rtp.withLock { $0.timestamp &+= skipped }
                playout.skipSlot()
            }
            sendNextPacket(channel: channel)
            schedulePacerTick(channel: channel, start: start, tick: next)
        }
    }

    private func sendNextPacket(channel: any Channel) {
        let (packet, marks) = playout.tick { frame, startsTalkspurt in
            rtp.withLock { rtp -> AddressedEnvelope<ByteBuffer>? in
                guard let remote = rtp.remote else { return nil }
                var buffer = channel.allocator.buffer(capacity: 12 + frame.count * 2)
                RTPPacket.writeHeader(payloadType: UInt8(settings.outboundPayloadType), marker: startsTalkspurt,
                                      sequence: rtp.sequence, timestamp: rtp.timestamp, ssrc: rtp.ssrc, into: &buffer)
                encoder.encode(frame, into: &buffer)
                rtp.sequence &+= 1
                return AddressedEnvelope(remoteAddress: remote, data: buffer)
            }
        }
        // The RTP clock advances every slot, sent or not, so a gap shows as a gap.
        rtp.withLock { $0.timestamp &+= UInt32(truncatingIfNeeded: settings.timestampIncrement) }
        for mark in marks { onMarkReached(mark) }
        guard let packet = packet ?? nil else { return }
        outPackets.wrappingAdd(1, ordering: .relaxed)
        channel.writeAndFlush(packet, promise: nil)
    }
}
