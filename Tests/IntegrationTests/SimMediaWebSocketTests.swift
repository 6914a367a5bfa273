import FoneAISim
import Foundation
import Testing

/// Self-tests of the simulator's WebSocket media transport (externalMedia `transport=websocket`)
/// and of the AI test server's Twilio dialect, with hand-driven clients (no daemon).
@Suite(.serialized)
struct SimMediaWebSocketTests {
    static let user = "asterisk"
    static let pass = "secret"

    func rest(_ sim: AsteriskSimulator, _ method: String, _ path: String) async throws -> SimHTTPClient.Response {
        try await SimHTTPClient.request(method, sim.ariURL + path, username: Self.user, password: Self.pass)
    }

    func mediaURL(_ sim: AsteriskSimulator, _ connectionID: String) -> String {
        "ws://127.0.0.1:\(sim.ariPort)/media/\(connectionID)"
    }

    /// externalMedia → connect → MEDIA_START → StasisStart → bridge: caller audio out as 640-byte
    /// little-endian frames every 20 ms, frames in played to the caller at 16 kHz in real time,
    /// DTMF_END, GET_STATUS; DELETE closes the socket.
    @Test func lifecycleAndAudioBothWays() async throws {
        let sim = try await AsteriskSimulator.start()
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        #expect(await sim.waitForAppConnected())
        let call = await sim.placeCall(SimCallSpec(audio: .tone(hz: 440, seconds: 1.5)))
        #expect(await ari.waitForEvent("StasisStart", channel: call.id) != nil)
        #expect(try await rest(sim, "POST", "/ari/bridges?type=mixing&bridgeId=b1").status == 200)

        let created = try await rest(sim, "POST", "/ari/channels/externalMedia?app=foneai&transport=websocket&encapsulation=none&connection_type=server&format=slin16&channelId=em-1")
        #expect(created.status == 200)
        let channel = try #require(created.json)
        #expect(channel["id"]?.stringValue == "em-1")
        #expect(channel["state"]?.stringValue == "Down")
        #expect(channel["name"]?.stringValue?.hasPrefix("WebSocket/INCOMING/0x") == true)
        let connectionID = try #require(channel["channelvars"]?["MEDIA_WEBSOCKET_CONNECTION_ID"]?.stringValue)
        #expect(channel["channelvars"]?["MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE"]?.stringValue == "640")
        // Not a UDP channel: no external_host, and the old transport checks still apply.
        #expect(try await rest(sim, "POST", "/ari/channels/externalMedia?app=foneai&transport=websocket&format=slin16").status == 400)
        #expect(try await rest(sim, "POST", "/ari/channels/externalMedia?app=foneai&transport=websocket&encapsulation=rtp&connection_type=server&format=slin16").status == 400)

        // Not in Stasis before the media socket connects: addChannel is refused.
        try await Task.sleep(for: .milliseconds(150))
        #expect(ari.events(ofType: "StasisStart", channel: "em-1").isEmpty)
        #expect(try await rest(sim, "POST", "/ari/bridges/b1/addChannel?channel=em-1").status == 422)

        // Wrong connection id, wrong subprotocol, plain GET: refused.
        await #expect(throws: (any Error).self) { _ = try await SimWebSocketClient.connect(url: mediaURL(sim, "nope"), subprotocol: "media") }
        await #expect(throws: (any Error).self) { _ = try await SimWebSocketClient.connect(url: mediaURL(sim, connectionID), subprotocol: "chat") }
        #expect(try await SimHTTPClient.request("GET", "http://127.0.0.1:\(sim.ariPort)/media/nope").status == 404)

        let media = try await SimWebSocketClient.connect(url: mediaURL(sim, connectionID), subprotocol: "media")
        let start = try #require(await media.waitForText { $0.hasPrefix("MEDIA_START") })
        #expect(start == "MEDIA_START connection_id:\(connectionID) channel:\(channel["name"]!.stringValue!) channel_id:em-1 format:slin16 optimal_frame_size:640 ptime:20")
        #expect(try await SimHTTPClient.request("GET", "http://127.0.0.1:\(sim.ariPort)/media/\(connectionID)").status == 409)
        #expect(await ari.waitForEvent("StasisStart", channel: "em-1") != nil)
        #expect(try await rest(sim, "GET", "/ari/channels/em-1").json?["state"]?.stringValue == "Up")
        #expect(try await rest(sim, "POST", "/ari/bridges/b1/addChannel?channel=\(call.id),em-1").status == 204)

        // Caller → application: 1.5 s of 440 Hz, 640-byte little-endian frames, 20 ms apart.
        try await media.send(samples: ToneGenerator.tone(hz: 1000, seconds: 1.0, sampleRate: 16000))
        await call.sendDTMF("7")
        #expect(await media.waitForText { $0 == "DTMF_END digit:7 channel_id:em-1" } != nil)
        try await media.send(text: "GET_STATUS")
        let status = try #require(await media.waitForText { $0.hasPrefix("STATUS") })
        #expect(status.contains("xon_level:800 xoff_level:900"))
        try await Task.sleep(for: .milliseconds(1700))
        let frames = media.received.compactMap { if case .binary(let b) = $0 { return b.count } else { return nil } }
        #expect(frames.count >= 70 && frames.count <= 76, "\(frames.count) frames")
        #expect(Set(frames) == [640])
        let toApp = ToneAnalysis.dominantFrequency(media.receivedSamples, sampleRate: 16000)
        #expect(abs(toApp - 440) < 5, "application got \(toApp) Hz")
        let arrivals = media.binaryArrivalNanos
        let gaps = zip(arrivals.dropFirst(), arrivals).map { Double($0 - $1) / 1e6 }.sorted()
        #expect(gaps[gaps.count / 2] > 17 && gaps[gaps.count / 2] < 23, "median gap \(gaps[gaps.count / 2]) ms")

        // Application → caller: one 1 s message, cut into 50 frames, played in real time at 16 kHz.
        let heard = await call.heard()
        #expect(heard.transport == .websocket && heard.sampleRate == 16000)
        #expect(heard.samples.count == 16000, "caller heard \(heard.samples.count) samples")
        #expect(abs(ToneAnalysis.dominantFrequency(heard.samples, sampleRate: 16000) - 1000) < 5)
        let stats = try #require(await sim.mediaWebSocketStats(ofChannel: "em-1"))
        #expect(stats.framesQueued == 50 && stats.framesPlayed == 50 && stats.binaryMessagesReceived == 1)
        #expect(stats.offeredSubprotocols == ["media"])
        #expect(call.rtpPacketsHeard == 0)

        // DELETE closes the media socket; the channel is gone.
        #expect(try await rest(sim, "DELETE", "/ari/channels/em-1").status == 204)
        #expect(await media.waitForClose())
        #expect(await ari.waitForEvent("ChannelDestroyed", channel: "em-1") != nil)
        let after = try #require(await call.mediaWebSocketStats)
        #expect(after.closed && after.closedBy == "asterisk")
        #expect(await sim.liveExternalChannelIDs.isEmpty)
        await media.close()
        await ari.close()
        await sim.stop()
    }

