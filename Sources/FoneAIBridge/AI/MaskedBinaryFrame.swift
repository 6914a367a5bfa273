import NIOCore

/// A client's binary WebSocket frame (RFC 6455 §5.2) as wire bytes: header, mask key, masked
/// payload, in one buffer.
///
/// Caller audio goes to the AI this way, written past NIO's `WebSocketFrameEncoder` (which still
/// encodes every other frame). The encoder masks a byte at a time and, as the frame it is handed
/// still holds the payload, first copies it: callgrind put that at 18 % of the daemon's
/// instructions. Here the payload is masked eight bytes at a time while being copied in.
enum MaskedBinaryFrame {
    /// Replaces `frame`'s contents with the frame; its storage is reused when nothing else holds
    /// it (NIO lets go of a written buffer once the kernel has its bytes).
    /// `mask`'s bytes in memory order (little-endian) are the frame's masking key.
    static func write(payload: ByteBuffer, mask: UInt32, into frame: inout ByteBuffer) {
        let length = payload.readableBytes
        let lengthBytes = length < 126 ? 0 : length <= 0xFFFF ? 2 : 8
        let headerBytes = 2 + lengthBytes + 4
        frame.clear(minimumCapacity: headerBytes + length)
        // Header, key and payload in one write: a `writeInteger` for each header field cost
        // more than masking the payload.
        payload.withUnsafeReadableBytes { source in
            frame.writeWithUnsafeMutableBytes(minimumWritableBytes: headerBytes + length) { target in
                target[0] = 0x82  // FIN, binary
                switch lengthBytes {
                case 0:
                    target[1] = 0x80 | UInt8(length)
                case 2:
                    target[1] = 0x80 | 126
                    target.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
                default:
                    target[1] = 0x80 | 127
                    target.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
                }
                target.storeBytes(of: mask.littleEndian, toByteOffset: 2 + lengthBytes, as: UInt32.self)
                copyMasked(source, to: UnsafeMutableRawBufferPointer(rebasing: target[headerBytes...]), mask: mask)
                return headerBytes + length
            }
        }
    }

    /// `target[i] = source[i] ^ key[i % 4]`, for all of `source`.
    static func copyMasked(_ source: UnsafeRawBufferPointer, to target: UnsafeMutableRawBufferPointer, mask: UInt32) {
        let count = source.count
        let wideMask = UInt64(mask) | UInt64(mask) << 32
        var i = 0
        while i + 8 <= count {
            let word = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i, as: UInt64.self)) ^ wideMask
            target.storeBytes(of: word.littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count {
            target[i] = source[i] ^ UInt8(truncatingIfNeeded: mask >> (8 * UInt32(i & 3)))
            i += 1
        }
    }
}
