import NIOCore

/// Why a datagram is not a usable RTP packet.
public enum RTPParseError: Error, Sendable, Equatable {
    /// Fewer than the 12 bytes of the fixed header.
    case tooShort
    /// The version field is not 2.
    case badVersion
    /// The CSRC list runs past the end of the datagram.
    case csrcPastEnd
    /// The header extension runs past the end of the datagram.
    case extensionPastEnd
    /// The padding count is 0 or larger than what follows the header.
    case badPadding
}

/// The fields of an RTP header (RFC 3550) and where its payload lies, read in place.
public struct RTPHeaderView: Sendable, Equatable {
    public var version: UInt8
    public var padding: Bool
    public var hasExtension: Bool
    public var csrcCount: UInt8
    public var marker: Bool
    public var payloadType: UInt8
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    /// Offset of the payload from the first byte of the packet (12 with no CSRC and no extension).
    public var payloadOffset: Int
    /// Payload length in bytes, without padding.
    public var payloadLength: Int

    public init(version: UInt8 = 2, padding: Bool = false, hasExtension: Bool = false, csrcCount: UInt8 = 0,
                marker: Bool = false, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32,
                payloadOffset: Int = 12, payloadLength: Int) {
        self.version = version
        self.padding = padding
        self.hasExtension = hasExtension
        self.csrcCount = csrcCount
        self.marker = marker
        self.payloadType = payloadType
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payloadOffset = payloadOffset
        self.payloadLength = payloadLength
    }

    /// The range of the payload within the packet's bytes.
    public var payloadRange: Range<Int> { payloadOffset..<(payloadOffset + payloadLength) }

    /// Parses an RTP header; every length is bounds-checked and nothing is allocated.
    @inlinable
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<RTPHeaderView, RTPParseError> {
        RTPPacket.parse(bytes)
    }

    /// Parses the readable bytes of `buffer` (offsets are relative to its reader index).
    @inlinable
    public static func parse(_ buffer: ByteBuffer) -> Result<RTPHeaderView, RTPParseError> {
        buffer.withUnsafeReadableBytes { RTPPacket.parse($0) }
    }
}

/// RTP packet parsing and writing.
public enum RTPPacket {
    /// The size of the fixed header written by `writeHeader`.
    public static let fixedHeaderSize = 12

    @inlinable
    static func readUInt16(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt16 {
        UInt16(b[i]) << 8 | UInt16(b[i + 1])
    }

    @inlinable
    static func readUInt32(_ b: UnsafeRawBufferPointer, _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }

    /// Parses an RTP header (CSRC list, header extension and padding included); every length is
    /// bounds-checked and nothing is allocated.
    @inlinable
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<RTPHeaderView, RTPParseError> {
        let count = bytes.count
        guard count >= 12 else { return .failure(.tooShort) }
        let b0 = bytes[0]
        let b1 = bytes[1]
        let version = b0 >> 6
        guard version == 2 else { return .failure(.badVersion) }
        let padding = b0 & 0x20 != 0
        let hasExtension = b0 & 0x10 != 0
        let csrcCount = b0 & 0x0F
        var offset = 12 + Int(csrcCount) * 4
        guard offset <= count else { return .failure(.csrcPastEnd) }
        if hasExtension {
            guard offset + 4 <= count else { return .failure(.extensionPastEnd) }
            let words = Int(readUInt16(bytes, offset + 2))
            offset += 4 + words * 4
            guard offset <= count else { return .failure(.extensionPastEnd) }
        }
        var payloadLength = count - offset
        if padding {
            guard payloadLength > 0 else { return .failure(.badPadding) }
            let padCount = Int(bytes[count - 1])
            guard padCount >= 1, padCount <= payloadLength else { return .failure(.badPadding) }
            payloadLength -= padCount
        }
        return .success(RTPHeaderView(
            version: version, padding: padding, hasExtension: hasExtension, csrcCount: csrcCount,
            marker: b1 & 0x80 != 0, payloadType: b1 & 0x7F,
            sequenceNumber: readUInt16(bytes, 2), timestamp: readUInt32(bytes, 4), ssrc: readUInt32(bytes, 8),
            payloadOffset: offset, payloadLength: payloadLength))
    }

    /// Parses the readable bytes of `buffer` (offsets are relative to its reader index).
    @inlinable
    public static func parse(_ buffer: ByteBuffer) -> Result<RTPHeaderView, RTPParseError> {
        buffer.withUnsafeReadableBytes { parse($0) }
    }

    /// Appends a 12-byte RTP v2 header (no padding, extension or CSRC) to `buffer`.
    @inlinable
    public static func writeHeader(payloadType: UInt8, marker: Bool = false, sequence: UInt16, timestamp: UInt32,
                                   ssrc: UInt32, into buffer: inout ByteBuffer) {
        // One write, not five: each `writeInteger` checks capacity and uniqueness on its own.
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 12) { header in
            header[0] = 0x80
            header[1] = (marker ? 0x80 : 0) | (payloadType & 0x7F)
            header.storeBytes(of: sequence.bigEndian, toByteOffset: 2, as: UInt16.self)
            header.storeBytes(of: timestamp.bigEndian, toByteOffset: 4, as: UInt32.self)
            header.storeBytes(of: ssrc.bigEndian, toByteOffset: 8, as: UInt32.self)
            return 12
        }
    }
}

extension RTPHeaderView {
    /// Appends a 12-byte RTP v2 header (no padding, extension or CSRC) to `buffer`.
    @inlinable
    public static func writeHeader(payloadType: UInt8, marker: Bool = false, sequence: UInt16, timestamp: UInt32,
                                   ssrc: UInt32, into buffer: inout ByteBuffer) {
        RTPPacket.writeHeader(payloadType: payloadType, marker: marker, sequence: sequence, timestamp: timestamp,
                              ssrc: ssrc, into: &buffer)
    }
}
