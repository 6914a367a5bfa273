import FoneAISim
import Foundation
import Testing

/// One call end to end through the real daemon: audio pitch both ways, the AI's `end`, and
/// nothing left behind in the simulated Asterisk.
@Suite(.serialized) struct CallPathTests {
    @Test func toneBothWaysThenAIEndsWithSessionId() async throws {
        let ai = try await AITestServer.start(mode: .script([
            .waitForAudio(minFrames: 25),
            .sendTone(hz: 1000, seconds: 1.0, sampleRate: 16000, chunkMs: 100, paced: false),
            .end(sessionId: "s-42", variables: ["intent": "billing"]),
        ]))
        let harness = try await Harness.start(aiURL: ai.url)
        let call = await harness.asterisk.placeCall(.dialplan(exten: "100", apiKey: "k-123", callerNumber: "5551234",
                                                              callerName: "Alice", custom: #"{"lang":"en"}"#,
                                                              audio: .tone(hz: 440, seconds: 6)))
        let outcome = await call.waitForEnd(timeout: .seconds(10))
        #expect(outcome == .continued(context: "foneai-in", exten: "100", priority: 6))
        let variables = await call.variables()
        #expect(variables["sessionId"] == "s-42")
        #expect(variables["intent"] == "billing")
        #expect(variables["FONEAI_STATUS"] == "completed")

        let session = try #require(await ai.waitForSession(0, timeout: .seconds(3)) { $0.closed })
        let start = try #require(session.start)
        #expect(start.channelId == call.id)
        #expect(start.campaign == "100")
        #expect(start.apiKey == "k-123")
        #expect(start.callerNumber == "5551234")
        #expect(start.custom?["lang"]?.stringValue == "en")
        #expect(start.sampleRate == 16000)
        #expect(session.stopReason == "ended")

        // The caller's 440 Hz reaches the AI as 16 kHz PCM of the same pitch.
        let toAI = ToneAnalysis.dominantFrequency(session.receivedAudio, sampleRate: 16000)
        #expect(abs(toAI - 440) < 10, "AI heard \(toAI) Hz")
        // The AI's 1 kHz reaches the caller at 1 kHz (8 kHz L16, PT 11), all of it, before the call continues.
        let heard = await call.heardAudio()
        let toCaller = ToneAnalysis.dominantFrequency(heard, sampleRate: 8000)
        #expect(abs(toCaller - 1000) < 15, "caller heard \(toCaller) Hz")
        let heardSeconds = Double(ToneAnalysis.activeSampleCount(heard, sampleRate: 8000)) / 8000
        #expect(heardSeconds > 0.9, "caller heard \(heardSeconds) s of the 1 s reply")
        let packets = await call.heardPackets()
        #expect(packets.allSatisfy { $0.payloadType == 11 })
        #expect(Set(packets.map(\.ssrc)).count == 1)

        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    @Test func callerHangsUpMidCall() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url)
        let call = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 10), hangupAfter: .seconds(1.5)))
        #expect(await call.waitForEnd(timeout: .seconds(5)) == .hungUp(byCaller: true))
        let session = try #require(await ai.waitForSession(0, timeout: .seconds(3)) { $0.closed })
        #expect(session.stopReason == "caller_hangup")
        #expect(session.binaryFrameCount > 20, "AI got \(session.binaryFrameCount) frames")
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    @Test func transferSetsVariablesAndCanJump() async throws {
        let ai = try await AITestServer.start(mode: .perCall { start in
            .script([.transfer(context: "sales", extension: "200", jump: start.callerNumber == "jump", sessionId: "s-7")])
        })
        let harness = try await Harness.start(aiURL: ai.url)
        let plain = await harness.asterisk.placeCall(.dialplan(callerNumber: "plain"))
        let jump = await harness.asterisk.placeCall(.dialplan(callerNumber: "jump"))
        #expect(await plain.waitForEnd(timeout: .seconds(5)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await jump.waitForEnd(timeout: .seconds(5)) == .continued(context: "sales", exten: "200", priority: 1))
        for call in [plain, jump] {
            let variables = await call.variables()
            #expect(variables["transferContext"] == "sales")
            #expect(variables["transferExtension"] == "200")
            #expect(variables["sessionId"] == "s-7")
            #expect(variables["FONEAI_STATUS"] == "transfer")
        }
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    @Test func aiHangupHangsUpTheCaller() async throws {
        let ai = try await AITestServer.start(mode: .script([.hangup(sessionId: "s-9")]))
        let harness = try await Harness.start(aiURL: ai.url)
        let call = await harness.asterisk.placeCall(.dialplan())
        #expect(await call.waitForEnd(timeout: .seconds(5)) == .hungUp(byCaller: false))
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    /// A silent caller sends no RTP at all; the AI's audio must still reach it.
    @Test func silentCallerStillHearsTheAI() async throws {
        let ai = try await AITestServer.start(mode: .script([
            .sendTone(hz: 600, seconds: 1.0, sampleRate: 24000, chunkMs: 200, paced: false),
            .wait(.milliseconds(1500)),
            .end(sessionId: "s-silent"),
        ]))
        let harness = try await Harness.start(aiURL: ai.url)
        let call = await harness.asterisk.placeCall(.dialplan(audio: .silence))
        #expect(await call.waitForEnd(timeout: .seconds(8)) != nil)
        #expect(call.rtpPacketsSent == 0)
        let heard = await call.heardAudio()
        let frequency = ToneAnalysis.dominantFrequency(heard, sampleRate: 8000)
        #expect(abs(frequency - 600) < 15, "caller heard \(frequency) Hz")
        await harness.stop()
        await ai.stop()
    }

    /// DTMF from the caller reaches the AI; marks come back when playback reaches them; `clear`
    /// drops queued audio at once.
    @Test func dtmfMarksAndClear() async throws {
        let ai = try await AITestServer.start(mode: .script([
            .sendTone(hz: 800, seconds: 0.4, sampleRate: 16000, chunkMs: 400, paced: false),
            .sendMark("after-beep"),
            .waitForMark("after-beep", timeout: .seconds(3)),
            .sendTone(hz: 800, seconds: 8, sampleRate: 16000, chunkMs: 1000, paced: false),
            .sendMark("never-played"),
            .wait(.milliseconds(500)),
            .clear,
            .waitForMark("never-played", timeout: .seconds(3)),
            .wait(.milliseconds(800)),
            .end(sessionId: "s-m"),
        ]))
        let harness = try await Harness.start(aiURL: ai.url)
        let call = await harness.asterisk.placeCall(.dialplan())
        try await Task.sleep(for: .milliseconds(300))
        await call.sendDTMF("5")
        #expect(await call.waitForEnd(timeout: .seconds(10)) != nil)
        let session = try #require(await ai.waitForSession(0, timeout: .seconds(3)) { $0.closed })
        #expect(session.dtmfDigits == ["5"])
        #expect(session.marksEchoed == ["after-beep", "never-played"])
        // 0.4 s + about 0.5 s of the 8 s tone: clear cut the rest.
        let heardSeconds = Double(ToneAnalysis.activeSampleCount(await call.heardAudio(), sampleRate: 8000)) / 8000
        #expect(heardSeconds > 0.6 && heardSeconds < 2.0, "caller heard \(heardSeconds) s")
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }
}
