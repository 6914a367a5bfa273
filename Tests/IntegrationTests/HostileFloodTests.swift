import FoneAISim
import Foundation
import Testing

/// 10,000 malformed RTP packets (from the calls' own Asterisk sockets, so they reach the parser)
/// and 1,000 malformed AI messages during 10 live calls: the calls' audio is measured, not
/// assumed, to be unaffected.
@Suite(.serialized) struct HostileFloodTests {
    static let malformedRTP: [[UInt8]] = [
        [0x80, 11, 0, 1],                                                          // shorter than a header
        [0x40, 11, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 40), // version 1
        [0x8F, 11, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0],                           // 15 CSRCs past the end
        [0x90, 11, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0xFF, 0xFF, 0, 0],  // extension longer than the packet
        [0xA0, 11, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 255],                  // padding longer than the packet
    ]

    /// The daemon's counters from `foneaictl stats --json` (nil: it failed or printed none).
    private func daemonCounters(_ harness: Harness) throws -> [String: Any]? {
        let (status, statsJSON) = try runCtl(["--socket", harness.daemon.controlSocketPath, "stats", "--json"])
        guard status == 0 else { return nil }
        return (try JSONSerialization.jsonObject(with: Data(statsJSON.utf8)) as? [String: Any])?["counters"] as? [String: Any]
    }

    @Test func malformedFloodLeavesTenCallsClean() async throws {
        var junk: [AIScriptStep] = [.echo(true), .waitForAudio(minFrames: 10)]
        for i in 0..<100 {
            junk.append(i % 4 == 0 ? .sendText("not json \(i)") : i % 4 == 1 ? .sendText(#"{"type":"dance"}"#)
                        : i % 4 == 2 ? .sendText(#"{"no":"type"}"#) : .sendText(#"{"type":"format","sampleRate":"fast"}"#))
            junk.append(.wait(.milliseconds(20)))
        }
        junk.append(.wait(.seconds(60)))  // the callers hang up first (below)
        let ai = try await AITestServer.start(mode: .script(junk))
        let harness = try await Harness.start(aiURL: ai.url)
        let tones = (0..<10).map { 350.0 + Double($0) * 70 }
        var calls: [SimCall] = []
        for tone in tones {
            calls.append(await harness.asterisk.placeCall(SimCallSpec(callerNumber: "\(Int(tone))", variables: ["campaign": "flood"],
                                                                      audio: .tone(hz: tone, seconds: 60))))
        }
        // Wait until every call has its external channel, then flood from each one's socket.
        let deadline = ContinuousClock.now + .seconds(5)
        while calls.contains(where: { $0.externalChannelID == nil }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        var injected = 0
        for round in 0..<200 {
            for call in calls {
                guard let external = call.externalChannelID else { continue }
                for packet in Self.malformedRTP where await harness.asterisk.injectRTP(externalChannel: external, packet) {
                    injected += 1
                }
            }
            if round % 10 == 9 { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(injected == 10_000)

        // The callers hang up once the daemon has counted every malformed AI message, not after a
        // fixed time: on a loaded machine the AI scripts' 100 paced sends can outlast a fixed call
        // length, and a call that ends first cuts its script short. The wait is bounded, so a
        // daemon that loses count still fails below.
        let countDeadline = ContinuousClock.now + .seconds(20)
        while try (daemonCounters(harness)?["ai_malformed"] as? Int ?? 0) < 1_000 && ContinuousClock.now < countDeadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        try await Task.sleep(for: .seconds(1))  // more clean audio after the last junk message
        for call in calls { await call.hangup() }
        for call in calls { #expect(await call.waitForEnd(timeout: .seconds(15)) == .hungUp(byCaller: true)) }
        let sessions = await ai.waitForSessions(10)
        for session in sessions {
            _ = await ai.waitForSession(session.index, timeout: .seconds(3)) { $0.closed }
        }
        var totalSent = 0
        var totalDelivered = 0
        for (tone, call) in zip(tones, calls) {
            let session = try #require(await ai.sessions().first { $0.callerNumber == "\(Int(tone))" })
            let heardByAI = ToneAnalysis.dominantFrequency(session.receivedAudio, sampleRate: 16000)
            #expect(abs(heardByAI - tone) < 10, "AI of the \(tone) Hz caller heard \(heardByAI) Hz")
            let heardByCaller = ToneAnalysis.dominantFrequency(await call.heardAudio(), sampleRate: 8000)
            #expect(abs(heardByCaller - tone) < 10, "the \(tone) Hz caller heard \(heardByCaller) Hz back")
            #expect(session.malformedMessages == 0, "the AI server received nothing malformed from the bridge")
            totalSent += call.rtpPacketsSent
            totalDelivered += session.binaryFrameCount
        }
        // The bridge forwards every packet the simulator sent (allow 1% for UDP on a loaded machine).
        #expect(Double(totalDelivered) >= Double(totalSent) * 0.99, "delivered \(totalDelivered) of \(totalSent) caller packets")

        let counters = try #require(try daemonCounters(harness), "foneaictl stats --json failed or printed no counters")
        let malformed = counters["rtp_malformed"] as? Int ?? 0
        let aiMalformed = counters["ai_malformed"] as? Int ?? 0
        #expect(malformed >= 9_900, "daemon counted \(malformed) malformed RTP packets of 10,000 sent")
        #expect(aiMalformed == 1_000, "daemon counted \(aiMalformed) malformed AI messages of 1,000 sent")
        #expect(harness.daemon.log.contains("Dropped a malformed RTP packet"))
        #expect(harness.daemon.log.contains("Dropped a malformed AI message"))
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
        print("hostile flood: \(injected) malformed RTP injected, daemon counted \(malformed); \(aiMalformed) malformed AI messages counted; caller packets delivered \(totalDelivered)/\(totalSent)")
    }
}