    /// The frame queue: frames cut to 640 bytes (the rest dropped), MEDIA_XOFF at 900, messages
    /// ignored at 1000, FLUSH_MEDIA empties it and MEDIA_XON follows; the application closing the
    /// socket hangs the channel up.
    @Test func queueFlowControlFlushAndAppClose() async throws {
        let sim = try await AsteriskSimulator.start()
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        #expect(await sim.waitForAppConnected())
        let created = try await rest(sim, "POST", "/ari/channels/externalMedia?app=foneai&transport=websocket&encapsulation=none&connection_type=server&format=slin16&channelId=em-2")
        let connectionID = try #require(created.json?["channelvars"]?["MEDIA_WEBSOCKET_CONNECTION_ID"]?.stringValue)
        let media = try await SimWebSocketClient.connect(url: mediaURL(sim, connectionID), subprotocol: "media")
        #expect(await ari.waitForEvent("StasisStart", channel: "em-2") != nil)

        try await media.send(text: "PAUSE_MEDIA")  // silence is played, nothing leaves the queue
        try await media.send(binary: [UInt8](repeating: 1, count: 700))  // one frame, 60 bytes dropped
        // 1000 frames at once: XOFF when 900 are queued, then a message that is ignored.
        try await media.send(binary: [UInt8](repeating: 1, count: 640 * 999))
        #expect(await media.waitForText { $0 == "MEDIA_XOFF" } != nil)
        try await media.send(binary: [UInt8](repeating: 1, count: 640))
        try await media.send(text: "GET_STATUS")
        #expect(await media.waitForText { $0.hasPrefix("STATUS") && $0.contains("queue_length:1000") && $0.contains("queue_full:true") && $0.contains("media_paused:true") } != nil)
        var stats = try #require(await sim.mediaWebSocketStats(ofChannel: "em-2"))
        #expect(stats.partialBytesDropped == 60)
        #expect(stats.framesQueued == 1000)
        #expect(stats.messagesDroppedQueueFull == 1)
        #expect(stats.maxQueueLength == 1000)
        #expect(media.receivedTexts.filter { $0 == "MEDIA_XON" }.isEmpty)

        try await media.send(text: "FLUSH_MEDIA")
        try await Task.sleep(for: .milliseconds(100))
        #expect(media.receivedTexts.filter { $0 == "MEDIA_XON" }.isEmpty)  // paused: no dequeue, no XON
        try await media.send(text: "CONTINUE_MEDIA")
        #expect(await media.waitForText(timeout: .seconds(1)) { $0 == "MEDIA_XON" } != nil)
        stats = try #require(await sim.mediaWebSocketStats(ofChannel: "em-2"))
        #expect(stats.queueLength == 0)
        #expect(stats.framesFlushed == 1000 && stats.flushes == 1 && stats.framesPlayed == 0)
        #expect(stats.xoffSentNanos.count == 1 && stats.xonSentNanos.count == 1)

        // The test hook: XOFF now, XON after the given time.
        #expect(await sim.forceMediaXOFF(channel: "em-2", for: .milliseconds(300)))
        try await Task.sleep(for: .milliseconds(150))
        #expect(media.receivedTexts.filter { $0 == "MEDIA_XOFF" }.count == 2)
        #expect(media.receivedTexts.filter { $0 == "MEDIA_XON" }.count == 1)
        #expect(await media.waitForText(timeout: .seconds(1)) { _ in media.receivedTexts.filter { $0 == "MEDIA_XON" }.count == 2 } != nil)

        // The application hangs up by closing its socket: Asterisk hangs the channel up.
        await media.close()
        #expect(await ari.waitForEvent("ChannelDestroyed", channel: "em-2") != nil)
        #expect(await sim.liveExternalChannelIDs.isEmpty)
        await ari.close()
        await sim.stop()
    }

