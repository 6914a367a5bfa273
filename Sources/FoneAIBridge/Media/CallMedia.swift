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
/// Everything runs on the shared RTP socket's event loop: inbound RTP, the AI's socket (so caller
/// audio goes to the AI and AI audio into the playout queue without a thread hop), and the socket's
/// `RTPPacer`, which sends the playout. The only locks are this call's own.
public final class CallMedia: MediaLeg {
    let settings: RTPMediaSettings
    public let playout: PlayoutQueue
    private let toAI: AIOutbound
    private let onMarkReached: @Sendable (String) -> Void
    private let encoder: OutboundEncoder

    private let inPackets = Atomic<UInt64>(0)
    private let outPackets = Atomic<UInt64>(0)
    private let pacerStopped = Atomic<Bool>(false)
    /// When AI audio last arrived (`RTPPacer.now()`), for the pacer to see audio that bunched up.
    private let lastAudioTick = Atomic<Int64>(0)
    private let rtp: Mutex<RTPState>
    /// Where to wake the pacer when the playout queue un-parks; nil until playout starts.
    private let pacer = Mutex<(loop: any EventLoop, pacer: NIOLoopBound<RTPPacer>)?>(nil)

    struct RTPState {
        var sequence = UInt16.random(in: .min ... .max)
        var timestamp = UInt32.random(in: .min ... .max)
        let ssrc = UInt32.random(in: .min ... .max)
        /// Asterisk's end of this call's RTP (`UNICASTRTP_LOCAL_ADDRESS:PORT`), known once the
        /// external channel exists. AI audio queues up before that.
        var remote: SocketAddress?
    }

    public init(settings: RTPMediaSettings, aiSampleRate: Int,
                toAI: AIOutbound, onMarkReached: @escaping @Sendable (String) -> Void) {
        self.settings = settings
        self.toAI = toAI
        self.onMarkReached = onMarkReached
        encoder = OutboundEncoder(payloadType: settings.outboundPayloadType)
        playout = PlayoutQueue(outputRate: encoder.sampleRate, frameMs: Int(RTPPacer.frameMs),
                               maxBufferedMs: settings.maxBufferedAudioMs, aiSampleRate: aiSampleRate)
        rtp = Mutex(RTPState())
    }

    // MARK: Counters (read by status and stats from any thread)

    public var packetsIn: UInt64 { inPackets.load(ordering: .relaxed) }
    public var packetsOut: UInt64 { outPackets.load(ordering: .relaxed) }
    public var packetsDropped: UInt64 { toAI.audioFramesDropped }
    public var isPacing: Bool { pacer.withLock { $0 != nil } && !isStopped }
    var isStopped: Bool { pacerStopped.load(ordering: .relaxed) }

    // MARK: Asterisk → AI

    /// One RTP payload from Asterisk, already matched to this call. Runs on the RTP event loop.
    /// The PCM is decoded into `scratch`, which the socket reuses for every packet: the AI's
    /// frame is built from it before this returns, so it is normally free again for the next one
    /// (audio that must wait for the AI's socket keeps its copy, and `clear` then allocates anew).
    func receive(payload: UnsafeRawBufferPointer, scratch: inout ByteBuffer) {
        inPackets.wrappingAdd(1, ordering: .relaxed)
        scratch.clear(minimumCapacity: payload.count * 2)
        InboundDecoder.appendPCM16LE(payload: payload, format: settings.inboundFormat, swap16: settings.swap16, to: &scratch)
        toAI.sendAudio(scratch)
    }

    // MARK: AI → Asterisk

    public var remote: SocketAddress? { rtp.withLock { $0.remote } }
    var lastAudioArrival: Int64 { lastAudioTick.load(ordering: .relaxed) }

    func setRemote(_ remote: SocketAddress) {
        rtp.withLock { $0.remote = remote }
    }

    public func enqueueAudio(_ pcm: ByteBuffer, sampleRate: Int) {
        lastAudioTick.store(RTPPacer.now(), ordering: .relaxed)
        notifyPacer(wasParked: playout.enqueue(pcm, sampleRate: sampleRate), audioArrived: true)
    }

    public func addMark(_ name: String) {
        notifyPacer(wasParked: playout.addMark(name), audioArrived: false)
    }

    /// Wakes the pacer for a queue that was parked; on the pacer's own loop, new audio may also
    /// play at once in a slot that waits for it.
    private func notifyPacer(wasParked: Bool, audioArrived: Bool) {
        guard wasParked || audioArrived else { return }
        // Before playout starts there is no pacer yet; starting it plays what is queued.
        guard let (loop, pacer) = pacer.withLock({ $0 }) else { return }
        if !loop.inEventLoop {
            if wasParked { loop.execute { pacer.value.wake(self) } }
        } else if wasParked {
            pacer.value.wake(self)
        } else {
            pacer.value.audioArrived(self)
        }
    }

    /// Hands the call to the socket's pacer (on its event loop).
    func startPlayout(loop: any EventLoop, pacer: NIOLoopBound<RTPPacer>) {
        self.pacer.withLock { $0 = (loop, pacer) }
        loop.execute { pacer.value.start(self) }
    }

    public func stopPacer() {
        pacerStopped.store(true, ordering: .relaxed)
    }

    /// Slots that passed without a packet (the loop stalled, or the queue was parked): the RTP
    /// clock still advances, so the gap shows as a gap, and the next packet starts a talkspurt.
    func skipSlots(_ slots: Int) {
        guard slots > 0 else { return }
        rtp.withLock { $0.timestamp &+= UInt32(truncatingIfNeeded: slots * settings.timestampIncrement) }
        playout.skipSlots(slots)
    }

    /// One slot on the pacer's grid: writes this call's packet (not flushed) into `packet`,
    /// reusing its storage, and on to `output`. Runs on the RTP event loop.
    func playSlot(late: Bool, into packet: inout ByteBuffer, output: ChannelHandlerContext) -> PlayoutQueue.Take<Bool> {
        let (taken, marks) = playout.take(late: late) { frame, startsTalkspurt -> Bool in
            rtp.withLock { rtp -> Bool in
                // The RTP clock advances every slot, sent or not.
                defer { rtp.timestamp &+= UInt32(truncatingIfNeeded: settings.timestampIncrement) }
                guard let remote = rtp.remote else { return false }
                packet.clear()
                RTPPacket.writeHeader(payloadType: UInt8(settings.outboundPayloadType), marker: startsTalkspurt,
                                      sequence: rtp.sequence, timestamp: rtp.timestamp, ssrc: rtp.ssrc, into: &packet)
                encoder.encode(frame, into: &packet)
                rtp.sequence &+= 1
                // Wrapped here, where the type is known: `Channel.write` wraps generically, at a
                // cost of about 3,000 instructions a packet in dynamic casts and metadata lookups.
                output.write(NIOAny(AddressedEnvelope(remoteAddress: remote, data: packet)), promise: nil)
                return true
            }
        }
        for mark in marks { onMarkReached(mark) }
        if case .sent(true, _, _) = taken { outPackets.wrappingAdd(1, ordering: .relaxed) }
        return taken
    }
}
