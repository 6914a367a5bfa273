import CSimSocket
import NIOCore
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class SimCounterBox: Sendable {
    let rtpPacketsSent = Atomic<Int>(0)
    let rtpPacketsReceived = Atomic<Int>(0)
    let droppedDynamicPayloadPackets = Atomic<Int>(0)
    let droppedStrictRTPPackets = Atomic<Int>(0)
    let droppedUnsupportedPayloadPackets = Atomic<Int>(0)
    let malformedRTPPackets = Atomic<Int>(0)
    let packetsWithNoListener = Atomic<Int>(0)
    /// Received after their channel was gone (while its socket lingers, see `ExternalMedia.close`).
    let packetsAfterClose = Atomic<Int>(0)
    let restRequests = Atomic<Int>(0)
    let unauthorizedRequests = Atomic<Int>(0)
    let unknownRequests = Atomic<Int>(0)
    let eventsSent = Atomic<Int>(0)
    let eventSocketsAccepted = Atomic<Int>(0)
    let rtpLateSends = Atomic<Int>(0)
    /// Packets the kernel refused to send (`sendto` failed): never reached the bridge.
    let rtpSendErrors = Atomic<Int>(0)
    let strictDropSources = Mutex<[String]>([])

    func noteStrictDrop(_ text: String) {
        strictDropSources.withLock { list in
            if list.count < 50 { list.append(text) }
        }
    }

    func snapshot() -> SimCounters {
        var c = SimCounters()
        c.rtpPacketsSent = rtpPacketsSent.load(ordering: .relaxed)
        c.rtpPacketsReceived = rtpPacketsReceived.load(ordering: .relaxed)
        c.droppedDynamicPayloadPackets = droppedDynamicPayloadPackets.load(ordering: .relaxed)
        c.droppedStrictRTPPackets = droppedStrictRTPPackets.load(ordering: .relaxed)
        c.droppedUnsupportedPayloadPackets = droppedUnsupportedPayloadPackets.load(ordering: .relaxed)
        c.malformedRTPPackets = malformedRTPPackets.load(ordering: .relaxed)
        c.packetsWithNoListener = packetsWithNoListener.load(ordering: .relaxed)
        c.packetsAfterClose = packetsAfterClose.load(ordering: .relaxed)
        c.restRequests = restRequests.load(ordering: .relaxed)
        c.unauthorizedRequests = unauthorizedRequests.load(ordering: .relaxed)
        c.unknownRequests = unknownRequests.load(ordering: .relaxed)
        c.eventsSent = eventsSent.load(ordering: .relaxed)
        c.eventSocketsAccepted = eventSocketsAccepted.load(ordering: .relaxed)
        c.rtpLateSends = rtpLateSends.load(ordering: .relaxed)
        c.rtpSendErrors = rtpSendErrors.load(ordering: .relaxed)
        return c
    }
}

extension Atomic where Value == Int {
    @inline(__always) func increment() { _ = wrappingAdd(1, ordering: .relaxed) }
}

/// RTP header fields.
struct RTPHeader {
    var marker: Bool
    var payloadType: UInt8
    var sequenceNumber: UInt16
    var timestamp: UInt32
    var ssrc: UInt32

