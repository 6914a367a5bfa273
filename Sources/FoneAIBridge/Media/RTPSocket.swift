import Logging
import NIOCore
import NIOPosix

/// Counters of the shared RTP socket, kept on its event loop.
public struct RTPSocketCounters: Sendable, Equatable {
    public var received: UInt64 = 0
    public var unknownSource: UInt64 = 0
    public var malformed: UInt64 = 0
    /// Packets the pacer wrote 2 ms or more, and 10 ms or more, after their slot (the event loop
    /// was busy or the thread was not scheduled), and slots skipped after a stall of two or more.
    public var pacerLate2ms: UInt64 = 0
    public var pacerLate10ms: UInt64 = 0
    public var pacerSkippedSlots: UInt64 = 0
}

/// The one UDP socket every call's RTP arrives on and leaves from. Packets are matched to their
/// call by source address:port, so one port serves every call.
public final class RTPSocket: Sendable {
    public let channel: any Channel
    private let demux: NIOLoopBound<RTPDemuxHandler>
    private let pacer: NIOLoopBound<RTPPacer>

    public var localAddress: SocketAddress? { channel.localAddress }
    public var eventLoop: any EventLoop { channel.eventLoop }

    private init(channel: any Channel, demux: NIOLoopBound<RTPDemuxHandler>, pacer: NIOLoopBound<RTPPacer>) {
        self.channel = channel
        self.demux = demux
        self.pacer = pacer
    }

    /// Vector reads batch syscalls; the fixed allocator keeps them from truncating datagrams.
    /// One batch a loop turn is the most the socket drains: at 500 calls (25,000 packets a second)
    /// 32 a turn fell behind when turns grew past 1.3 ms, queueing caller audio for 50 ms and
    /// more and overflowing the socket buffer; 64 a turn keeps up with turns twice that long.
    private static let batch = 64

    public static func bind(host: String, port: Int, group: any EventLoopGroup, logger: Logger) async throws -> RTPSocket {
        let loop = group.next()
        let handler = try await loop.submit { NIOLoopBound(RTPDemuxHandler(logger: logger), eventLoop: loop) }.get()
        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.datagramVectorReadMessageCount, value: batch)
            // One batch per loop turn: each packet costs a write to the AI's socket, and four
            // batches in a row (NIO's default) held the pacer's timer back by 2 ms and more.
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: batch * 2048))
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler.value)
                }
            }
            .bind(host: host, port: port).get()
        let pacer = try await loop.submit {
            NIOLoopBound(RTPPacer(output: try channel.pipeline.syncOperations.context(handler: handler.value)), eventLoop: loop)
        }.get()
        return RTPSocket(channel: channel, demux: handler, pacer: pacer)
    }

    /// Routes packets from `remote` (Asterisk's RTP socket for this call) to `media`.
    public func attach(_ media: CallMedia, remote: SocketAddress) async {
        media.setRemote(remote)
        try? await channel.eventLoop.submit { [demux] in
            demux.value.routes[remote] = media
        }.get()
    }

    /// Starts pacing the call's queued AI audio out to Asterisk.
    public func startPlayout(_ media: CallMedia) {
        media.startPlayout(loop: channel.eventLoop, pacer: pacer)
    }

    public func detach(_ media: CallMedia) async {
        media.stopPacer()
        let remote = media.remote
        try? await channel.eventLoop.submit { [demux, pacer] in
            pacer.value.stop(media)
            if let remote, demux.value.routes[remote] === media { demux.value.routes[remote] = nil }
        }.get()
    }

    public func counters() async -> RTPSocketCounters {
        (try? await channel.eventLoop.submit { [demux, pacer] in
            var counters = demux.value.counters
            counters.pacerLate2ms = pacer.value.late2ms
            counters.pacerLate10ms = pacer.value.late10ms
            counters.pacerSkippedSlots = pacer.value.skippedSlots
            return counters
        }.get()) ?? RTPSocketCounters()
    }

    /// Answers once the RTP event loop runs tasks: the watchdog's proof of life.
    public func probe() async -> Bool {
        (try? await channel.eventLoop.submit { true }.get()) ?? false
    }

    public func close() async {
        try? await channel.close()
    }
}

final class RTPDemuxHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    var routes: [SocketAddress: CallMedia] = [:]
    var counters = RTPSocketCounters()
    let logger: Logger
    /// Every packet's decoded PCM, reused (see `CallMedia.receive`).
    private var pcm = ByteBufferAllocator().buffer(capacity: 640)

    init(logger: Logger) {
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        counters.received &+= 1
        guard let media = routes[envelope.remoteAddress] else {
            counters.unknownSource &+= 1
            // One line for the first and then every 1000th, so a flood cannot flood the journal.
            if counters.unknownSource % 1000 == 1 {
                logger.warning("Dropped RTP from an unknown source", metadata: ["source": "\(envelope.remoteAddress)", "total": "\(counters.unknownSource)"])
            }
            return
        }
        envelope.data.withUnsafeReadableBytes { bytes in
            switch RTPPacket.parse(bytes) {
            case .success(let header):
                let payload = UnsafeRawBufferPointer(rebasing: bytes[header.payloadOffset ..< header.payloadOffset + header.payloadLength])
                media.receive(payload: payload, scratch: &pcm)
            case .failure(let error):
                counters.malformed &+= 1
                if counters.malformed % 1000 == 1 {
                    logger.warning("Dropped a malformed RTP packet", metadata: ["source": "\(envelope.remoteAddress)", "problem": "\(error)", "total": "\(counters.malformed)"])
                }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A UDP socket reports ICMP port-unreachable as an error on the next read; the socket is
        // still fine, so keep reading.
    }
}
