import FoneAISim
import Foundation
import Testing

/// Issue 5 end to end: the real daemon in each AI dialect (native, Twilio Media Streams) × media
/// transport (UnicastRTP, Asterisk's WebSocket media channel), against the simulator; wideband
/// audio over the WebSocket transport (which RTP cannot carry); MEDIA_XOFF/MEDIA_XON honoured.
@Suite(.serialized) struct DialectTransportTests {
    enum Transport: String { case rtp, websocket }

    static func start(ai: AITestServer, transport: Transport) async throws -> Harness {
        try await Harness.start(aiURL: ai.url, extra: [
            "ai": ["protocol": ai.dialect.rawValue],
            "media": ["transport": transport.rawValue],
        ])
    }

    // MARK: one call per dialect × transport

    @Test func nativeOverRTP() async throws { try await fullCall(.native, .rtp) }
    @Test func nativeOverWebSocket() async throws { try await fullCall(.native, .websocket) }
    @Test func twilioOverRTP() async throws { try await fullCall(.twilio, .rtp) }
    @Test func twilioOverWebSocket() async throws { try await fullCall(.twilio, .websocket) }

    /// Caller 440 Hz → AI; AI 1 kHz → caller; a mark reached; a long reply cut by `clear` (its
    /// pending mark returned at once); DTMF; `end` with a sessionId and variables; nothing leaked.
    func fullCall(_ dialect: AITestDialect, _ transport: Transport) async throws {
        let label = "\(dialect.rawValue)/\(transport.rawValue)"
        let ai = try await AITestServer.start(mode: .script([
            .waitForAudio(minFrames: 25),
            .sendTone(hz: 1000, seconds: 1.0, sampleRate: 16000, chunkMs: 100, paced: false),
            .sendMark("after-reply"),
            .waitForMark("after-reply", timeout: .seconds(5)),
            .sendTone(hz: 1000, seconds: 8, sampleRate: 16000, chunkMs: 1000, paced: false),
            .sendMark("never-played"),
            .wait(.milliseconds(500)),
            .clear,
            .waitForMark("never-played", timeout: .seconds(3)),
            .wait(.milliseconds(300)),
            .end(sessionId: "s-\(dialect.rawValue)-\(transport.rawValue)", variables: ["intent": "billing"]),
        ]), dialect: dialect)
        let harness = try await Self.start(ai: ai, transport: transport)
        let call = await harness.asterisk.placeCall(.dialplan(exten: "100", apiKey: "k-123", callerNumber: "5551234",
                                                              callerName: "Alice", custom: #"{"lang":"en"}"#,
                                                              audio: .tone(hz: 440, seconds: 10)))
        _ = await ai.waitForSession(0, timeout: .seconds(5)) { $0.start != nil }
        try await Task.sleep(for: .milliseconds(200))
        await call.sendDTMF("5")

        let outcome = await call.waitForEnd(timeout: .seconds(15))
        #expect(outcome == .continued(context: "foneai-in", exten: "100", priority: 6), "\(label): \(harness.daemon.log.suffix(3000))")
        let variables = await call.variables()
        #expect(variables["sessionId"] == "s-\(dialect.rawValue)-\(transport.rawValue)")
        #expect(variables["intent"] == "billing")
        #expect(variables["FONEAI_STATUS"] == "completed")

        let session = try #require(await ai.waitForSession(0, timeout: .seconds(3)) { $0.closed })
        let start = try #require(session.start)
        #expect(start.channelId == call.id)
        #expect(start.campaign == "100")
        #expect(start.apiKey == "k-123")
        #expect(start.callerNumber == "5551234")
        #expect(start.callerName == "Alice")
        #expect(start.custom?["lang"]?.stringValue == "en")
        #expect(session.stopReceived, "\(label): no stop")
        #expect(session.dtmfDigits == ["5"], "\(label)")
        #expect(session.marksEchoed == ["after-reply", "never-played"], "\(label)")
        #expect(session.malformedMessages == 0 && session.unknownMessages == 0)
        switch dialect {
        case .native:
            #expect(start.sampleRate == 16000)  // slin16 over RTP; always 16 kHz over the WebSocket
            #expect(session.stopReason == "ended")
        case .twilio:
            let twilio = try #require(session.twilio)
            #expect(twilio.protocolErrors.isEmpty, "\(label): \(twilio.protocolErrors.prefix(5))")
            #expect(Array(twilio.events.prefix(2)) == ["connected", "start"])
            #expect(twilio.events.last == "stop")
            #expect(start.sampleRate == 8000 && start.encoding == "audio/x-mulaw" && start.channels == 1)
            #expect(start.callSid == call.id)
            #expect(start.customParameters["callId"]?.hasPrefix("foneai-") == true)
            #expect(start.customParameters["custom"] == #"{"lang":"en"}"#)
            #expect(twilio.stopCallSid == call.id)
            #expect(twilio.dtmfTracks == ["inbound_track"])
            #expect(twilio.mediaEvents > 25)
            #expect(Set(twilio.payloadSizes) == [160], "\(label): payload sizes \(Set(twilio.payloadSizes))")  // 20 ms of 8 kHz μ-law
            #expect(twilio.timestamps == twilio.chunks.map { ($0 - 1) * 20 })
            #expect(session.binaryFrameCount == 0)
        }

        // The caller's 440 Hz reaches the AI at the same pitch, at the rate the dialect announced.
        let toAI = ToneAnalysis.dominantFrequency(session.receivedAudio, sampleRate: session.receivedSampleRate)
        #expect(abs(toAI - 440) < 10, "\(label): AI heard \(toAI) Hz")

        // The AI's 1 kHz reaches the caller at 1 kHz: 1 s, then about 0.5 s of the long reply
        // before `clear` cut it.
        let heard = await call.heard()
        #expect(heard.transport == (transport == .rtp ? .rtp : .websocket))
        #expect(heard.sampleRate == (transport == .rtp ? 8000 : 16000))
        let toCaller = ToneAnalysis.dominantFrequency(heard.samples, sampleRate: heard.sampleRate)
        #expect(abs(toCaller - 1000) < 15, "\(label): caller heard \(toCaller) Hz")
        let heardSeconds = Double(ToneAnalysis.activeSampleCount(heard.samples, sampleRate: heard.sampleRate)) / Double(heard.sampleRate)

        switch transport {
        case .rtp:
            // (The upper bound leaves room for a loaded machine; the cut reply alone is 8 s.)
            #expect(heardSeconds > 1.2 && heardSeconds < 4.0, "\(label): caller heard \(heardSeconds) s")
            let packets = await call.heardPackets()
            #expect(!packets.isEmpty && packets.allSatisfy { $0.payloadType == 11 })
            #expect(await call.mediaWebSocketStats == nil)
        case .websocket:
            #expect(call.rtpPacketsHeard == 0)
            let ws = try #require(await call.mediaWebSocketStats)
            #expect(ws.offeredSubprotocols == ["media"])
            #expect(ws.authorizationHeader?.hasPrefix("Basic ") == true)
            #expect(ws.channelName.hasPrefix("WebSocket/INCOMING/"))
            #expect(ws.textsSentToApp.first?.hasPrefix("MEDIA_START connection_id:\(ws.connectionID) channel:WebSocket/INCOMING/") == true)
            #expect(Set(ws.binaryMessageSizes) == [640], "\(label): frame sizes \(Set(ws.binaryMessageSizes))")
            #expect(ws.partialBytesDropped == 0 && ws.messagesDroppedQueueFull == 0)
            #expect(ws.commandsReceived.contains("FLUSH_MEDIA"), "\(label): commands \(ws.commandsReceived)")
            #expect(ws.textsSentToApp.contains { $0.hasPrefix("DTMF_END digit:5") })
            #expect(ws.xoffSentNanos.isEmpty)
            // The bridge sent 1 s + about 0.5 s (+ silent tails) and stopped at `clear`. Asterisk
            // queues what it gets (no jitter buffer): a stall of this test process shows up as queue
            // depth, played late, flushed by FLUSH_MEDIA or discarded when the call ends, so the
            // caller's share is checked together with those.
            let sentSeconds = Double(ws.framesQueued) * 0.02
            #expect(sentSeconds > 1.3 && sentSeconds < 4.0, "\(label): bridge sent \(sentSeconds) s")
            #expect(ws.framesPlayed + ws.framesFlushed + ws.framesDiscardedAtClose == ws.framesQueued)
            let notPlayed = Double(ws.framesFlushed + ws.framesDiscardedAtClose) * 0.02
            #expect(heardSeconds > 0.5 && heardSeconds + notPlayed > 1.2 && heardSeconds < 4.0,
                    "\(label): caller heard \(heardSeconds) s, \(notPlayed) s flushed or discarded")
            // Paced: one frame per 20 ms, not bursts.
            let arrivals = ws.binaryArrivalNanos
            let gaps = zip(arrivals.dropFirst(), arrivals).map { Double($0 - $1) / 1e6 }.sorted()
            let median = gaps.isEmpty ? 0 : gaps[gaps.count / 2]
            #expect(median > 17 && median < 23, "\(label): median gap between frames \(median) ms")
            #expect(ws.framesSentToApp > 25)
            // The bridge closes the media socket itself during clean-up (Asterisk then hangs the
            // channel up), or deletes the channel first (Asterisk closes the socket): either way it is closed.
            #expect(ws.closed, "\(label): media socket still open")
        }

        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    // MARK: wideband

