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

/// Events are not queued while the ARI socket is down: a caller who hangs up then is never
/// reported. After reconnecting, the bridge must notice and release the call's resources.
@Suite(.serialized) struct ARIOutageTests {
    @Test func callerGoneDuringAnARIOutageIsCleanedUpAfterReconnect() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url)
        let staying = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 500, seconds: 60)))
        let leaving = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 700, seconds: 60)))
        _ = await ai.waitForSessions(2)
        try await Task.sleep(for: .milliseconds(300))
        // The bridge waits at least 100 ms before reconnecting: hang up inside that gap.
        await harness.asterisk.restartARI()
        await leaving.hangup()
        #expect(leaving.outcome == .hungUp(byCaller: true))
        #expect(await harness.daemon.waitForLog("Cleaned up after a previous run or an ARI outage", timeout: .seconds(5)))
        let index = try #require(await ai.sessions().first { $0.channelId == leaving.id }?.index)
        let session = try #require(await ai.waitForSession(index, timeout: .seconds(3)) { $0.closed })
        #expect(session.stopReason == "caller_hangup")
        // The other call was not touched and still flows.
        #expect(staying.outcome == nil)
        let before = staying.rtpPacketsHeard
        try await Task.sleep(for: .milliseconds(500))
        #expect(staying.rtpPacketsHeard > before, "the remaining call still hears its AI")
        await staying.hangup()
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    /// A hung Asterisk accepts TCP and never answers the WebSocket upgrade. The bridge gives up on
    /// the handshake and retries, and a SIGTERM meanwhile still stops it at once.
    @Test func hungAsteriskIsRetriedAndDoesNotHoldUpStop() async throws {
        let asterisk = try SilentTCPListener()
        let retrying = try DaemonProcess(ariURL: "http://127.0.0.1:\(asterisk.port)", aiURL: "ws://127.0.0.1:\(try closedTCPPort())/")
        try retrying.start()
        #expect(await retrying.waitForLog("did not complete the WebSocket connection within 5.0 seconds", timeout: .seconds(10)),
                "no handshake timeout:\n\(retrying.log)")
        #expect(await retrying.stop(timeout: .seconds(5)) == 0, "\(retrying.log.suffix(2000))")

        let stopping = try DaemonProcess(ariURL: "http://127.0.0.1:\(asterisk.port)", aiURL: "ws://127.0.0.1:\(try closedTCPPort())/")
        try stopping.start()
        #expect(await stopping.waitForLog("foneai-bridge started"))
        try await Task.sleep(for: .seconds(1))  // inside the first handshake
        let sent = ContinuousClock.now
        #expect(await stopping.stop(timeout: .seconds(5)) == 0, "SIGTERM during the handshake:\n\(stopping.log.suffix(2000))")
        #expect(ContinuousClock.now - sent < .seconds(3))
        #expect(!stopping.log.contains("Successfully connected"))
    }
}
