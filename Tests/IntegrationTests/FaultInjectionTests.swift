import FoneAISim
import Foundation
import Testing

/// The administrator's worst cases: the daemon killed outright, the AI server dying. Afterwards
/// nothing of ours is left in Asterisk and every caller was continued or hung up.
@Suite(.serialized) struct FaultInjectionTests {
    @Test func sigkillWithTenLiveCallsThenRestartCleansUp() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url)
        var calls: [SimCall] = []
        for i in 0..<10 { calls.append(await harness.asterisk.placeCall(.dialplan(callerNumber: "\(i)", audio: .tone(hz: 440, seconds: 60)))) }
        _ = await ai.waitForSessions(10)
        try await Task.sleep(for: .milliseconds(500))
        #expect(await harness.asterisk.liveBridgeIDs.count == 10)
        harness.daemon.signal(SIGKILL)
        harness.daemon.process.waitUntilExit()
        // What a real Asterisk keeps after the application died: bridges, external channels and
        // callers still in the (deactivated) Stasis app, hearing nothing.
        #expect(await harness.asterisk.liveExternalChannelIDs.count == 10)
        #expect(calls.allSatisfy { $0.outcome == nil })

        let restarted = try DaemonProcess(ariURL: harness.asterisk.ariURL, aiURL: ai.url,
                                          username: harness.asterisk.username, password: harness.asterisk.password)
        try restarted.start()
        #expect(await restarted.waitForLog("Successfully connected to the ARI websocket"))
        for call in calls {
            #expect(await call.waitForEnd(timeout: .seconds(5)) == .continued(context: "foneai-in", exten: "100", priority: 6))
            #expect(await call.variables()["FONEAI_STATUS"] == "error")
        }
        #expect(await restarted.waitForLog("Cleaned up after a previous run"))
        let bridges = await harness.asterisk.liveBridgeIDs
        let externals = await harness.asterisk.liveExternalChannelIDs
        #expect(bridges.isEmpty, "\(bridges)")
        #expect(externals.isEmpty, "\(externals)")
        // The restarted bridge serves new calls normally.
        let fresh = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 5), hangupAfter: .seconds(1)))
        #expect(await fresh.waitForEnd(timeout: .seconds(5)) == .hungUp(byCaller: true))
        #expect(await restarted.stop() == 0)
        await harness.asterisk.stop()
        await ai.stop()
    }

    @Test func aiServerKilledMidCallContinuesEveryCaller() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url)
        var calls: [SimCall] = []
        for _ in 0..<5 { calls.append(await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 60)))) }
        _ = await ai.waitForSessions(5)
        try await Task.sleep(for: .milliseconds(300))
        await ai.stop()
        for call in calls {
            #expect(await call.waitForEnd(timeout: .seconds(3)) == .continued(context: "foneai-in", exten: "100", priority: 6))
            #expect(await call.variables()["FONEAI_STATUS"] == "ai_error")
        }
        await harness.expectNothingLeaked()
        await harness.stop()
    }
}