    /// Parses an RTP packet; returns the header and the payload bytes, or nil when malformed.
    static func parse(_ buffer: ByteBuffer) -> (RTPHeader, ByteBuffer)? {
        var buf = buffer
        guard buf.readableBytes >= 12,
            let b0 = buf.readInteger(as: UInt8.self),
            let b1 = buf.readInteger(as: UInt8.self),
            let seq = buf.readInteger(endianness: .big, as: UInt16.self),
            let ts = buf.readInteger(endianness: .big, as: UInt32.self),
            let ssrc = buf.readInteger(endianness: .big, as: UInt32.self)
        else { return nil }
        guard b0 >> 6 == 2 else { return nil }
        let cc = Int(b0 & 0x0F)
        guard buf.readableBytes >= cc * 4 else { return nil }
        buf.moveReaderIndex(forwardBy: cc * 4)
        if b0 & 0x10 != 0 {
            guard buf.readableBytes >= 4 else { return nil }
            _ = buf.readInteger(as: UInt16.self)
            let words = Int(buf.readInteger(endianness: .big, as: UInt16.self)!)
            guard buf.readableBytes >= words * 4 else { return nil }
            buf.moveReaderIndex(forwardBy: words * 4)
        }
        if b0 & 0x20 != 0 {
            guard buf.readableBytes >= 1,
                let padLen = buf.getInteger(at: buf.writerIndex - 1, as: UInt8.self),
                Int(padLen) <= buf.readableBytes, padLen > 0
            else { return nil }
            buf.moveWriterIndex(to: buf.writerIndex - Int(padLen))
        }
        return (RTPHeader(marker: b1 & 0x80 != 0, payloadType: b1 & 0x7F, sequenceNumber: seq, timestamp: ts, ssrc: ssrc), buf)
    }
}

/// The static payload types a simulated caller can hear, as Asterisk's externalMedia sends them.
enum HeardCodec {
    /// Payload types 10 and 11: 16-bit linear, big-endian.
    case slin16BigEndian
    case ulaw
    case alaw

    init?(payloadType: UInt8) {
        switch payloadType {
        case 10, 11: self = .slin16BigEndian
        case 0: self = .ulaw
        case 8: self = .alaw
        default: return nil
        }
    }
}

/// The RTP side of one UnicastRTP (externalMedia) channel: its own UDP socket, the stream it sends
/// to `external_host` while bridged with a caller, and what it receives back.
final class ExternalMedia: Sendable {
    let channelID: String
    let remote: SocketAddress
    let format: SimRTPFormat
    let counters: SimCounterBox
    let learnPackets: Int
    /// The socket's descriptor (owned by its NIO channel), for `arrivalNanos()`.
    let descriptor: CInt

    struct State {
        var channel: (any Channel)?
        var listener: SimCall?
        var generation = 0
        var closed = false
        var ssrc: UInt32 = .random(in: 1...UInt32.max)
        var seq: UInt16 = .random(in: 0...UInt16.max)
        var learnedSource: SocketAddress?
        var candidate: SocketAddress?
        var candidateCount = 0
    }

    let state: Mutex<State>

    init(channelID: String, remote: SocketAddress, format: SimRTPFormat, counters: SimCounterBox, learnPackets: Int, descriptor: CInt) {
        self.descriptor = descriptor
        self.channelID = channelID
        self.remote = remote
        self.format = format
        self.counters = counters
        self.learnPackets = learnPackets
        var st = State()
        st.learnedSource = remote
        self.state = Mutex(st)
    }

