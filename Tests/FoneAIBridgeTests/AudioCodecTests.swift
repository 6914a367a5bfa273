import NIOCore
import Testing

@testable import FoneAIBridge

func decodeInbound(_ payload: [UInt8], _ format: InboundAudioFormat, swap16: Bool = true) -> [UInt8] {
    var out = ByteBufferAllocator().buffer(capacity: 0)
    payload.withUnsafeBytes { InboundDecoder.appendPCM16LE(payload: $0, format: format, swap16: swap16, to: &out) }
    return Array(out.readableBytesView)
}

@Suite struct InboundDecoderTests {
    @Test func slin16BigEndianBecomesLittleEndian() {
        #expect(decodeInbound([0x12, 0x34, 0xFF, 0xFE], .slin16) == [0x34, 0x12, 0xFE, 0xFF])
        #expect(decodeInbound([0x12, 0x34, 0xFF, 0xFE], .slin) == [0x34, 0x12, 0xFE, 0xFF])
    }

    @Test func swap16FalsePassesBytesThrough() {
        #expect(decodeInbound([0x12, 0x34, 0xFF, 0xFE], .slin16, swap16: false) == [0x12, 0x34, 0xFF, 0xFE])
    }

    @Test func oddTrailingByteIsIgnored() {
        #expect(decodeInbound([0x12, 0x34, 0x56], .slin16) == [0x34, 0x12])
        #expect(decodeInbound([0x12, 0x34, 0x56], .slin16, swap16: false) == [0x12, 0x34])
        #expect(decodeInbound([0x12], .slin) == [])
        #expect(decodeInbound([], .ulaw) == [])
    }

    @Test func g711BecomesLittleEndianPCM() {
        #expect(decodeInbound([0xFF, 0x00, 0x80], .ulaw) == [0, 0, 0x84, 0x82, 0x7C, 0x7D])  // 0, -32124, 32124
        #expect(decodeInbound([0xD5, 0x55], .alaw) == [8, 0, 0xF8, 0xFF])  // 8, -8
        // swap16 does not apply to G.711.
        #expect(decodeInbound([0xD5], .alaw, swap16: false) == [8, 0])
    }

    @Test func fullAsteriskFrame() {
        // 320 samples of a ramp, as Asterisk sends them (big-endian).
        let samples = (0..<320).map { Int16($0 * 100 - 16000) }
        let payload = samples.flatMap { s -> [UInt8] in let u = UInt16(bitPattern: s); return [UInt8(u >> 8), UInt8(u & 0xFF)] }
        let out = decodeInbound(payload, .slin16)
        #expect(out.count == 640)
        let back = (0..<320).map { Int16(bitPattern: UInt16(out[2 * $0]) | UInt16(out[2 * $0 + 1]) << 8) }
        #expect(back == samples)
    }

    /// Every length up to 41 bytes: no, one and two sixteen-byte steps, each with every tail.
    @Test func swapMatchesAByteByByteSwapAtEveryLength() {
        let bytes = (0..<41).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for length in 0...bytes.count {
            let payload = Array(bytes[..<length])
            let expected = stride(from: 0, to: length & ~1, by: 2).flatMap { [payload[$0 + 1], payload[$0]] }
            #expect(decodeInbound(payload, .slin16) == expected, "\(length) bytes")
        }
    }

    @Test func appendsToExistingContent() {
        var out = ByteBufferAllocator().buffer(capacity: 0)
        out.writeBytes([7])
        let payload: [UInt8] = [0x00, 0x01]
        payload.withUnsafeBytes { InboundDecoder.appendPCM16LE(payload: $0, format: .slin, swap16: true, to: &out) }
        var bb = ByteBufferAllocator().buffer(capacity: 2)
        bb.writeBytes([0x00, 0x02])
        InboundDecoder.appendPCM16LE(payload: bb, format: .slin, swap16: true, to: &out)
        #expect(Array(out.readableBytesView) == [7, 0x01, 0x00, 0x02, 0x00])
        #expect(bb.readableBytes == 2)  // not consumed
    }
}

@Suite struct OutboundEncoderTests {
    func encode(_ pt: Int, _ samples: [Int16]) -> [UInt8] {
        let encoder = OutboundEncoder(payloadType: pt)
        var out = ByteBufferAllocator().buffer(capacity: 0)
        samples.withUnsafeBufferPointer { encoder.encode($0, into: &out) }
        return Array(out.readableBytesView)
    }

    @Test(arguments: [11, 10])
    func l16IsBigEndian(_ pt: Int) {
        #expect(encode(pt, [0x1234, -2]) == [0x12, 0x34, 0xFF, 0xFE])
        let e = OutboundEncoder(payloadType: pt)
        #expect(e.payloadType == UInt8(pt) && e.encoding == .l16BigEndian)
        #expect(e.sampleRate == 8000 && e.samplesPerPacket(ptimeMs: 20) == 160 && e.payloadBytesPerPacket() == 320)
        #expect(e.samplesPerPacket(ptimeMs: 40) == 320)
    }

    @Test func g711Encodings() {
        #expect(encode(0, [0, -32768, 32767]) == [0xFF, 0x00, 0x80])
        #expect(encode(8, [0, -1, 32767]) == [0xD5, 0x55, 0xAA])
        #expect(OutboundEncoder(payloadType: 0).payloadBytesPerPacket() == 160)
        #expect(OutboundEncoder(payloadType: 8).samplesPerPacket() == 160)
    }

    @Test func validation() {
        for pt in [0, 8, 10, 11] { #expect((try? OutboundEncoder(validating: pt)) != nil) }
        for pt in [1, 9, 96, 118] {
            #expect(throws: UnsupportedPayloadType(payloadType: pt)) { try OutboundEncoder(validating: pt) }
        }
        #expect(OutboundEncoder.isSupported(payloadType: 11) && !OutboundEncoder.isSupported(payloadType: 118))
    }

    @Test func decodeOfEncodeIsIdentityForL16() {
        // Outbound L16 read back the way Asterisk reads it (big-endian) gives the samples again.
        let samples: [Int16] = [0, 1, -1, 32767, -32768, 12345]
        let bytes = encode(11, samples)
        let back = (0..<samples.count).map { Int16(bitPattern: UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1])) }
        #expect(back == samples)
    }
}

@Suite struct PCM16Tests {
    @Test func littleEndianHelpers() {
        var samples: [Int16] = [5]
        let bytes: [UInt8] = [0x34, 0x12, 0xFE, 0xFF, 0x99]
        bytes.withUnsafeBytes { PCM16.appendLittleEndian($0, to: &samples) }
        #expect(samples == [5, 0x1234, -2])
        var buffer = ByteBufferAllocator().buffer(capacity: 4)
        buffer.writeBytes([0x01, 0x00, 0x00, 0x80])
        var fromBuffer: [Int16] = []
        PCM16.appendLittleEndian(buffer, to: &fromBuffer)
        #expect(fromBuffer == [1, Int16.min])
        var out = ByteBufferAllocator().buffer(capacity: 0)
        fromBuffer.withUnsafeBufferPointer { PCM16.writeLittleEndian($0, to: &out) }
        #expect(Array(out.readableBytesView) == [0x01, 0x00, 0x00, 0x80])
    }
}