    // MARK: the AI test server, Twilio dialect

    /// The server side of Twilio Media Streams, driven by a hand-written "bridge": it records
    /// connected/start/media/dtmf/mark/stop and checks them; its script answers with `media`
    /// (base64 μ-law), `mark`, `clear` and the `foneai` extension event.
    @Test func twilioDialectServer() async throws {
        let ai = try await AITestServer.start(mode: .script([
            .waitForAudio(minFrames: 3),
            .sendTone(hz: 500, seconds: 0.1, sampleRate: 16000, chunkMs: 20, paced: false),
            .sendMark("m1"),
            .clear,
            .waitForMark("m1", timeout: .seconds(2)),
            .transfer(context: "sales", extension: "200", sessionId: "s-1"),
            .wait(.milliseconds(300)),
            .closeSocket,
        ]), dialect: .twilio)
        #expect(ai.dialect == .twilio)
        let bridge = try await SimWebSocketClient.connect(url: ai.url)
        let sid = "MZ" + String(repeating: "a", count: 32)
        func event(_ seq: Int, _ name: String, _ body: String) -> String {
            #"{"event":"\#(name)","sequenceNumber":"\#(seq)","streamSid":"\#(sid)",\#(body)}"#
        }
        try await bridge.send(text: #"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)
        try await bridge.send(text: event(1, "start", #""start":{"streamSid":"\#(sid)","accountSid":"ACx","callSid":"123.4","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"callerNumber":"555","campaign":"100","custom":"{\"lang\":\"en\"}"}}"#))
        let tone = ToneGenerator.tone(hz: 440, seconds: 0.06, sampleRate: 8000)
        for k in 0..<3 {
            let payload = Data(tone[k * 160..<(k + 1) * 160].map { G711.ulawEncode($0) }).base64EncodedString()
            try await bridge.send(text: event(2 + k, "media", #""media":{"track":"inbound","chunk":"\#(k + 1)","timestamp":"\#(k * 20)","payload":"\#(payload)"}"#))
        }
        try await bridge.send(text: event(5, "dtmf", #""dtmf":{"track":"inbound_track","digit":"3"}"#))
        // The AI's reply: media events, then mark and clear.
        #expect(await bridge.waitForText { $0.contains(#""event":"clear""#) } != nil)
        try await bridge.send(text: event(6, "mark", #""mark":{"name":"m1"}"#))
        let transfer = try #require(await bridge.waitForText { $0.contains(#""event":"foneai""#) })
        let json = try #require(SimJSON.parse(transfer))
        #expect(json["streamSid"]?.stringValue == sid)
        #expect(json["foneai"]?["type"]?.stringValue == "transfer")
        #expect(json["foneai"]?["context"]?.stringValue == "sales")
        #expect(json["foneai"]?["sessionId"]?.stringValue == "s-1")
        try await bridge.send(text: event(4, "stop", #""stop":{"accountSid":"ACx","callSid":"123.4"}"#))  // out of order on purpose
        #expect(await bridge.waitForClose())

        let media = bridge.receivedTexts.compactMap(SimJSON.parse).filter { $0["event"]?.stringValue == "media" }
        #expect(media.count == 5)  // 100 ms in 20 ms events
        let samples = media.flatMap { Data(base64Encoded: $0["media"]?["payload"]?.stringValue ?? "")!.map { G711.ulawDecode($0) } }
        #expect(samples.count == 800)
        #expect(abs(ToneAnalysis.dominantFrequency(samples, sampleRate: 8000) - 500) < 5)
        #expect(bridge.receivedTexts.contains(#"{"event":"mark","streamSid":"\#(sid)","mark":{"name":"m1"}}"#))

        let session = try #require(await ai.waitForSession(0) { $0.closed })
        #expect(session.dialect == .twilio)
        let start = try #require(session.start)
        #expect(start.streamSid == sid && start.callSid == "123.4" && start.channelId == "123.4")
        #expect(start.sampleRate == 8000 && start.encoding == "audio/x-mulaw")
        #expect(start.callerNumber == "555" && start.campaign == "100")
        #expect(start.custom?["lang"]?.stringValue == "en")
        #expect(session.audioFrameCount == 3)
        #expect(session.receivedSampleRate == 8000 && session.receivedAudio.count == 480)
        #expect(session.dtmfDigits == ["3"])
        #expect(session.marksEchoed == ["m1"])
        #expect(session.stopReceived)
        let twilio = try #require(session.twilio)
        #expect(twilio.events == ["connected", "start", "media", "media", "media", "dtmf", "mark", "stop"])
        #expect(twilio.chunks == [1, 2, 3] && twilio.timestamps == [0, 20, 40] && twilio.payloadSizes == [160, 160, 160])
        #expect(twilio.stopCallSid == "123.4")
        #expect(twilio.protocolErrors == ["stop #7: sequenceNumber 4, expected 7"])
        await bridge.close()
        await ai.stop()
    }

    /// Twilio echo: every inbound media payload goes straight back as an outbound media event.
    @Test func twilioEcho() async throws {
        let ai = try await AITestServer.start(mode: .echo, dialect: .twilio)
        let bridge = try await SimWebSocketClient.connect(url: ai.url)
        let sid = "MZ" + String(repeating: "b", count: 32)
        try await bridge.send(text: #"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)
        try await bridge.send(text: #"{"event":"start","sequenceNumber":"1","streamSid":"\#(sid)","start":{"streamSid":"\#(sid)","accountSid":"ACx","callSid":"9.9","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{}}}"#)
        try await Task.sleep(for: .milliseconds(100))
        try await bridge.send(text: #"{"event":"media","sequenceNumber":"2","streamSid":"\#(sid)","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"//79/f39"}}"#)
        let echoed = try #require(await bridge.waitForText { $0.contains(#""event":"media""#) })
        #expect(echoed == #"{"event":"media","streamSid":"\#(sid)","media":{"payload":"//79/f39"}}"#)
        await bridge.close()
        let session = try #require(await ai.waitForSession(0) { $0.closed })
        #expect(session.twilio?.protocolErrors == [])
        #expect(session.audioFramesSent == 1)
        await ai.stop()
    }
}
