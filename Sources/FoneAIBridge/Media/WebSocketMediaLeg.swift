import HTTPTypes
import Logging
import NIOCore
import NIOSSL
import Synchronization
import WSClient

/// One call's media over Asterisk's WebSocket media channel (`transport=websocket`): binary
/// frames of little-endian 16 kHz PCM both ways, so wideband audio reaches the caller, which
/// UnicastRTP cannot carry. The bridge connects to `/media/<connection id>` with subprotocol
/// `media`; `MEDIA_XOFF`/`MEDIA_XON` pause and resume sending so Asterisk's queue never overflows.
public final class WebSocketMediaLeg: MediaLeg {
    public static let sampleRate = 16000
    static let frameMs = 20

    public let playout: PlayoutQueue
    private let toAI: AIOutbound
    private let onMarkReached: @Sendable (String) -> Void
    private let inFrames = Atomic<UInt64>(0)
    private let outFrames = Atomic<UInt64>(0)
    private let pausedByAsterisk = Atomic<Bool>(false)
    private let pacing = Atomic<Bool>(false)
    private let controls: AsyncStream<String>
    private let controlContinuation: AsyncStream<String>.Continuation
    private let startPacing: AsyncStream<Void>.Continuation
    private let pacingRequests: AsyncStream<Void>

    public init(maxBufferedAudioMs: Int, aiSampleRate: Int, toAI: AIOutbound,
                onMarkReached: @escaping @Sendable (String) -> Void) {
        playout = PlayoutQueue(outputRate: Self.sampleRate, frameMs: Self.frameMs, maxBufferedMs: maxBufferedAudioMs, aiSampleRate: aiSampleRate)
        self.toAI = toAI
        self.onMarkReached = onMarkReached
        (controls, controlContinuation) = AsyncStream.makeStream(of: String.self)
        (pacingRequests, startPacing) = AsyncStream.makeStream(of: Void.self)
    }

    public var packetsIn: UInt64 { inFrames.load(ordering: .relaxed) }
    public var packetsOut: UInt64 { outFrames.load(ordering: .relaxed) }
    public var packetsDropped: UInt64 { toAI.audioFramesDropped }
    public var isPacing: Bool { pacing.load(ordering: .relaxed) }

    /// The pace loop visits the queue every slot, so there is nothing to wake.
    public func enqueueAudio(_ pcm: ByteBuffer, sampleRate: Int) {
        playout.enqueue(pcm, sampleRate: sampleRate)
    }

    public func addMark(_ name: String) {
        playout.addMark(name)
    }

    /// Starts playing queued AI audio (once the channel is bridged).
    public func beginPlayout() {
        startPacing.yield()
    }

    /// Barge-in also drops what Asterisk has queued already.
    public func flushAsterisk() {
        controlContinuation.yield("FLUSH_MEDIA")
    }

    /// Ends the media socket.
    public func close() {
        controlContinuation.finish()
        startPacing.finish()
    }

    /// Connects and runs until `close()` or until Asterisk closes the socket. `onConnected` runs
    /// once the socket is open (the channel enters Stasis only after that).
    public func run(url: String, authorization: String, tls: TLSConfiguration?, logger: Logger,
                    onConnected: @escaping @Sendable () -> Void) async throws {
        var headers = HTTPFields()
        headers[.authorization] = authorization
        headers[.secWebSocketProtocol] = "media"
        let configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 16, additionalHeaders: headers)
        try await WebSocketClient.connect(url: url, configuration: configuration, tlsConfiguration: tls, logger: logger) { inbound, writer, _ in
            onConnected()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await message in inbound.messages(maxSize: 1 << 16) {
                        switch message {
                        case .binary(let pcm):
                            self.inFrames.wrappingAdd(1, ordering: .relaxed)
                            self.toAI.sendAudio(pcm)
                        case .text(let text):
                            // Plain (`MEDIA_XOFF`) and JSON (`{"event":"MEDIA_XOFF",…}`) forms.
                            if text.contains("MEDIA_XOFF") {
                                self.pausedByAsterisk.store(true, ordering: .relaxed)
                            } else if text.contains("MEDIA_XON") {
                                self.pausedByAsterisk.store(false, ordering: .relaxed)
                            }
                        }
                    }
                }
                group.addTask {
                    for await command in self.controls { try await writer.write(.text(command)) }
                }
                group.addTask {
                    for await _ in self.pacingRequests {
                        try await self.pace(writer)
                        return
                    }
                }
                // The socket closing, or `close()`, ends the leg.
                try await group.next()
                group.cancelAll()
            }
        }
    }

    /// One frame per 20 ms from a monotonic schedule. Asterisk queues what it gets, so the pace
    /// keeps its queue short and marks honest rather than being needed for smooth playback.
    private func pace(_ writer: WebSocketOutboundWriter) async throws {
        pacing.store(true, ordering: .relaxed)
        defer { pacing.store(false, ordering: .relaxed) }
        let clock = ContinuousClock()
        var deadline = clock.now
        // A slot that found less than a frame gives late audio one more slot before padding.
        var waited = false
        while !Task.isCancelled {
            deadline += .milliseconds(Self.frameMs)
            try await Task.sleep(until: deadline, clock: clock)
            if clock.now - deadline > .milliseconds(Self.frameMs * 2) { deadline = clock.now }
            guard !pausedByAsterisk.load(ordering: .relaxed) else { continue }
            let (taken, marks) = playout.take(late: waited) { samples, _ -> ByteBuffer in
                var buffer = ByteBuffer()
                buffer.reserveCapacity(samples.count * 2)
                PCM16.writeLittleEndian(samples, to: &buffer)
                return buffer
            }
            for mark in marks { onMarkReached(mark) }
            waited = false
            switch taken {
            case .sent(let frame, _, _):
                try await writer.write(.binary(frame))
                outFrames.wrappingAdd(1, ordering: .relaxed)
            case .wait:
                waited = true
            case .parked:
                break
            }
        }
    }
}
