import FoneAIControl
import NIOCore
import NIOEmbedded

/// Bytes written to the control socket: framed by `ControlLineDecoder` (in one write, and again
/// in small pieces, which must give the same frames), then each line decoded the way
/// ControlServer.handle(line:) does. The whole input is also decoded as the responses foneaictl reads.
enum ControlFuzz {
    /// Small, so that the too-long path is reached by small inputs.
    static let maxLength = 200
    static let pieces = [1, 7, 64, 3, 250, 2]

    /// ControlServer's fallback when a request does not decode: read just the id.
    struct IDProbe: Decodable {
        var id: Int?
    }

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let whole = frames(bytes, pieceSizes: nil)
        let split = frames(bytes, pieceSizes: pieces)
        fuzzCheck(whole == split, "framing depends on how the bytes arrive: \(whole) vs \(split)")

        for (index, frame) in whole.enumerated() {
            switch frame {
            case .tooLong:
                fuzzCheck(index == whole.count - 1, "a frame followed .tooLong")
            case .line(let line):
                let view = line.readableBytesView
                fuzzCheck(view.count <= maxLength, "a \(view.count)-byte line passed maxLength \(maxLength)")
                fuzzCheck(!view.contains(UInt8(ascii: "\n")), "a line contains a newline")
                handle(line: line)
            }
        }
        // The whole input as one line, so long requests reach the JSON decoder too; and as a
        // response, which foneaictl decodes.
        var line = ByteBuffer()
        line.writeBytes(bytes)
        handle(line: line)
        _ = try? ControlJSON.decode(ControlResponse<StatusInfo>.self, from: line)
        _ = try? ControlJSON.decode(ControlResponse<CallsResult>.self, from: line)
        _ = try? ControlJSON.decode(ControlResponse<StatsSnapshot>.self, from: line)
        _ = try? ControlJSON.decode(ControlResponse<NoResult>.self, from: line)
    }

    /// ControlServer.handle(line:) up to the command dispatch.
    static func handle(line: ByteBuffer) {
        if line.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
        do {
            let request = try ControlJSON.decode(ControlRequest.self, from: line)
            _ = request.command?.isMutating
            let args = request.args ?? ControlArguments()
            _ = args.isEmpty
            _ = try ControlJSON.encodeLine(request)
        } catch {
            _ = (try? ControlJSON.decode(IDProbe.self, from: line))?.id
            _ = "\(error)"
        }
    }

    /// Frames produced by a ControlLineDecoder in a channel pipeline, then EOF.
    static func frames(_ bytes: UnsafeRawBufferPointer, pieceSizes: [Int]?) -> [ControlLineFrame] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(ControlLineDecoder(maxLength: maxLength)))
        var out: [ControlLineFrame] = []
        func drain() {
            while let frame = try? channel.readInbound(as: ControlLineFrame.self) { out.append(frame) }
        }
        var offset = 0
        var piece = 0
        while offset < bytes.count {
            let size = pieceSizes.map { $0[piece % $0.count] } ?? bytes.count
            piece += 1
            let end = min(bytes.count, offset + size)
            var buffer = channel.allocator.buffer(capacity: end - offset)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            do {
                try channel.writeInbound(buffer)
            } catch {
                fuzzCheck(false, "ControlLineDecoder threw \(error)")
            }
            drain()
            offset = end
        }
        do {
            _ = try channel.finish()
        } catch {
            fuzzCheck(false, "ControlLineDecoder threw at EOF: \(error)")
        }
        drain()
        return out
    }
}
