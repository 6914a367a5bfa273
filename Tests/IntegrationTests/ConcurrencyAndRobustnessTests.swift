import FoneAISim
import Foundation
import Testing

/// Many calls at once, and hostile input beside them: every call keeps its own audio.
@Suite(.serialized) struct ConcurrencyAndRobustnessTests {
    /// 20 callers with 20 different tones, an echoing AI: each AI session hears only its own
    /// caller, and each caller hears only its own echo.
    @Test func twentyConcurrentCallsStayApart() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url)
        let tones = (0..<20).map { 300.0 + Double($0) * 40 }
        var calls: [(Double, SimCall)] = []
        for tone in tones {
            calls.append((tone, await harness.asterisk.placeCall(.dialplan(callerNumber: "\(Int(tone))", audio: .tone(hz: tone, seconds: 10),
                                                                           hangupAfter: .seconds(3)))))
        }
        for (_, call) in calls { #expect(await call.waitForEnd(timeout: .seconds(10)) == .hungUp(byCaller: true)) }
        let sessions = await ai.waitForSessions(20)
        #expect(sessions.count == 20)
        for session in sessions {
            let tone = Double(session.callerNumber ?? "") ?? -1
            let heard = ToneAnalysis.dominantFrequency(session.receivedAudio, sampleRate: 16000)
            #expect(abs(heard - tone) < 10, "AI session of the \(tone) Hz caller heard \(heard) Hz")
        }
        for (tone, call) in calls {
            let heard = ToneAnalysis.dominantFrequency(await call.heardAudio(), sampleRate: 8000)
            #expect(abs(heard - tone) < 10, "the \(tone) Hz caller heard \(heard) Hz back")
        }
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    /// RTP from an unknown source, unknown and broken ARI events, and an ARI events socket that
    /// drops and comes back: the call in progress keeps flowing and ends normally.
    @Test func hostileInputAndAnARIDropLeaveTheCallAlone() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url)
        let call = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 523, seconds: 10), hangupAfter: .seconds(4)))
        try await Task.sleep(for: .milliseconds(800))

        let stranger = try UDPSender()
        for i in 0..<200 {
            stranger.send([0x80, 11, 0, UInt8(i & 0xFF)] + [UInt8](repeating: 0, count: 8) + [UInt8](repeating: 0x7F, count: 320),
                          toPort: harness.daemon.rtpPort)
            stranger.send([UInt8](repeating: 0xFF, count: i % 13), toPort: harness.daemon.rtpPort)
        }
        await harness.asterisk.sendRawEvent(#"{"type":"SomethingNew","application":"foneai","timestamp":"x"}"#)
        await harness.asterisk.sendRawEvent("this is not json")
        await harness.asterisk.sendRawEvent(#"{"type":"StasisStart","application":"foneai"}"#)
        #expect(await harness.daemon.waitForLog("Dropped an ARI message that is not an event", timeout: .seconds(3)))
        #expect(await harness.daemon.waitForLog("Dropped an ARI event", timeout: .seconds(3)), "a StasisStart without a channel is named")
        await harness.asterisk.restartARI()
        // The simulator drops the socket without a close frame, as a restarting Asterisk does.
        #expect(await harness.daemon.waitForLog(#"ARI websocket closed, reconnecting reason="the connection ended without a WebSocket close"#, timeout: .seconds(3)))
        #expect(await harness.asterisk.waitForAppConnected(timeout: .seconds(5)), "the daemon reconnected to ARI")

        #expect(await call.waitForEnd(timeout: .seconds(10)) == .hungUp(byCaller: true))
        let session = try #require(await ai.waitForSession(0, timeout: .seconds(3)) { $0.closed })
        #expect(session.stopReason == "caller_hangup")
        // 4 s of 20 ms packets; the first ~100 ms may be lost before Stasis (as on a real PBX).
        #expect(session.binaryFrameCount > 180, "AI got \(session.binaryFrameCount) frames")
        let toAI = ToneAnalysis.dominantFrequency(session.receivedAudio, sampleRate: 16000)
        #expect(abs(toAI - 523) < 10)
        let heard = await call.heardAudio()
        #expect(abs(ToneAnalysis.dominantFrequency(heard, sampleRate: 8000) - 523) < 10)
        #expect(harness.daemon.process.isRunning)
        #expect(harness.daemon.log.contains("Dropped RTP from an unknown source"))
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    @Test func aiDroppingMidCallContinuesTheCallerWithinOneSecond() async throws {
        let ai = try await AITestServer.start(mode: .script([.wait(.milliseconds(800)), .dropConnection]))
        let harness = try await Harness.start(aiURL: ai.url)
        let call = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 10)))
        let outcome = await call.waitForEnd(timeout: .seconds(5))
        #expect(outcome == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await call.variables()["FONEAI_STATUS"] == "ai_error")
        let session = try #require(await ai.waitForSession(0, timeout: .seconds(3)) { $0.closed })
        if let closed = session.closedAtNanos, let ended = call.endedAtNanos {
            let seconds = Double(Int64(ended) - Int64(closed)) / 1e9
            #expect(seconds < 1.0, "caller continued \(seconds) s after the AI dropped")
        }
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }
}

/// A plain UDP socket for sending test datagrams to the daemon.
final class UDPSender {
    let fd: Int32

    init() throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EBADF) }
    }

    func send(_ bytes: [UInt8], toPort port: Int) {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        _ = bytes.withUnsafeBytes { raw in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    deinit { close(fd) }
}