    /// 0.5 s of 1 kHz, then 1 s of 6 kHz, at 16 kHz: above the 4 kHz an 8 kHz path can carry.
    static func widebandScript() -> AITestMode {
        .script([
            .sendTone(hz: 1000, seconds: 0.5, sampleRate: 16000, chunkMs: 100, paced: false),
            .sendTone(hz: 6000, seconds: 1.0, sampleRate: 16000, chunkMs: 100, paced: false),
            .sendMark("done"),
            .waitForMark("done", timeout: .seconds(6)),
            .wait(.milliseconds(100)),
            .end(sessionId: "s-wide"),
        ])
    }

    /// With the WebSocket transport the 6 kHz tone reaches the caller intact, at 16 kHz.
    @Test func sixKilohertzReachesTheCallerOverWebSocket() async throws {
        let ai = try await AITestServer.start(mode: Self.widebandScript())
        let harness = try await Self.start(ai: ai, transport: .websocket)
        let call = await harness.asterisk.placeCall(.dialplan())
        #expect(await call.waitForEnd(timeout: .seconds(10)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        let heard = await call.heardAudio16k()
        let active = ToneAnalysis.activeSamples(heard, sampleRate: 16000)
        let seconds = Double(active.count) / 16000
        // All of it (frames Asterisk still held when the call ended, after a stall, count as sent).
        let ws = try #require(await call.mediaWebSocketStats)
        let discarded = Double(ws.framesDiscardedAtClose) * 0.02
        #expect(seconds + discarded > 1.4 && seconds < 1.7, "caller heard \(seconds) s of the 1.5 s reply (+\(discarded) s discarded)")
        try #require(active.count > 8800 + 3200, "too little heard to analyse: \(seconds) s")
        let firstPart = Array(active[800..<7200])
        let widePart = Array(active[8800...])
        let first = ToneAnalysis.dominantFrequency(firstPart, sampleRate: 16000)
        let wide = ToneAnalysis.dominantFrequency(widePart, sampleRate: 16000)
        #expect(abs(first - 1000) < 15, "first part at \(first) Hz")
        #expect(abs(wide - 6000) < 30, "wideband part at \(wide) Hz")
        // Real energy at 6 kHz, not a trace: about as loud as the 1 kHz part.
        let wideRMS = ToneAnalysis.rms(widePart)
        let firstRMS = ToneAnalysis.rms(firstPart)
        #expect(wideRMS > firstRMS * 0.7, "6 kHz RMS \(wideRMS) vs 1 kHz RMS \(firstRMS)")
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    /// Over UnicastRTP the same reply reaches the caller as 8 kHz audio: the 1 kHz part plays, the
    /// 6 kHz part cannot exist there (above 4 kHz) and must not come out as an alias (2 kHz) either.
    @Test func sixKilohertzCannotCrossRTP() async throws {
        let ai = try await AITestServer.start(mode: Self.widebandScript())
        let harness = try await Self.start(ai: ai, transport: .rtp)
        let call = await harness.asterisk.placeCall(.dialplan())
        #expect(await call.waitForEnd(timeout: .seconds(10)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        let heard = await call.heardAudio()
        #expect(await call.heardAudio16k().isEmpty)
        // The packets did arrive (1.5 s of them), but only the 1 kHz half second carries sound.
        let packets = await call.heardPackets()
        #expect(packets.count >= 70, "caller got \(packets.count) RTP packets")
        let activeSeconds = Double(ToneAnalysis.activeSampleCount(heard, sampleRate: 8000)) / 8000
        #expect(activeSeconds > 0.4 && activeSeconds < 0.7, "caller heard \(activeSeconds) s of sound")
        let frequency = ToneAnalysis.dominantFrequency(heard, sampleRate: 8000)
        #expect(abs(frequency - 1000) < 15, "caller heard \(frequency) Hz")
        // The 6 kHz second: the samples after the 1 kHz part are (near) silent, with no alias.
        let firstLoud = try #require(heard.firstIndex { abs(Int32($0)) > 1000 })
        let tail = Array(heard[min(heard.count, firstLoud + 4400)...])
        #expect(tail.count > 6000, "only \(tail.count) samples after the 1 kHz part")
        let tailRMS = ToneAnalysis.rms(tail)
        #expect(tailRMS < 150, "the 6 kHz part left RMS \(tailRMS) (the 1 kHz part: \(ToneAnalysis.rms(Array(heard[firstLoud..<firstLoud + 3200]))))")
        let alias = ToneAnalysis.goertzelPower(tail[...], frequency: 2000, sampleRate: 8000)
        let reference = ToneAnalysis.goertzelPower(heard[firstLoud..<firstLoud + 3200], frequency: 1000, sampleRate: 8000)
        #expect(alias < reference * 0.001, "alias power \(alias) vs 1 kHz power \(reference)")
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    // MARK: flow control

    /// Asterisk sends MEDIA_XOFF: the bridge sends nothing until MEDIA_XON, then resumes where it
    /// paused (nothing lost, the mark comes later).
    @Test func mediaXoffPausesTheBridgeUntilXon() async throws {
        let ai = try await AITestServer.start(mode: .script([
            .sendTone(hz: 800, seconds: 3.0, sampleRate: 16000, chunkMs: 500, paced: false),
            .sendMark("played"),
            .waitForMark("played", timeout: .seconds(10)),
            .wait(.milliseconds(100)),
            .end(sessionId: "s-xoff"),
        ]))
        let harness = try await Self.start(ai: ai, transport: .websocket)
        let call = await harness.asterisk.placeCall(.dialplan())
        let deadline = ContinuousClock.now + .seconds(5)
        while call.webSocketFramesHeard < 40 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(call.webSocketFramesHeard >= 40)
        #expect(await call.forceMediaXOFF(for: .milliseconds(800)))
        #expect(await call.waitForEnd(timeout: .seconds(10)) == .continued(context: "foneai-in", exten: "100", priority: 6))

        let ws = try #require(await call.mediaWebSocketStats)
        let xoff = try #require(ws.xoffSentNanos.first)
        let xon = try #require(ws.xonSentNanos.first)
        #expect(ws.xoffSentNanos.count == 1 && ws.xonSentNanos.count == 1)
        let pausedMs = Double(xon - xoff) / 1e6
        #expect(pausedMs >= 800 && pausedMs < 900, "XOFF lasted \(pausedMs) ms")
        let ms: UInt64 = 1_000_000
        let before = ws.binaryMessages(from: xoff - 600 * ms, to: xoff)
        // (100 ms of grace: frames the bridge sent before it read MEDIA_XOFF.)
        let during = ws.binaryMessages(from: xoff + 100 * ms, to: xon)
        let after = ws.binaryMessages(from: xon, to: xon + 600 * ms)
        #expect(before >= 20, "\(before) frames in the 600 ms before XOFF")
        #expect(during == 0, "\(during) frames while XOFF was in force")
        #expect(after >= 20, "\(after) frames in the 600 ms after XON")
        // Paused, not dropped: the bridge sent the whole 3 s (+ its silent tail) and the caller
        // heard it (but what Asterisk still held when the call ended), and the mark waited for it.
        let sentSeconds = Double(ws.framesQueued) * 0.02
        #expect(sentSeconds > 2.95 && sentSeconds < 3.2, "bridge sent \(sentSeconds) s")
        let heardSeconds = Double(ToneAnalysis.activeSampleCount(await call.heardAudio16k(), sampleRate: 16000)) / 16000
        let discarded = Double(ws.framesDiscardedAtClose) * 0.02
        #expect(heardSeconds + discarded > 2.8 && heardSeconds < 3.3, "caller heard \(heardSeconds) s (+\(discarded) s discarded)")
        let session = try #require(await ai.waitForSession(0, timeout: .seconds(3)) { $0.closed })
        #expect(session.marksEchoed == ["played"])
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }
}
