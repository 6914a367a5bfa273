import FoneAIBridge
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Datagrams as they arrive on the RTP socket: parse, then decode the payload exactly as
/// `RTPSocket` and `CallMedia` do, in every inbound format, with and without `swap16`.
enum RTPFuzz {
    static let allocator = ByteBufferAllocator()

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let result = RTPPacket.parse(bytes)

        // The ByteBuffer entry point must agree, with offsets relative to the reader index.
        var buffer = allocator.buffer(capacity: bytes.count + 5)
        buffer.writeBytes([0xDE, 0xAD, 0xBE, 0xEF, 0x80])
        buffer.writeBytes(bytes)
        buffer.moveReaderIndex(forwardBy: 5)
        fuzzCheck(RTPHeaderView.parse(buffer) == result, "parse(ByteBuffer) differs from parse(UnsafeRawBufferPointer)")

        guard case .success(let header) = result else {
            if bytes.count >= 12, bytes[0] >> 6 == 2, bytes[0] & 0x3F == 0 {
                fuzzCheck(false, "a v2 packet with no CSRC, extension or padding was rejected: \(result)")
            }
            return
        }
        let count = bytes.count
        fuzzCheck(count >= 12 && header.version == 2, "accepted a packet shorter than 12 bytes or not version 2")
        fuzzCheck(header.payloadOffset >= 12 + 4 * Int(header.csrcCount), "payload starts inside the CSRC list")
        fuzzCheck(header.payloadLength >= 0, "negative payload length \(header.payloadLength)")
        fuzzCheck(header.payloadOffset + header.payloadLength <= count,
                  "payload \(header.payloadRange) runs past the \(count)-byte packet")
        fuzzCheck(header.payloadType == bytes[1] & 0x7F && header.marker == (bytes[1] & 0x80 != 0), "PT/marker misread")

        // Exactly what RTPSocket.channelRead does.
        let payload = UnsafeRawBufferPointer(rebasing: bytes[header.payloadOffset ..< header.payloadOffset + header.payloadLength])
        let payloadBuffer = buffer.getSlice(at: buffer.readerIndex + header.payloadOffset, length: header.payloadLength)
        fuzzCheck(payloadBuffer != nil, "payload range not inside the ByteBuffer")

        for format in InboundAudioFormat.allCases {
            for swap16 in [true, false] {
                // As CallMedia.receive: capacity payload.count * 2.
                var pcm = allocator.buffer(capacity: payload.count * 2)
                InboundDecoder.appendPCM16LE(payload: payload, format: format, swap16: swap16, to: &pcm)
                let expected: Int
                switch format {
                case .slin16, .slin: expected = payload.count & ~1
                case .ulaw, .alaw: expected = payload.count * 2
                }
                fuzzCheck(pcm.readableBytes == expected,
                          "\(format) swap16=\(swap16): \(payload.count) payload bytes gave \(pcm.readableBytes) PCM bytes, expected \(expected)")
                // Reference decoding, byte by byte.
                var expectedBytes = [UInt8]()
                expectedBytes.reserveCapacity(expected)
                switch format {
                case .slin16, .slin:
                    var i = 0
                    while i + 1 < payload.count {
                        expectedBytes.append(payload[swap16 ? i + 1 : i])
                        expectedBytes.append(payload[swap16 ? i : i + 1])
                        i += 2
                    }
                case .ulaw, .alaw:
                    for byte in payload {
                        let sample = UInt16(bitPattern: format == .ulaw ? G711.ulawDecode(byte) : G711.alawDecode(byte))
                        expectedBytes.append(UInt8(truncatingIfNeeded: sample))
                        expectedBytes.append(UInt8(truncatingIfNeeded: sample >> 8))
                    }
                }
                let same = pcm.withUnsafeReadableBytes { out in
                    expectedBytes.withUnsafeBytes { ref in out.count == ref.count && (ref.isEmpty || memcmp(out.baseAddress!, ref.baseAddress!, ref.count) == 0) }
                }
                fuzzCheck(same, "\(format) swap16=\(swap16): wrong samples")
                // The ByteBuffer overload (not consumed) gives the same bytes.
                var viaBuffer = allocator.buffer(capacity: 0)
                InboundDecoder.appendPCM16LE(payload: payloadBuffer!, format: format, swap16: swap16, to: &viaBuffer)
                fuzzCheck(viaBuffer == pcm, "\(format) swap16=\(swap16): ByteBuffer overload differs")
            }
        }
    }
}
