import FoneAIBridge
import NIOCore

/// Text frames from the AI server, through the native decoder and every dialect (as
/// AISessionClient does), and the `custom` channel variable as it goes into `start`.
enum AIFuzz {
    static let call = AICallInfo(
        callId: "c-0123456789abcdef", channelId: "1795747148.67", callerNumber: "5551234", callerName: "Alice",
        exten: "100", context: "foneai-in", campaign: "100", apiKey: "k-123", custom: .null, args: [], sampleRate: 16000)

    /// Decoding keeps no state in any dialect, so one instance of each serves every input.
    static let dialects = AIProtocol.allCases.map { $0.makeDialect(call: call) }

    static func run(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            let message = try AIInboundMessage.decode(text)
            _ = "\(message)"
            if case .format(let rate) = message {
                fuzzCheck((8000...48000).contains(rate), "format accepted sampleRate \(rate)")
            }
        } catch {
            _ = error.description
        }

        for dialect in dialects {
            do {
                _ = try dialect.decodeText(text)
            } catch {
                _ = error.description
            }
            var frame = ByteBuffer()
            frame.writeBytes(bytes)
            _ = try? dialect.decodeBinary(frame)
        }

        // The caller's `custom` variable (attacker-controlled through the dialplan) goes into
        // `start`, which the AI must be able to parse back to the same value.
        let custom = AICallInfo.parseCustom(text)
        var info = call
        info.custom = custom
        let start = AIOutboundMessage.start(info).json()
        guard case .object(let object)? = try? JSONValue.parse(start) else {
            fuzzCheck(false, "start message is not a JSON object: \(start.prefix(200))")
            return
        }
        if isFinite(custom) {
            fuzzCheck(object["custom"] == custom, "custom did not survive start: \(text.prefix(200))")
        }
    }

    /// Non-finite numbers (from "1e999") are written as null, by design.
    static func isFinite(_ value: JSONValue) -> Bool {
        switch value {
        case .number(let d): d.isFinite
        case .array(let a): a.allSatisfy(isFinite)
        case .object(let o): o.values.allSatisfy(isFinite)
        default: true
        }
    }
}
