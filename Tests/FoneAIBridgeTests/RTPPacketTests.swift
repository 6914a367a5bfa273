import NIOCore
import Testing

@testable import FoneAIBridge

func parseRTP(_ bytes: [UInt8]) -> Result<RTPHeaderView, RTPParseError> {
    bytes.withUnsafeBytes { RTPPacket.parse($0) }
}

@Suite struct RTPPacketTests {
    /// What Asterisk sends for slin16: PT 118, 640-byte payload.
    @Test func parsesAsteriskPacket() throws {
        var bytes: [UInt8] = [0x80, 118, 0x12, 0x34, 0x00, 0x00, 0x01, 0x40, 0xDE, 0xAD, 0xBE, 0xEF]
        bytes += [UInt8](repeating: 0xAB, count: 640)
        let h = try parseRTP(bytes).get()
        #expect(h.version == 2 && !h.padding && !h.hasExtension && h.csrcCount == 0 && !h.marker)
        #expect(h.payloadType == 118)
        #expect(h.sequenceNumber == 0x1234)
        #expect(h.timestamp == 320)
        #expect(h.ssrc == 0xDEAD_BEEF)
        #expect(h.payloadOffset == 12 && h.payloadLength == 640)
        #expect(h.payloadRange == 12..<652)
    }

    @Test func roundTripsThroughWriteHeader() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        RTPPacket.writeHeader(payloadType: 11, marker: true, sequence: 65535, timestamp: 0xFFFF_FFF0, ssrc: 0x0102_0304, into: &buffer)
        #expect(buffer.readableBytes == 12)
        buffer.writeBytes([1, 2, 3, 4])
        #expect(Array(buffer.readableBytesView.prefix(12)) == [0x80, 0x80 | 11, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF0, 1, 2, 3, 4])
        let h = try RTPPacket.parse(buffer).get()
        #expect(h == RTPHeaderView(marker: true, payloadType: 11, sequenceNumber: 65535, timestamp: 0xFFFF_FFF0,
                                   ssrc: 0x0102_0304, payloadOffset: 12, payloadLength: 4))
        // The view-type spellings do the same.
        var other = ByteBufferAllocator().buffer(capacity: 12)
        RTPHeaderView.writeHeader(payloadType: 0, sequence: 1, timestamp: 2, ssrc: 3, into: &other)
        #expect(try RTPHeaderView.parse(other).get().payloadType == 0)
        #expect(try RTPHeaderView.parse(other).get().marker == false)
    }

    @Test func payloadTypeIsMaskedTo7Bits() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 12)
        RTPPacket.writeHeader(payloadType: 0xFF, marker: false, sequence: 0, timestamp: 0, ssrc: 0, into: &buffer)
        let h = try RTPPacket.parse(buffer).get()
        #expect(h.payloadType == 127 && !h.marker)
    }

    @Test func handlesCSRCExtensionAndPadding() throws {
        // V=2, P=1, X=1, CC=2
        var bytes: [UInt8] = [0xB2, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]
        bytes += [0, 0, 0, 9, 0, 0, 0, 10]  // two CSRCs
        bytes += [0xBE, 0xDE, 0x00, 0x02]  // extension header: 2 words follow
        bytes += [1, 2, 3, 4, 5, 6, 7, 8]
        bytes += [0xA0, 0xA1, 0xA2]  // payload
        bytes += [0, 0, 3]  // 3 bytes of padding
        let h = try parseRTP(bytes).get()
        #expect(h.padding && h.hasExtension && h.csrcCount == 2)
        #expect(h.payloadOffset == 12 + 8 + 4 + 8)
        #expect(h.payloadLength == 3)
        #expect(Array(bytes[h.payloadRange]) == [0xA0, 0xA1, 0xA2])
    }

    @Test func emptyPayloadIsFine() throws {
        let h = try parseRTP([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).get()
        #expect(h.payloadLength == 0 && h.payloadOffset == 12)
        // Padding that fills the whole payload is valid too.
        let p = try parseRTP([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]).get()
        #expect(p.payloadLength == 0)
    }

    @Test(arguments: [
        ([], RTPParseError.tooShort),
        ([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], .tooShort),
        ([0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], .badVersion),  // version 1
        ([0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], .badVersion),  // version 0
        ([0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], .badVersion),  // version 3
        ([0x81, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], .csrcPastEnd),  // 1 CSRC, none present
        ([0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 56), .csrcPastEnd),  // 15 CSRCs need 60
        ([0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], .extensionPastEnd),  // no room for the extension header
        ([0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE], .extensionPastEnd),
        ([0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 1, 1, 2, 3], .extensionPastEnd),  // 1 word, 3 bytes
        ([0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF], .extensionPastEnd),
        ([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], .badPadding),  // padding flag, no bytes
        ([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0], .badPadding),  // count 0
        ([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4], .badPadding),  // count > payload
        ([0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF], .badPadding),
    ] as [([UInt8], RTPParseError)])
    func rejectsMalformedPackets(_ bytes: [UInt8], _ expected: RTPParseError) {
        #expect(parseRTP(bytes) == .failure(expected))
    }

    @Test func neverReadsOutOfBoundsOnRandomInput() {
        // Random garbage: every result must be a failure or stay inside the datagram.
        var rng = SplitMix64(seed: 42)
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 80)
            var bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            if n > 0, rng.next() % 2 == 0 { bytes[0] = 0x80 | (bytes[0] & 0x3F) }  // often version 2
            if case .success(let h) = parseRTP(bytes) {
                #expect(h.payloadOffset >= 12 && h.payloadLength >= 0 && h.payloadOffset + h.payloadLength <= n)
            }
        }
    }

    @Test func parsesAtTheBufferReaderIndex() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 32)
        buffer.writeBytes([9, 9, 9])
        RTPPacket.writeHeader(payloadType: 8, sequence: 7, timestamp: 160, ssrc: 1, into: &buffer)
        buffer.writeBytes([1, 2])
        buffer.moveReaderIndex(forwardBy: 3)
        let h = try RTPPacket.parse(buffer).get()
        #expect(h.payloadType == 8 && h.sequenceNumber == 7 && h.payloadOffset == 12 && h.payloadLength == 2)
    }
}

/// A small deterministic PRNG for tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
