import NIOCore
import NIOPosix
import Synchronization

final class SimCounterBox: Sendable {
    let rtpPacketsSent = Atomic<Int>(0)
    let rtpPacketsReceived = Atomic<Int>(0)
    let droppedDynamicPayloadPackets = Atomic<Int>(0)
    let droppedStrictRTPPackets = Atomic<Int>(0)
    let droppedUnsupportedPayloadPackets = Atomic<Int>(0)
    let malformedRTPPackets = Atomic<Int>(0)
    let packetsWithNoListener = Atomic<Int>(0)
    let restRequests = Atomic<Int>(0)
    let unauthorizedRequests = Atomic<Int>(0)
    let unknownRequests = Atomic<Int>(0)
    let eventsSent = Atomic<Int>(0)
    let eventSocketsAccepted = Atomic<Int>(0)

    func snapshot() -> SimCounters {
        var c = SimCounters()
        c.rtpPacketsSent = rtpPacketsSent.load(ordering: .relaxed)
        c.rtpPacketsReceived = rtpPacketsReceived.load(ordering: .relaxed)
        c.droppedDynamicPayloadPackets = droppedDynamicPayloadPackets.load(ordering: .relaxed)
        c.droppedStrictRTPPackets = droppedStrictRTPPackets.load(ordering: .relaxed)
        c.droppedUnsupportedPayloadPackets = droppedUnsupportedPayloadPackets.load(ordering: .relaxed)
        c.malformedRTPPackets = malformedRTPPackets.load(ordering: .relaxed)
        c.packetsWithNoListener = packetsWithNoListener.load(ordering: .relaxed)
        c.restRequests = restRequests.load(ordering: .relaxed)
        c.unauthorizedRequests = unauthorizedRequests.load(ordering: .relaxed)
        c.unknownRequests = unknownRequests.load(ordering: .relaxed)
        c.eventsSent = eventsSent.load(ordering: .relaxed)
        c.eventSocketsAccepted = eventSocketsAccepted.load(ordering: .relaxed)
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

/// The RTP side of one UnicastRTP (externalMedia) channel: its own UDP socket, the stream it sends
/// to `external_host` while bridged with a caller, and what it receives back.
final class ExternalMedia: Sendable {
    let channelID: String
    let remote: SocketAddress
    let format: SimRTPFormat
    let counters: SimCounterBox
    let learnPackets: Int

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

    private let state: Mutex<State>

    init(channelID: String, remote: SocketAddress, format: SimRTPFormat, counters: SimCounterBox, learnPackets: Int) {
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
        let media = ExternalMedia(channelID: channelID, remote: remote, format: format, counters: counters, learnPackets: learnPackets)
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: 256 * 1024)
            .channelOption(ChannelOptions.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048))
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(RTPInboundHandler(media: media))
                }
            }
            .bind(host: host, port: 0).get()
        media.state.withLock { $0.channel = channel }
        return (media, channel.localAddress?.port ?? 0)
    }

    var localPort: Int { state.withLock { $0.channel?.localAddress?.port ?? 0 } }

    /// The caller that hears what arrives on this socket (nil: nobody, packets are discarded).
    func setListener(_ call: SimCall?) {
        state.withLock { $0.listener = call }
    }

    /// Starts sending `call`'s audio to `external_host` (from the moment of this call, 20 ms packets).
    func startSending(for call: SimCall) {
        let (gen, channel): (Int, (any Channel)?) = state.withLock { st in
            st.generation += 1
            return (st.generation, st.closed ? nil : st.channel)
        }
        guard let channel else { return }
        let timeline = call.timeline(for: format)
        let el = channel.eventLoop
        el.execute {
            let start = NIODeadline.now()
            self.tick(generation: gen, packet: 0, start: start, timeline: timeline, call: call, channel: channel)
        }
    }

    func stopSending() {
        state.withLock { $0.generation += 1 }
    }

    func close() {
        let ch: (any Channel)? = state.withLock { st in
            st.closed = true
            st.generation += 1
            st.listener = nil
            return st.channel
        }
        ch?.close(promise: nil)
    }

    private func tick(generation: Int, packet: Int, start: NIODeadline, timeline: AudioTimeline, call: SimCall, channel: any Channel) {
        let header: (UInt32, UInt16)? = state.withLock { st in
            (st.generation == generation && !st.closed) ? (st.ssrc, st.seq) : nil
        }
        guard let (ssrc, firstSeq) = header else { return }
        var seq = firstSeq
        var n = packet
        let now = NIODeadline.now()
        let period = TimeAmount.milliseconds(20)
        let spp = format.samplesPerPacket
        var wrote = 0
        var ended = false
        // If the event loop stalled badly, do not burst more than 5 packets: skip ahead.
        let due = Int((now - start).nanoseconds / period.nanoseconds)
        if due - n > 5 { n = due - 5 }
        while start + period * Int64(n) <= now {
            switch timeline.packet(n, sampleRate: format.sampleRate) {
            case .ended:
                ended = true
            case .silent:
                break
            case .audio(let samples):
                var buf = channel.allocator.buffer(capacity: 12 + format.payloadBytes)
                buf.writeInteger(UInt8(0x80))
                buf.writeInteger(format.payloadType & 0x7F)
                buf.writeInteger(seq, endianness: .big)
                buf.writeInteger(UInt32(truncatingIfNeeded: (n + 1) * spp), endianness: .big)
                buf.writeInteger(ssrc, endianness: .big)
                switch format {
                case .slin16, .slin:
                    for s in samples { buf.writeInteger(s, endianness: .big) }
                case .ulaw:
                    for s in samples { buf.writeInteger(G711.ulawEncode(s)) }
                case .alaw:
                    for s in samples { buf.writeInteger(G711.alawEncode(s)) }
                }
                channel.write(AddressedEnvelope(remoteAddress: remote, data: buf), promise: nil)
                seq &+= 1
                wrote += 1
            }
            if ended { break }
            n += 1
        }
        if wrote > 0 {
            channel.flush()
            counters.rtpPacketsSent.wrappingAdd(wrote, ordering: .relaxed)
            call.noteSent(count: wrote)
            state.withLock { st in
                if st.generation == generation { st.seq = seq }
            }
        }
        if ended { return }
        let next = n
        channel.eventLoop.scheduleTask(deadline: start + period * Int64(next)) {
            self.tick(generation: generation, packet: next, start: start, timeline: timeline, call: call, channel: channel)
        }
    }

    /// Handles one datagram received on this channel's socket (event loop thread).
    func receive(from source: SocketAddress, buffer: ByteBuffer) {
        let arrival = simMonotonicNanos()
        counters.rtpPacketsReceived.increment()
        guard let (header, payload) = RTPHeader.parse(buffer) else {
            counters.malformedRTPPackets.increment()
            return
        }
        // Strict RTP: a new source is learned only after `learnPackets` dropped packets.
        let (accepted, listener): (Bool, SimCall?) = state.withLock { st in
            if st.closed { return (false, nil) }
            if let learned = st.learnedSource, learned == source { return (true, st.listener) }
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
                return (true, st.listener)
            }
            return (false, nil)
        }
        guard accepted else {
            counters.droppedStrictRTPPackets.increment()
            return
        }
        let pt = header.payloadType
        if pt >= 35 {
            counters.droppedDynamicPayloadPackets.increment()
            return
        }
        var samples: [Int16] = []
        var p = payload
        switch pt {
        case 10, 11:
            samples.reserveCapacity(p.readableBytes / 2)
            while let s = p.readInteger(endianness: .big, as: Int16.self) { samples.append(s) }
        case 0:
            samples.reserveCapacity(p.readableBytes)
            while let b = p.readInteger(as: UInt8.self) { samples.append(G711.ulawDecode(b)) }
        case 8:
            samples.reserveCapacity(p.readableBytes)
            while let b = p.readInteger(as: UInt8.self) { samples.append(G711.alawDecode(b)) }
        default:
            counters.droppedUnsupportedPayloadPackets.increment()
            return
        }
        guard let listener else {
            counters.packetsWithNoListener.increment()
            return
        }
        listener.recordHeard(
            samples: samples,
            packet: SimHeardPacket(
                arrivalNanos: arrival, sequenceNumber: header.sequenceNumber, timestamp: header.timestamp,
                ssrc: header.ssrc, payloadType: pt, payloadBytes: payload.readableBytes, marker: header.marker))
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
