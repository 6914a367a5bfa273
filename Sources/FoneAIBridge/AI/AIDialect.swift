import NIOCore

/// One WebSocket message to the AI.
public enum AIWireMessage: Sendable {
    case text(String)
    case binary(ByteBuffer)
}

/// What arrives from the AI, in dialect-neutral form.
public enum AIInbound: Sendable {
    /// PCM16LE audio; `sampleRate` nil means "the rate the AI declared with `format`".
    case audio(ByteBuffer, sampleRate: Int?)
    case message(AIInboundMessage)
    /// A frame that belongs to the dialect but needs no action (e.g. a keep-alive).
    case ignored
}

/// One wire format for talking to AI servers: the native protocol or Twilio Media Streams
/// (docs/ai-protocol.md). A dialect instance serves one call; it may keep state (sequence
/// numbers, a resampler); it is used on its session's event loop only.
public protocol AIDialect: Sendable {
    /// Text frames sent once the socket opens.
    func openingMessages(for call: AICallInfo) -> [String]
    /// One frame of caller audio (PCM16LE at the call's inbound rate).
    func encodeCallerAudio(_ pcm: ByteBuffer) -> AIWireMessage?
    func encode(_ message: AIOutboundMessage) -> String?
    func decodeText(_ text: String) throws(AIInboundMessage.DecodeError) -> AIInbound
    func decodeBinary(_ data: ByteBuffer) throws(AIInboundMessage.DecodeError) -> AIInbound
}

public enum AIProtocol: String, Sendable, CaseIterable {
    case native
    case twilio

    public func makeDialect(call: AICallInfo) -> any AIDialect {
        switch self {
        case .native: NativeDialect()
        case .twilio: TwilioDialect(call: call)
        }
    }
}

/// docs/ai-protocol.md, native: JSON text for control, raw PCM16LE binary frames for audio.
public struct NativeDialect: AIDialect {
    public init() {}

    public func openingMessages(for call: AICallInfo) -> [String] {
        [AIOutboundMessage.start(call).json()]
    }

    public func encodeCallerAudio(_ pcm: ByteBuffer) -> AIWireMessage? {
        .binary(pcm)
    }

    public func encode(_ message: AIOutboundMessage) -> String? {
        message.json()
    }

    public func decodeText(_ text: String) throws(AIInboundMessage.DecodeError) -> AIInbound {
        .message(try AIInboundMessage.decode(text))
    }

    public func decodeBinary(_ data: ByteBuffer) throws(AIInboundMessage.DecodeError) -> AIInbound {
        .audio(data, sampleRate: nil)
    }
}
