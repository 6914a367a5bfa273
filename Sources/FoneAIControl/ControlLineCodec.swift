// Newline framing for the control protocol (a small LineBasedFrameDecoder with a length limit).

import FoundationEssentials
import NIOCore

/// One inbound frame: a complete line (without the `\n`, and without a trailing `\r`), or the marker
/// that the peer sent more than `maxLength` bytes without a newline. After `.tooLong` the decoder
/// discards everything else it receives.
public enum ControlLineFrame: Sendable, Equatable {
    case line(ByteBuffer)
    case tooLong
}

public struct ControlLineDecoder: ByteToMessageDecoder {
    public typealias InboundOut = ControlLineFrame

    public let maxLength: Int
    private var scannedBytes = 0
    private var discarding = false

    public init(maxLength: Int = ControlProtocol.maxLineLength) {
        self.maxLength = maxLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if discarding {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let view = buffer.readableBytesView
        let searchStart = view.index(view.startIndex, offsetBy: scannedBytes)
        if let newline = view[searchStart...].firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            scannedBytes = 0
            if length > maxLength {
                discarding = true
                buffer.moveReaderIndex(to: buffer.writerIndex)
                context.fireChannelRead(wrapInboundOut(.tooLong))
                return .needMoreData
            }
            var line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            if line.readableBytesView.last == UInt8(ascii: "\r") {
                line.moveWriterIndex(to: line.writerIndex - 1)
            }
            context.fireChannelRead(wrapInboundOut(.line(line)))
            return .continue
        }
        scannedBytes = view.count
        if view.count > maxLength {
            discarding = true
            scannedBytes = 0
            buffer.moveReaderIndex(to: buffer.writerIndex)
            context.fireChannelRead(wrapInboundOut(.tooLong))
        }
        return .needMoreData
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // An unterminated last line is not a request: drop it.
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}

/// JSON helpers shared by client and server. Each call creates its own coder (they are cheap for
/// control traffic and this keeps everything trivially thread-safe).
public enum ControlJSON {
    /// Encodes a value as one line of compact JSON followed by `\n`.
    public static func encodeLine<T: Encodable>(_ value: T, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        var buffer = allocator.buffer(capacity: data.count + 1)
        buffer.writeBytes(data)
        buffer.writeInteger(UInt8(ascii: "\n"))
        return buffer
    }

    public static func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from string: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(string.utf8))
    }

    /// Pretty-printed JSON with sorted keys, for humans (`foneaictl --json`).
    public static func prettyString<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Compact JSON with sorted keys on one line.
    public static func compactString<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