    /// Binds the UDP socket for this channel on `host` (ephemeral port).
    static func bind(
        channelID: String, host: String, remote: SocketAddress, format: SimRTPFormat,
        counters: SimCounterBox, learnPackets: Int, group: any EventLoopGroup
    ) async throws -> (ExternalMedia, Int) {
        // The socket is made here, not by NIO, so its descriptor can be asked for each packet's
        // kernel receive time. No SO_REUSEADDR: with it Linux may give two port-0 UDP sockets the
        // same port, and two calls' RTP would mix before reaching the bridge.
        let address = try SocketAddress(ipAddress: host, port: 0)
        let fd = address.withSockAddr { sim_socket_udp_bound($0, socklen_t($1)) }
        guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "bind \(host):0") }
        let media = ExternalMedia(channelID: channelID, remote: remote, format: format, counters: counters,
                                  learnPackets: learnPackets, descriptor: fd)
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 256 * 1024)
            .channelOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048))
            // One read per wake-up: a channel gets a packet every 20 ms, so a second read would
            // almost always just answer EAGAIN, a wasted syscall per packet (a third of the
            // simulator's reads at 400 calls). Epoll is level-triggered, so a packet left queued
            // is read on the next loop turn.
            .channelOption(ChannelOptions.maxMessagesPerRead, value: 1)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(RTPInboundHandler(media: media))
                }
            }
            .withBoundSocket(fd).get()
        media.state.withLock { $0.channel = channel }
        return (media, channel.localAddress?.port ?? 0)
    }

    var localPort: Int { state.withLock { $0.channel?.localAddress?.port ?? 0 } }

    /// The caller that hears what arrives on this socket (nil: nobody, packets are discarded).
    func setListener(_ call: SimCall?) {
        state.withLock { $0.listener = call }
    }

    /// Starts sending `call`'s audio to `external_host` (from now on, 20 ms packets, real time).
    func startSending(for call: SimCall) {
        let (gen, channel): (Int, (any Channel)?) = state.withLock { st in
            st.generation += 1
            return (st.generation, st.closed ? nil : st.channel)
        }
        guard let channel else { return }
        let timeline = call.timeline(for: format)
        let el = channel.eventLoop
        el.execute {
            let stream = RTPStream(media: self, generation: gen, start: NIODeadline.now(), timeline: timeline, call: call)
            RTPTicker.forLoop(el).add(stream)
        }
    }

    /// Current SSRC and sequence number when `generation` is still current.
    func streamHeader(generation: Int) -> (UInt32, UInt16)? {
        state.withLock { st in (st.generation == generation && !st.closed) ? (st.ssrc, st.seq) : nil }
    }

    func storeSequence(_ seq: UInt16, generation: Int) {
        state.withLock { st in
            if st.generation == generation { st.seq = seq }
        }
    }

    func stopSending() {
        state.withLock { $0.generation += 1 }
    }

    /// The channel is gone: nothing more is sent or recorded. The socket itself stays open a
    /// little longer, so packets the bridge sent before it learnt of the hangup are still counted
    /// as received (`rtpPacketsReceived`) rather than refused by the kernel.
    func close() {
        let ch: (any Channel)? = state.withLock { st in
            st.closed = true
            st.generation += 1
            st.listener = nil
            return st.channel
        }
        guard let ch else { return }
        ch.eventLoop.scheduleTask(in: Self.lingerAfterClose) { ch.close(promise: nil) }
    }

    static let lingerAfterClose = TimeAmount.milliseconds(500)

    /// What becomes of a datagram that arrives on this channel's socket.
    private enum Admission {
        /// The channel is gone (its socket lingers, see `close`).
        case afterClose
        /// From a source strict RTP has not learned (yet).
        case strictDrop(SimCall?)
        case accepted(SimCall?)
    }

    /// When the kernel queued the datagram just read on this socket, on the monotonic clock: what
    /// Asterisk would see, however long this process took to get to it; and how long ago that was
    /// (nil when the kernel gave no time and the arrival is now).
    private func arrivalNanos() -> (arrival: UInt64, readDelay: UInt32?) {
        var realtime: Int64 = 0
        let now = simMonotonicNanos()
        guard sim_socket_last_receive_time(descriptor, &realtime) == 0, realtime > SimClock.realtimeMinusMonotonic else {
            return (now, nil)
        }
        let arrival = UInt64(realtime - SimClock.realtimeMinusMonotonic)
        return (arrival, UInt32(clamping: now > arrival ? now - arrival : 0))
    }

    /// Handles one datagram received on this channel's socket (event loop thread).
    func receive(from source: SocketAddress, buffer: ByteBuffer) {
        let (arrival, readDelay) = arrivalNanos()
        counters.rtpPacketsReceived.increment()
        guard let (header, payload) = RTPHeader.parse(buffer) else {
            counters.malformedRTPPackets.increment()
            return
        }
        // Strict RTP: a new source is learned only after `learnPackets` dropped packets.
        let admission: Admission = state.withLock { st in
            if st.closed { return .afterClose }
            if let learned = st.learnedSource, learned == source { return .accepted(st.listener) }
            if st.candidate == source {
                st.candidateCount += 1
            } else {
                st.candidate = source
                st.candidateCount = 1
            }
            if st.candidateCount > learnPackets {
                st.learnedSource = source
                st.candidate = nil
                st.candidateCount = 0
                return .accepted(st.listener)
            }
            return .strictDrop(st.listener)
        }
        let listener: SimCall?
        switch admission {
        case .afterClose:
            counters.packetsAfterClose.increment()
            return
        case .strictDrop(let call):
            counters.droppedStrictRTPPackets.increment()
            counters.noteStrictDrop("\(source) -> \(channelID) (expected \(remote))")
            call?.noteStrictRTPDrop()
            return
        case .accepted(let call):
            listener = call
        }
        let pt = header.payloadType
        if pt >= 35 {
            counters.droppedDynamicPayloadPackets.increment()
            return
        }
        guard let codec = HeardCodec(payloadType: pt) else {
            counters.droppedUnsupportedPayloadPackets.increment()
            return
        }
        guard let listener else {
            counters.packetsWithNoListener.increment()
            return
        }
        listener.recordHeard(
            payload: payload, codec: codec,
            packet: SimHeardPacket(
                arrivalNanos: arrival, sequenceNumber: header.sequenceNumber, timestamp: header.timestamp,
                ssrc: header.ssrc, payloadType: pt, payloadBytes: payload.readableBytes, marker: header.marker,
                readDelayNanos: readDelay))
    }
}

