import FoundationEssentials
import NIOCore
import Synchronization

/// Twilio Media Streams, as Twilio's message reference defines it, so voice-AI stacks written
/// for Twilio (Pipecat, Vocode, …) work unchanged: `connected`, `start`, `media` (base64 μ-law,
/// 8 kHz, 20 ms), `dtmf`, `mark`, `stop`, each with a string `sequenceNumber` and the
/// `streamSid`. From the AI: `media`, `mark`, `clear`, and the extension event `foneai` carrying
/// a native control message (end, transfer, hangup, setVariables).
public final class TwilioDialect: AIDialect {
    let streamSid: String
    let callSid: String
    let accountSid = "ACfoneaibridge00000000000000000000"
    private let inboundRate: Int
    private let state: Mutex<State>

    struct State: ~Copyable {
        var sequence = 0
        var chunk = 0
        var resampler: Resampler
        var samples: [Int16] = []
        var resampled: [Int16] = []
        /// Resampled audio not sent yet: each `media` event carries exactly 20 ms (160 samples),
        /// although the resampler holds a few samples back at first.
        var pending: [Int16] = []
    }

    /// Samples per `media` event: 20 ms at 8 kHz.
    static let frameSamples = 160

    public init(call: AICallInfo) {
        let hex = String(call.callId.filter(\.isHexDigit).prefix(32))
        streamSid = "MZ" + hex + String(repeating: "0", count: 32 - hex.count)
        callSid = call.channelId
        inboundRate = call.sampleRate
        state = Mutex(State(resampler: Resampler(from: call.sampleRate, to: 8000)))
    }

    private func nextSequence() -> String {
        state.withLock { state in
            state.sequence += 1
            return String(state.sequence)
        }
    }

    private func event(_ name: String, _ fields: [String: JSONValue]) -> String {
        var object = fields
        object["event"] = .string(name)
        object["sequenceNumber"] = .string(nextSequence())
        object["streamSid"] = .string(streamSid)
        return JSONValue.object(object).jsonString()
    }

    public func openingMessages(for call: AICallInfo) -> [String] {
        var custom: [String: JSONValue] = [
            "callId": .string(call.callId), "callerNumber": .string(call.callerNumber), "callerName": .string(call.callerName),
            "exten": .string(call.exten), "context": .string(call.context),
        ]
        if let campaign = call.campaign { custom["campaign"] = .string(campaign) }
        if let apiKey = call.apiKey { custom["apiKey"] = .string(apiKey) }
        switch call.custom {
        case .null: break
        case .string(let text): custom["custom"] = .string(text)
        default: custom["custom"] = .string(call.custom.jsonString())
        }
        // Twilio's `connected` carries no sequenceNumber or streamSid.
        let connected = JSONValue.object(["event": "connected", "protocol": "Call", "version": "1.0.0"]).jsonString()
        let start = event("start", ["start": .object([
            "streamSid": .string(streamSid), "accountSid": .string(accountSid), "callSid": .string(callSid),
            "tracks": .array([.string("inbound")]),
            "mediaFormat": .object(["encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1]),
            "customParameters": .object(custom),
        ])])
        return [connected, start]
    }

    /// Caller audio becomes 8 kHz μ-law, base64, one `media` event per 20 ms packet.
    public func encodeCallerAudio(_ pcm: ByteBuffer) -> AIWireMessage? {
        let (payload, chunk) = state.withLock { state -> (String, Int) in
            state.samples.removeAll(keepingCapacity: true)
            PCM16.appendLittleEndian(pcm, to: &state.samples)
            state.resampled.removeAll(keepingCapacity: true)
            state.samples.withUnsafeBufferPointer { state.resampler.process($0, into: &state.resampled) }
            state.pending.append(contentsOf: state.resampled)
            let frame = Self.frameSamples
            if state.pending.count < frame {
                // The first packet comes out of the resampler a little short: lead with silence.
                state.pending.insert(contentsOf: repeatElement(0, count: frame - state.pending.count), at: 0)
            }
            var ulaw = [UInt8]()
            ulaw.reserveCapacity(frame)
            for sample in state.pending[..<frame] { ulaw.append(G711.ulawEncode(sample)) }
            state.pending.removeFirst(frame)
            if state.pending.count > frame * 8 { state.pending.removeFirst(state.pending.count - frame * 8) }
            state.chunk += 1
            return (Data(ulaw).base64EncodedString(), state.chunk)
        }
        // Twilio's timestamp is milliseconds since the stream started, as a string.
        return .text(event("media", ["media": .object([
            "track": "inbound", "chunk": .string(String(chunk)), "timestamp": .string(String((chunk - 1) * 20)),
            "payload": .string(payload),
        ])]))
    }

    public func encode(_ message: AIOutboundMessage) -> String? {
        switch message {
        case .start:
            return nil  // sent as part of openingMessages
        case .dtmf(let digit, _):
            return event("dtmf", ["dtmf": .object(["track": "inbound_track", "digit": .string(digit)])])
        case .mark(let name):
            return event("mark", ["mark": .object(["name": .string(name)])])
        case .stop:
            return event("stop", ["stop": .object(["accountSid": .string(accountSid), "callSid": .string(callSid)])])
        }
    }

    public func decodeText(_ text: String) throws(AIInboundMessage.DecodeError) -> AIInbound {
        guard let value = try? JSONValue.parse(text), case .object(let object) = value else { throw .notJSON }
        guard case .string(let event)? = object["event"] else { throw .badField("event") }
        switch event {
        case "media":
            guard let payload = object["media"]?["payload"]?.stringValue, let bytes = Data(base64Encoded: payload) else {
                throw .badField("media.payload")
            }
            var pcm = ByteBuffer()
            pcm.reserveCapacity(bytes.count * 2)
            for byte in bytes { pcm.writeInteger(G711.ulawDecode(byte), endianness: .little) }
            return .audio(pcm, sampleRate: 8000)
        case "mark":
            guard let name = object["mark"]?["name"]?.stringValue else { throw .badField("mark.name") }
            return .message(.mark(name))
        case "clear":
            return .message(.clear)
        case "foneai":
            guard let inner = object["foneai"], case .object = inner else { throw .badField("foneai") }
            return .message(try AIInboundMessage.decode(inner.jsonString()))
        case "connected", "start", "stop", "dtmf":
            return .ignored
        default:
            throw .unknownType(event)
        }
    }

    public func decodeBinary(_ data: ByteBuffer) throws(AIInboundMessage.DecodeError) -> AIInbound {
        throw .unknownType("binary frame (Twilio media is base64 text)")
    }
}
