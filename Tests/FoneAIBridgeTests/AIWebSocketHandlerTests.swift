import NIOCore
import NIOEmbedded
import NIOWebSocket
import Synchronization
import Testing

@testable import FoneAIBridge

/// The AI session's channel handler and `AIOutbound` on an embedded channel: what goes on the
/// wire, in which order, and what happens when the AI reads too slowly or closes.
@Suite struct AIWebSocketHandlerTests {
    let call = AICallInfo(callId: "foneai-0123456789ab", channelId: "1.2", callerNumber: "555", callerName: "Al",
                          exten: "100", context: "foneai-in", campaign: nil, apiKey: "secret", custom: .null,
                          args: [], sampleRate: 16000)

    final class Recorder: Sendable {
        let audio = Mutex<[ByteBuffer]>([])
        let events = Mutex<[String]>([])
    }

    struct Session {
        let channel: EmbeddedChannel
        let loop: EmbeddedEventLoop
        let outbound: AIOutbound
        let recorder: Recorder

        /// The next frame written to the AI: its payload as handed to NIO's frame encoder (which
        /// applies the mask key), and whether it has a mask key.
        func sent() throws -> (WebSocketOpcode, ByteBuffer, masked: Bool)? {
            guard let frame = try channel.readOutbound(as: WebSocketFrame.self) else { return nil }
            return (frame.opcode, frame.data, frame.maskKey != nil)
        }

        func handler() throws -> AIWebSocketHandler {
            try channel.pipeline.syncOperations.handler(type: AIWebSocketHandler.self)
        }

        func sentText() throws -> String? {
            guard let (opcode, data, _) = try sent(), opcode == .text else { return nil }
            return String(buffer: data)
        }
    }

    func open() throws -> Session {
        let loop = EmbeddedEventLoop()
        let outbound = AIOutbound(eventLoop: loop, maxQueuedAudioFrames: 3)
        let recorder = Recorder()
        let handler = AIWebSocketHandler(dialect: NativeDialect(), outbound: outbound, onAudio: { pcm, _ in
            recorder.audio.withLock { $0.append(pcm) }
        }) { event in
            let text: String = switch event {
            case .inbound(.message(let message)): "message \(message)"
            case .inbound(.malformed): "malformed"
            case .inbound(let other): "\(other)"
            case .closed(let failure): "closed \(failure ?? "cleanly")"
            }
            recorder.events.withLock { $0.append(text) }
        }
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        return Session(channel: channel, loop: loop, outbound: outbound, recorder: recorder)
    }

    func pcm(_ value: UInt8, bytes: Int = 640) -> ByteBuffer {
        ByteBuffer(bytes: [UInt8](repeating: value, count: bytes))
    }

    @Test func queuedAudioAndControlFollowTheOpeningMessageMasked() throws {
        let s = try open()
        // Before the socket opens: four frames into a queue of three (the oldest goes), and a DTMF.
        for v in UInt8(1)...4 { s.outbound.sendAudio(pcm(v)) }
        s.outbound.send(.dtmf(digit: "5", durationMs: 100))
        s.loop.run()
        #expect(s.outbound.audioFramesDropped == 1)
        try s.handler().open(call: call)
        #expect(try s.sentText()?.contains("\"type\":\"start\"") == true)
        for v in UInt8(2)...4 {
            let (opcode, data, masked) = try #require(try s.sent())
            #expect(opcode == .binary && masked && data == pcm(v))
        }
        #expect(try s.sentText()?.contains("\"dtmf\"") == true)
        // Open: audio goes out at once.
        s.outbound.sendAudio(pcm(9))
        #expect(try s.sent()?.1 == pcm(9))
    }