final class RTPInboundHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let media: ExternalMedia

    init(media: ExternalMedia) { self.media = media }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let env = Self.unwrapInboundIn(data)
        media.receive(from: env.remoteAddress, buffer: env.data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable etc.: ignore, keep the socket open (like Asterisk).
    }
}

/// One caller's audio stream towards `external_host`. Used only on its channel's event loop.
final class RTPStream {
    let media: ExternalMedia
    let generation: Int
    let start: NIODeadline
    let timeline: AudioTimeline
    let call: SimCall
    /// Index of the next packet (20 ms slots since `start`).
    var n = 0
    /// The packet being sent, reused.
    private var packet: [UInt8] = []
    static let period = TimeAmount.milliseconds(20)

    init(media: ExternalMedia, generation: Int, start: NIODeadline, timeline: AudioTimeline, call: SimCall) {
        self.media = media
        self.generation = generation
        self.start = start
        self.timeline = timeline
        self.call = call
    }

    var nextDeadline: NIODeadline { start + Self.period * Int64(n) }

    /// Sends every packet due up to `horizon`; false when the stream is over.
    func sendDue(now: NIODeadline, horizon: NIODeadline) -> Bool {
        guard let (ssrc, firstSeq) = media.streamHeader(generation: generation) else { return false }
        let format = media.format
        let spp = format.samplesPerPacket
        var seq = firstSeq
        var wrote = 0
        var ended = false
        if now - nextDeadline > .milliseconds(40) {
            media.counters.rtpLateSends.increment()  // never skip audio: send what is due at once
        }
        // Read the clock before the kernel has the packets: were this thread preempted after the
        // send, a later reading could put an answer before its question.
        let sentAt = simMonotonicNanos()
        while nextDeadline <= horizon {
            switch timeline.packet(n) {
            case .ended:
                ended = true
            case .silent:
                break
            case .payload(let payload):
                send(payloadType: format.payloadType & 0x7F, sequence: seq, timestamp: UInt32(truncatingIfNeeded: (n + 1) * spp),
                     ssrc: ssrc, payload: payload)
                seq &+= 1
                wrote += 1
            }
            if ended { break }
            n += 1
        }
        if wrote > 0 {
            media.counters.rtpPacketsSent.wrappingAdd(wrote, ordering: .relaxed)
            call.noteSent(count: wrote, at: sentAt)
            media.storeSequence(seq, generation: generation)
        }
        return !ended
    }

