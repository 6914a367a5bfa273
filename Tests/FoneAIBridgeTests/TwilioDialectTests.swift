@testable import FoneAIBridge
import Foundation
import NIOCore
import Testing

@Suite struct TwilioDialectTests {
    let call = AICallInfo(callId: "foneai-0123456789ab", channelId: "1795747148.67", callerNumber: "5551234", callerName: "Al",
                          exten: "100", context: "foneai-in", campaign: "100", apiKey: "k", custom: .object(["lang": "en"]),
                          args: [], sampleRate: 16000)

    @Test func openingMessagesFollowTwilio() throws {
        let dialect = TwilioDialect(call: call)
        let messages = try dialect.openingMessages(for: call).map { try JSONValue.parse($0) }
        #expect(messages.count == 2)
        #expect(messages[0]["event"] == "connected")
        #expect(messages[0]["protocol"] == "Call")
        let start = messages[1]
        #expect(start["event"] == "start")
        #expect(start["sequenceNumber"] == "1", "sequence numbers are strings, as Twilio sends them")
        let sid = try #require(start["streamSid"]?.stringValue)
        #expect(sid.hasPrefix("MZ") && sid.count == 34)
        #expect(start["start"]?["streamSid"]?.stringValue == sid)
        #expect(start["start"]?["callSid"] == "1795747148.67")
        #expect(start["start"]?["mediaFormat"] == .object(["encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1]))
        #expect(start["start"]?["customParameters"]?["campaign"] == "100")
        #expect(start["start"]?["customParameters"]?["custom"] == #"{"lang":"en"}"#)
    }

    @Test func callerAudioBecomesMulawMediaEvents() throws {
        let dialect = TwilioDialect(call: call)
        _ = dialect.openingMessages(for: call)
        var pcm = ByteBuffer()
        for i in 0..<320 {
            let phase = Double(i) * 2 * Double.pi * 440 / 16000
            pcm.writeInteger(Int16(sin(phase) * 8000), endianness: .little)
        }
        var chunks: [JSONValue] = []
        for _ in 0..<3 {
            guard case .text(let text)? = dialect.encodeCallerAudio(pcm) else { Issue.record("not text"); return }
            chunks.append(try JSONValue.parse(text))
        }
        #expect(chunks.map { $0["sequenceNumber"] } == ["2", "3", "4"])
        #expect(chunks.map { $0["media"]?["chunk"] } == ["1", "2", "3"])
        #expect(chunks.map { $0["media"]?["timestamp"] } == ["0", "20", "40"])
        #expect(chunks[0]["media"]?["track"] == "inbound")
        let base64 = try #require(chunks[2]["media"]?["payload"]?.stringValue)
        let payload = try #require(Data(base64Encoded: base64))
        #expect((150...160).contains(payload.count), "about 160 μ-law bytes per 20 ms, got \(payload.count)")
    }

    @Test func decodesWhatTheAISends() throws {
        let dialect = TwilioDialect(call: call)
        let ulaw = Data([0xFF, 0x00, 0x7F, 0x80]).base64EncodedString()
        guard case .audio(let pcm, let rate) = try dialect.decodeText(#"{"event":"media","streamSid":"MZ1","media":{"payload":"\#(ulaw)"}}"#) else {
            Issue.record("no audio"); return
        }
        #expect(rate == 8000 && pcm.readableBytes == 8)
        guard case .message(.mark("m1")) = try dialect.decodeText(#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}"#) else {
            Issue.record("no mark"); return
        }
        guard case .message(.clear) = try dialect.decodeText(#"{"event":"clear","streamSid":"MZ1"}"#) else { Issue.record("no clear"); return }
        guard case .message(.end(sessionId: "s1", variables: [:])) = try dialect.decodeText(#"{"event":"foneai","foneai":{"type":"end","sessionId":"s1"}}"#) else {
            Issue.record("no end"); return
        }
        #expect(throws: AIInboundMessage.DecodeError.badField("media.payload")) {
            try dialect.decodeText(#"{"event":"media","media":{"payload":"%%%"}}"#)
        }
        #expect(throws: AIInboundMessage.DecodeError.unknownType("dance")) { try dialect.decodeText(#"{"event":"dance"}"#) }
    }

    @Test func markAndStopAreTwilioShaped() throws {
        let dialect = TwilioDialect(call: call)
        let mark = try JSONValue.parse(try #require(dialect.encode(.mark("a"))))
        #expect(mark["event"] == "mark" && mark["mark"]?["name"] == "a")
        let stop = try JSONValue.parse(try #require(dialect.encode(.stop(reason: "ended"))))
        #expect(stop["event"] == "stop" && stop["stop"]?["callSid"] == "1795747148.67")
        let dtmf = try JSONValue.parse(try #require(dialect.encode(.dtmf(digit: "5", durationMs: 100))))
        #expect(dtmf["dtmf"]?["digit"] == "5" && dtmf["dtmf"]?["track"] == "inbound_track")
    }
}