    @Test func aSlowAILosesAudioFramesButNotControlMessages() throws {
        let s = try open()
        try s.handler().open(call: call)
        _ = try s.sent()  // start
        s.channel.isWritable = false
        s.outbound.sendAudio(pcm(1))
        s.outbound.sendAudio(pcm(2))
        s.outbound.send(.mark("m1"))
        s.loop.run()
        #expect(s.outbound.audioFramesDropped == 2)
        #expect(try s.sentText()?.contains("\"m1\"") == true)
        #expect(try s.sent() == nil)
        s.channel.isWritable = true
        s.outbound.sendAudio(pcm(3))
        #expect(try s.sent()?.1 == pcm(3))
    }

    @Test func aiFramesAreDecodedPingsAnsweredAndMalformedTextCounted() throws {
        let s = try open()
        try s.handler().open(call: call)
        _ = try s.sent()
        try s.channel.writeInbound(WebSocketFrame(fin: true, opcode: .binary, data: pcm(7, bytes: 320)))
        try s.channel.writeInbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: #"{"type":"mark","name":"a"}"#)))
        try s.channel.writeInbound(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: "not json")))
        try s.channel.writeInbound(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "p")))
        #expect(s.recorder.audio.withLock { $0 } == [pcm(7, bytes: 320)])
        #expect(s.recorder.events.withLock { $0 } == ["message mark(\"a\")", "malformed"])
        let (opcode, data, masked) = try #require(try s.sent())
        #expect(opcode == .pong && data == ByteBuffer(string: "p") && masked)
    }

    @Test func finishSendsStopThenACloseFrameAndTheAIsAnswerClosesTheSocket() throws {
        let s = try open()
        try s.handler().open(call: call)
        _ = try s.sent()
        s.outbound.finish(with: .stop(reason: "ended"))
        s.loop.run()
        s.outbound.sendAudio(pcm(1))  // after finish: never sent
        #expect(try s.sentText()?.contains("\"stop\"") == true)
        let (opcode, code, _) = try #require(try s.sent())
        #expect(opcode == .connectionClose && code == ByteBuffer(bytes: [0x03, 0xE8]))
        #expect(try s.sent() == nil)
        try s.channel.writeInbound(WebSocketFrame(fin: true, opcode: .connectionClose, data: ByteBuffer(bytes: [0x03, 0xE8])))
        s.loop.run()
        #expect(!s.channel.isActive)
        #expect(s.recorder.events.withLock { $0 } == ["closed cleanly"])
    }

    @Test func anAIThatStopsAnsweringPingsIsClosed() throws {
        let s = try open()
        try s.handler().open(call: call)
        _ = try s.sent()
        s.loop.advanceTime(by: AIWebSocketHandler.pingInterval)
        #expect(try s.sent()?.0 == .ping)
        s.loop.advanceTime(by: AIWebSocketHandler.pingInterval)
        #expect(!s.channel.isActive)
        #expect(s.recorder.events.withLock { $0 }.first?.hasPrefix("closed no answer to a ping") == true)
    }

    @Test func callerAudioGoesOnTheWireAsOneMaskedBufferWithItsHeaderInFront() throws {
        let s = try open()
        try s.channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder(), position: .first)
        try s.handler().open(call: call)
        while try s.channel.readOutbound(as: ByteBuffer.self) != nil {}  // the opening message
        let settings = RTPMediaSettings(inboundFormat: .slin16, swap16: true, outboundPayloadType: 118,
                                        timestampIncrement: 320, maxBufferedAudioMs: 1000)
        let media = CallMedia(settings: settings, aiSampleRate: 16000, toAI: s.outbound, onMarkReached: { _ in })
        let payload = (0..<640).map { UInt8(truncatingIfNeeded: $0 * 7) }  // big-endian samples
        var scratch = ByteBuffer()
        payload.withUnsafeBytes { media.receive(payload: $0, scratch: &scratch) }
        s.loop.run()

        var wire = try #require(try s.channel.readOutbound(as: ByteBuffer.self))
        #expect(try s.channel.readOutbound(as: ByteBuffer.self) == nil, "the header went out as a buffer of its own")
        // FIN + binary; masked, 16-bit length 640; the mask key; then the masked samples, little-endian.
        #expect(wire.readBytes(length: 4) == [0x82, 0x80 | 126, 0x02, 0x80])
        let key = wire.readBytes(length: 4) ?? []
        let body = wire.readBytes(length: 640) ?? []
        #expect(key.count == 4 && body.count == 640 && wire.readableBytes == 0)
        let unmasked = body.enumerated().map { $1 ^ key[$0 % 4] }
        let expected = stride(from: 0, to: 640, by: 2).flatMap { [payload[$0 + 1], payload[$0]] }
        #expect(unmasked == expected)
    }

    /// Every packet is decoded into the same scratch buffer and framed into the same frame buffer;
    /// frames still held (queued before the socket opened, or not yet taken by the socket) keep
    /// their own bytes.
    @Test func reusedBuffersNeverChangeAFrameStillHeld() throws {
        let s = try open()
        try s.channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder(), position: .first)
        let settings = RTPMediaSettings(inboundFormat: .ulaw, swap16: false, outboundPayloadType: 0,
                                        timestampIncrement: 160, maxBufferedAudioMs: 1000)
        let media = CallMedia(settings: settings, aiSampleRate: 8000, toAI: s.outbound, onMarkReached: { _ in })
        let packets = (0..<5).map { n in (0..<160).map { UInt8(truncatingIfNeeded: $0 &* 3 &+ n &* 41) } }
        var scratch = ByteBuffer()
        for packet in packets[0..<3] { packet.withUnsafeBytes { media.receive(payload: $0, scratch: &scratch) } }
        s.loop.run()
        try s.handler().open(call: call)
        for packet in packets[3...] { packet.withUnsafeBytes { media.receive(payload: $0, scratch: &scratch) } }
        s.loop.run()

        var wire = ByteBuffer()
        while var part = try s.channel.readOutbound(as: ByteBuffer.self) { wire.writeBuffer(&part) }
        var bodies: [[UInt8]] = []
        while let head = wire.readBytes(length: 2) {  // masked frames, each under 64 KiB
            let length = head[1] & 0x7F == 126 ? Int(wire.readInteger(as: UInt16.self) ?? 0) : Int(head[1] & 0x7F)
            let key = wire.readBytes(length: 4) ?? []
            let body = (wire.readBytes(length: length) ?? []).enumerated().map { $1 ^ key[$0 % 4] }
            if head[0] == 0x82 { bodies.append(body) }  // the opening message is text
        }
        #expect(bodies.count == packets.count)
        for (n, (packet, body)) in zip(packets, bodies).enumerated() {
            #expect(body == decodeInbound(packet, .ulaw), "frame \(n) carries its own packet")
        }
    }

    /// The audio frame's bytes are exactly those NIO's encoder writes for the same key, for every
    /// payload length class and every tail length of the eight-byte masking loop, also when the
    /// buffer is reused for a shorter frame after a longer one.
    @Test func maskedBinaryFramesMatchNIOsEncoderByteForByte() throws {
        let channel = EmbeddedChannel(handler: WebSocketFrameEncoder())
        var generator = SystemRandomNumberGenerator()
        var frame = ByteBuffer()
        for length in [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 125, 126, 127, 640, 65535, 65536, 70001, 5, 640] {
            let payload = ByteBuffer(bytes: (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let mask = UInt32.random(in: 0...UInt32.max, using: &generator)
            let key = try #require(WebSocketMaskingKey((0..<4).map { UInt8(truncatingIfNeeded: mask >> (8 * $0)) }))
            try channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, maskKey: key, data: payload)).wait()
            var expected = ByteBuffer()
            while var part = try channel.readOutbound(as: ByteBuffer.self) { expected.writeBuffer(&part) }
            MaskedBinaryFrame.write(payload: payload, mask: mask, into: &frame)
            #expect(frame == expected, "payload of \(length) bytes")
        }
        _ = try channel.finish()
    }
}