    /// One packet, straight to the socket with `sendto`: NIO's write and flush per packet (one
    /// socket per call, so nothing to batch) cost the simulator more than the system call, and at
    /// 500 calls it ran out of CPU before the bridge did. NIO still reads this socket.
    private func send(payloadType: UInt8, sequence: UInt16, timestamp: UInt32, ssrc: UInt32, payload: ByteBuffer) {
        let length = 12 + payload.readableBytes
        if packet.count < length { packet = [UInt8](repeating: 0, count: length) }
        let sent = packet.withUnsafeMutableBytes { bytes -> Int in
            bytes[0] = 0x80
            bytes[1] = payloadType
            bytes.storeBytes(of: sequence.bigEndian, toByteOffset: 2, as: UInt16.self)
            bytes.storeBytes(of: timestamp.bigEndian, toByteOffset: 4, as: UInt32.self)
            bytes.storeBytes(of: ssrc.bigEndian, toByteOffset: 8, as: UInt32.self)
            payload.withUnsafeReadableBytes { UnsafeMutableRawBufferPointer(rebasing: bytes[12...]).copyMemory(from: $0) }
            return media.remote.withSockAddr { address, size in
                sendto(media.descriptor, bytes.baseAddress, length, 0, address, socklen_t(size))
            }
        }
        if sent < 0 { media.counters.rtpSendErrors.increment() }
    }
}

/// Drives every RTP stream of one event loop with one timer: each wake-up serves all streams due
/// within the next 0.5 ms (sends are at most 0.5 ms early, about as regular as Asterisk's own
/// timer-driven RTP; wake-ups ≤ 2000/s whatever the call count).
final class RTPTicker {
    static let registry = Mutex<[ObjectIdentifier: NIOLoopBound<RTPTicker>]>([:])
    static let coalesce = TimeAmount.microseconds(500)

    let eventLoop: any EventLoop
    var streams: [RTPStream] = []
    /// `streams[i].nextDeadline` in uptime nanoseconds: each tick scans this, and touches only
    /// the streams that are due (at 500 calls most of 2000 ticks a second find one or two).
    var deadlines: [UInt64] = []
    var scheduled: Scheduled<Void>?
    var scheduledAt: NIODeadline?

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    /// The ticker of `loop` (call on that loop).
    static func forLoop(_ loop: any EventLoop) -> RTPTicker {
        let key = ObjectIdentifier(loop as AnyObject)
        let bound: NIOLoopBound<RTPTicker> = registry.withLock { reg in
            if let b = reg[key] { return b }
            let b = NIOLoopBound(RTPTicker(eventLoop: loop), eventLoop: loop)
            reg[key] = b
            return b
        }
        return bound.value
    }

    func add(_ stream: RTPStream) {
        streams.append(stream)
        deadlines.append(stream.nextDeadline.uptimeNanoseconds)
        tick()
    }

    func tick() {
        scheduled?.cancel()  // add() ticks at once: never keep two timers
        scheduled = nil
        scheduledAt = nil
        let now = NIODeadline.now()
        let horizon = now + Self.coalesce
        let horizonNanos = horizon.uptimeNanoseconds
        var next = UInt64.max
        var i = 0
        while i < streams.count {
            if deadlines[i] <= horizonNanos {
                let s = streams[i]
                guard s.sendDue(now: now, horizon: horizon) else {
                    streams.swapAt(i, streams.count - 1)
                    streams.removeLast()
                    deadlines.swapAt(i, deadlines.count - 1)
                    deadlines.removeLast()
                    continue
                }
                deadlines[i] = s.nextDeadline.uptimeNanoseconds
            }
            next = min(next, deadlines[i])
            i += 1
        }
        if next != .max {
            let next = NIODeadline.uptimeNanoseconds(next)
            let loopBoundSelf = NIOLoopBound(self, eventLoop: eventLoop)
            scheduledAt = next
            scheduled = eventLoop.scheduleTask(deadline: next) { loopBoundSelf.value.tick() }
        }
    }
}
