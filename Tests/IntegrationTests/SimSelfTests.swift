import FoneAISim
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Self-tests of the simulator (no daemon involved).
@Suite(.serialized)
struct SimSelfTests {
    static let user = "asterisk"
    static let pass = "secret"

    func startSim(_ config: AsteriskSimulator.Configuration = .init()) async throws -> AsteriskSimulator {
        try await AsteriskSimulator.start(config)
    }

    func rest(_ sim: AsteriskSimulator, _ method: String, _ path: String, body: String? = nil) async throws -> SimHTTPClient.Response {
        try await SimHTTPClient.request(method, sim.ariURL + path, username: Self.user, password: Self.pass, body: body)
    }

    // MARK: analysis

    @Test func toneAnalysisFindsFrequencies() {
        for (hz, rate) in [(440.0, 16000), (440.0, 8000), (300.0, 8000), (1000.0, 16000), (3000.0, 8000)] {
            var samples = [Int16](repeating: 0, count: rate / 10)  // leading silence
            samples += ToneGenerator.tone(hz: hz, seconds: 0.5, sampleRate: rate)
            samples += [Int16](repeating: 0, count: rate / 10)
            let f = ToneAnalysis.dominantFrequency(samples, sampleRate: rate)
            #expect(abs(f - hz) < 3, "expected \(hz) got \(f) at \(rate)")
        }
        #expect(ToneAnalysis.dominantFrequency([Int16](repeating: 0, count: 8000), sampleRate: 8000) == 0)
        // Gaps of silence inside the tone (RTP gaps, playout underruns) do not bias the estimate.
        var gappy: [Int16] = []
        var gen = ToneGenerator(frequency: 1500, sampleRate: 8000)
        for i in 0..<30 {
            gappy += gen.next(160 + (i % 3) * 37)
            if i % 2 == 0 { gappy += [Int16](repeating: 0, count: 160 * (1 + i % 4)) }
        }
        #expect(abs(ToneAnalysis.dominantFrequency(gappy, sampleRate: 8000) - 1500) < 5)
        #expect(abs(ToneAnalysis.dominantFrequency(ToneGenerator.tone(hz: 60, seconds: 1, sampleRate: 8000), sampleRate: 8000) - 60) < 2)
        let rms = ToneAnalysis.rms(ToneGenerator.tone(hz: 440, seconds: 1, sampleRate: 8000, amplitude: 10000))
        #expect(abs(rms - 10000 / 2.0.squareRoot()) < 50)
    }

    @Test func g711RoundTrip() {
        for s: Int16 in [0, 100, -100, 1000, -1000, 8000, -8000, 32000, -32000] {
            let u = G711.ulawDecode(G711.ulawEncode(s))
            let a = G711.alawDecode(G711.alawEncode(s))
            let tol = max(16, Int(abs(Int32(s))) / 16)
            #expect(abs(Int(u) - Int(s)) <= tol, "ulaw \(s) -> \(u)")
            #expect(abs(Int(a) - Int(s)) <= tol, "alaw \(s) -> \(a)")
        }
    }

    @Test func jsonRoundTrip() throws {
        let text = #"{"a":[1,2.5,"x\"y\n",true,null],"b":{"c":"é\u00e9"}}"#
        let v = try #require(SimJSON.parse(text))
        #expect(v["a"]?[2]?.stringValue == "x\"y\n")
        #expect(v["b"]?["c"]?.stringValue == "éé")
        #expect(SimJSON.parse(v.serialized) == v)
        #expect(SimJSON.parse("{bad") == nil)
    }

    // MARK: ARI basics

    @Test func restAuthAndPing() async throws {
        let sim = try await startSim()
        defer { Task { await sim.stop() } }
        let bad = try await SimHTTPClient.request("GET", sim.ariURL + "/ari/asterisk/ping", username: "asterisk", password: "nope")
        #expect(bad.status == 401)
        let none = try await SimHTTPClient.request("GET", sim.ariURL + "/ari/asterisk/ping")
        #expect(none.status == 401)
        let ok = try await rest(sim, "GET", "/ari/asterisk/ping")
        #expect(ok.status == 200)
        #expect(ok.json?["ping"]?.stringValue == "pong")
        let key = try await SimHTTPClient.request("GET", sim.ariURL + "/ari/asterisk/info?api_key=asterisk:secret")
        #expect(key.status == 200)
        #expect(key.json?["system"]?["version"]?.stringValue == "22.10.1")
        let unknown = try await rest(sim, "GET", "/ari/nothing/here")
        #expect(unknown.status == 404)
        #expect(await sim.unknownRequests == 1)
        await sim.stop()
    }

    @Test func stasisFailsWithoutApp() async throws {
        let sim = try await startSim()
        let call = await sim.placeCall(SimCallSpec(variables: ["campaign": "100"], audio: .tone(hz: 440, seconds: 1)))
        #expect(await call.waitForEnd(timeout: .seconds(1)) == .stasisFailed)
        let vars = await call.variables()
        #expect(vars["STASISSTATUS"] == "FAILED")
        #expect(vars["campaign"] == "100")
        #expect(await sim.liveChannelIDs.isEmpty)
        // a late app sees nothing of it: events are not queued
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        try await Task.sleep(for: .milliseconds(100))
        #expect(ari.events.isEmpty)
        await ari.close()
        await sim.stop()
    }

    @Test func stasisStartShapeAndVariables() async throws {
        let sim = try await startSim()
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass, useBasicAuth: true)
        #expect(await sim.waitForAppConnected())
        let call = await sim.placeCall(
            SimCallSpec(callerNumber: "5551234", callerName: "Alice", variables: ["campaign": "100", "apiKey": "k-1"], stasisArgs: ["x", "y"]))
        let ev = try #require(await ari.waitForEvent("StasisStart"))
        #expect(ev["application"]?.stringValue == "foneai")
        #expect(ev["asterisk_id"]?.stringValue == "02:fc:00:00:00:01")
        #expect(ev["timestamp"]?.stringValue?.hasSuffix("+0000") == true)
        #expect(ev["args"] == ["x", "y"])
        let ch = try #require(ev["channel"])
        #expect(ch["id"]?.stringValue == call.id)
        #expect(ch["name"]?.stringValue?.hasPrefix("Local/100@foneai-in-") == true)
        #expect(ch["name"]?.stringValue?.hasSuffix(";2") == true)
        #expect(ch["state"]?.stringValue == "Up")
        #expect(ch["caller"]?["number"]?.stringValue == "5551234")
        #expect(ch["caller"]?["name"]?.stringValue == "Alice")
        #expect(ch["dialplan"]?["context"]?.stringValue == "foneai-in")
        #expect(ch["dialplan"]?["exten"]?.stringValue == "100")
        #expect(ch["dialplan"]?["priority"]?.intValue == 5)
        #expect(ch["dialplan"]?["app_name"]?.stringValue == "Stasis")
        #expect(ch["dialplan"]?["app_data"]?.stringValue == "foneai,x,y")

        let v = try await rest(sim, "GET", "/ari/channels/\(call.id)/variable?variable=campaign")
        #expect(v.status == 200)
        #expect(v.json?["value"]?.stringValue == "100")
        let missing = try await rest(sim, "GET", "/ari/channels/\(call.id)/variable?variable=custom")
        #expect(missing.status == 404)
        #expect(missing.json?["message"]?.stringValue == "Provided variable was not found")

        let set = try await rest(sim, "POST", "/ari/channels/\(call.id)/variable?variable=sessionId&value=s-42")
        #expect(set.status == 204)
        #expect(await ari.waitForEvent("ChannelVarset") != nil)
        let cont = try await rest(sim, "POST", "/ari/channels/\(call.id)/continue")
        #expect(cont.status == 204)
        #expect(await call.waitForEnd(timeout: .seconds(2)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await call.variables()["sessionId"] == "s-42")
        #expect(await ari.waitForEvent("StasisEnd", channel: call.id) != nil)
        #expect(ari.events(ofType: "ChannelDestroyed").isEmpty)
        let again = try await rest(sim, "POST", "/ari/channels/\(call.id)/continue")
        #expect(again.status == 404)
        #expect(await sim.liveChannelIDs.isEmpty)
        await ari.close()
        await sim.stop()
    }

    @Test func applicationReplaced() async throws {
        let sim = try await startSim()
        let a = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        let b = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        #expect(await a.waitForEvent("ApplicationReplaced") != nil)
        _ = await sim.placeCall(SimCallSpec())
        #expect(await b.waitForEvent("StasisStart") != nil)
        #expect(a.events(ofType: "StasisStart").isEmpty)
        await sim.sendRawEvent("this is not json")
        try await Task.sleep(for: .milliseconds(50))
        #expect(b.rawMessages.contains("this is not json"))
        await sim.restartARI()
        #expect(await b.waitForClose())
        #expect(await sim.isAppConnected() == false)
        let failed = await sim.placeCall(SimCallSpec())
        #expect(failed.outcome == .stasisFailed)
        await a.close()
        await b.close()
        await sim.stop()
    }

    // MARK: externalMedia, the race, media, leaks

    struct Setup {
        var call: SimCall
        var bridgeID: String
        var emID: String
        var rtpPort: Int
    }

    func setUpMedia(
        _ sim: AsteriskSimulator, _ ari: SimARIEventClient, peer: SimRTPPeer, spec: SimCallSpec, format: String = "slin16",
        expectRace: Bool = false
    ) async throws -> Setup {
        let call = await sim.placeCall(spec)
        _ = try #require(await ari.waitForEvent("StasisStart", channel: call.id))
        let br = try await rest(sim, "POST", "/ari/bridges?type=mixing&name=test")
        #expect(br.status == 200)
        let bridgeID = try #require(br.json?["id"]?.stringValue)
        let emID = "em-\(call.id)"
        let em = try await rest(
            sim, "POST",
            "/ari/channels/externalMedia?app=foneai&external_host=127.0.0.1:\(peer.port)&format=\(format)&encapsulation=rtp&transport=udp&direction=both&channelId=\(emID)"
        )
        #expect(em.status == 200)
        #expect(em.json?["state"]?.stringValue == "Down")
        #expect(em.json?["name"]?.stringValue?.hasPrefix("UnicastRTP/127.0.0.1:\(peer.port)-0x") == true)
        #expect(em.json?["channelvars"]?["UNICASTRTP_LOCAL_ADDRESS"]?.stringValue == "127.0.0.1")
        let port = try #require(em.json?["channelvars"]?["UNICASTRTP_LOCAL_PORT"]?.stringValue.flatMap { Int($0) })
        if expectRace {
            let early = try await rest(sim, "POST", "/ari/bridges/\(bridgeID)/addChannel?channel=\(call.id),\(emID)")
            #expect(early.status == 422)
            #expect(early.json?["message"]?.stringValue == "Channel not in Stasis application")
        }
        let ss = try #require(await ari.waitForEvent("StasisStart", channel: emID))
        #expect(ss["channel"]?["dialplan"]?["context"]?.stringValue == "default")
        #expect(ss["channel"]?["dialplan"]?["exten"]?.stringValue == "s")
        #expect(ss["args"] == [])
        let add = try await rest(sim, "POST", "/ari/bridges/\(bridgeID)/addChannel?channel=\(call.id),\(emID)")
        #expect(add.status == 204)
        #expect(await ari.waitForEvent("ChannelEnteredBridge", channel: emID) != nil)
        return Setup(call: call, bridgeID: bridgeID, emID: emID, rtpPort: port)
    }

    @Test func raceMediaAndLeaks() async throws {
        let sim = try await startSim()
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        let peer = try await SimRTPPeer.bind()
        let s = try await setUpMedia(sim, ari, peer: peer, spec: SimCallSpec(audio: .tone(hz: 440, seconds: 1.0)), expectRace: true)

        // Caller audio arrives: PT 118, 640 B, ts 320 first, +320, big-endian 440 Hz, paced.
        try await Task.sleep(for: .milliseconds(1300))
        let pkts = peer.packets
        #expect(pkts.count >= 45 && pkts.count <= 51, "got \(pkts.count)")
        #expect(pkts.allSatisfy { $0.payloadType == 118 && $0.payload.count == 640 && !$0.marker })
        #expect(pkts.first?.timestamp == 320)
        #expect(pkts.first?.sourcePort == s.rtpPort)
        #expect(Set(pkts.map(\.ssrc)).count == 1)
        for (a, b) in zip(pkts, pkts.dropFirst()) {
            #expect(b.sequenceNumber == a.sequenceNumber &+ 1)
            #expect(b.timestamp == a.timestamp &+ 320)
        }
        let sent = pkts.flatMap(\.samplesBigEndian)
        #expect(abs(ToneAnalysis.dominantFrequency(sent, sampleRate: 16000) - 440) < 3)
        let span = Double(pkts.last!.arrivalNanos - pkts.first!.arrivalNanos) / 1e9
        #expect(span > 0.85 && span < 1.1, "span \(span)")
        #expect(s.call.rtpPacketsSent == pkts.count)

        // Back to the caller: PT 11 8 kHz big-endian from the same socket is heard ...
        let tone = ToneGenerator.tone(hz: 600, seconds: 0.4, sampleRate: 8000)
        var seq: UInt16 = 100
        for i in 0..<20 {
            let chunk = Array(tone[(i * 160)..<((i + 1) * 160)])
            try await peer.send(to: "127.0.0.1", port: s.rtpPort, payloadType: 11, sequenceNumber: seq, timestamp: UInt32(i * 160), payload: SimRTPPeer.bigEndianBytes(chunk))
            seq &+= 1
        }
        // ... PT 118 is dropped silently ...
        for i in 0..<5 {
            try await peer.send(to: "127.0.0.1", port: s.rtpPort, payloadType: 118, sequenceNumber: seq, timestamp: UInt32(i * 320), payload: [UInt8](repeating: 1, count: 640))
            seq &+= 1
        }
        // ... malformed packets are ignored.
        try await peer.sendRaw(to: "127.0.0.1", port: s.rtpPort, bytes: [1, 2, 3])
        try await Task.sleep(for: .milliseconds(200))
        let heard = await s.call.heardAudio()
        #expect(heard.count == 20 * 160)
        #expect(abs(ToneAnalysis.dominantFrequency(heard, sampleRate: 8000) - 600) < 3)
        #expect(await sim.droppedDynamicPayloadPackets == 5)
        #expect(await sim.counters.malformedRTPPackets == 1)

        // Strict RTP: another source loses its first 4 packets.
        let other = try await SimRTPPeer.bind()
        for i in 0..<6 {
            try await other.send(to: "127.0.0.1", port: s.rtpPort, payloadType: 0, sequenceNumber: UInt16(i), timestamp: UInt32(i * 160), payload: [UInt8](repeating: 0xFF, count: 160))
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(await sim.droppedStrictRTPPackets == 4)
        #expect(s.call.rtpPacketsHeard == 22)

        // Caller hangs up: HangupRequest(16), LeftBridge, StasisEnd; no ChannelDestroyed; em + bridge leak.
        await s.call.hangup()
        #expect(await s.call.waitForEnd(timeout: .seconds(1)) == .hungUp(byCaller: true))
        let hr = try #require(await ari.waitForEvent("ChannelHangupRequest", channel: s.call.id))
        #expect(hr["cause"]?.intValue == 16)
        #expect(await ari.waitForEvent("StasisEnd", channel: s.call.id) != nil)
        let types = ari.events.filter { $0["channel"]?["id"]?.stringValue == s.call.id }.compactMap { $0["type"]?.stringValue }
        #expect(Array(types.suffix(3)) == ["ChannelHangupRequest", "ChannelLeftBridge", "StasisEnd"])
        try await Task.sleep(for: .milliseconds(50))
        #expect(ari.events(ofType: "ChannelDestroyed").isEmpty)
        #expect(await sim.liveChannelIDs == [s.emID])
        #expect(await sim.liveBridgeIDs == [s.bridgeID])
        let app = try await rest(sim, "GET", "/ari/applications/foneai")
        #expect(app.json?["channel_ids"] == [.string(s.emID)])
        #expect(app.json?["bridge_ids"] == [.string(s.bridgeID)])
        let chans = try await rest(sim, "GET", "/ari/channels")
        #expect(chans.json?.arrayValue?.count == 1)

        // Cleanup by the application.
        #expect(try await rest(sim, "DELETE", "/ari/channels/\(s.emID)").status == 204)
        #expect(await ari.waitForEvent("ChannelDestroyed", channel: s.emID) != nil)
        #expect(try await rest(sim, "DELETE", "/ari/bridges/\(s.bridgeID)").status == 204)
        #expect(await ari.waitForEvent("BridgeDestroyed") != nil)
        #expect(await sim.liveChannelIDs.isEmpty)
        #expect(await sim.liveBridgeIDs.isEmpty)
        #expect(try await rest(sim, "DELETE", "/ari/bridges/\(s.bridgeID)").status == 404)

        await peer.close()
        await other.close()
        await ari.close()
        await sim.stop()
    }

    @Test func silenceSendsNothingAndUlawWorks() async throws {
        let sim = try await startSim()
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        let peer = try await SimRTPPeer.bind()
        let silent = try await setUpMedia(sim, ari, peer: peer, spec: SimCallSpec(audio: .silence))
        try await Task.sleep(for: .milliseconds(300))
        #expect(peer.packetCount == 0)
        #expect(silent.call.rtpPacketsSent == 0)
        await silent.call.hangup()

        let peer2 = try await SimRTPPeer.bind()
        let s = try await setUpMedia(
            sim, ari, peer: peer2, spec: SimCallSpec(audio: .silenceThenTone(silenceSeconds: 0.2, hz: 500, seconds: 0.4)), format: "ulaw")
        try await Task.sleep(for: .milliseconds(900))
        let pkts = peer2.packets
        #expect(pkts.count == 20)
        #expect(pkts.allSatisfy { $0.payloadType == 0 && $0.payload.count == 160 })
        let firstTS: UInt32 = try #require(pkts.first).timestamp
        #expect(firstTS == 1760)  // 10 silent packets skipped, timestamps advanced
        let decoded = pkts.flatMap { $0.payload.map(G711.ulawDecode) }
        #expect(abs(ToneAnalysis.dominantFrequency(decoded, sampleRate: 8000) - 500) < 3)
        // continue with a jump
        let c = try await rest(sim, "POST", "/ari/channels/\(s.call.id)/continue?context=transfer-ctx&extension=200&priority=1")
        #expect(c.status == 204)
        #expect(await s.call.waitForEnd(timeout: .seconds(1)) == .continued(context: "transfer-ctx", exten: "200", priority: 1))
        await peer.close()
        await peer2.close()
        await ari.close()
        await sim.stop()
    }

    @Test func hangupAfterAndDTMF() async throws {
        let sim = try await startSim()
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        let call = await sim.placeCall(SimCallSpec(hangupAfter: .milliseconds(300)))
        await call.sendDTMF("5")
        let d = try #require(await ari.waitForEvent("ChannelDtmfReceived"))
        #expect(d["digit"]?.stringValue == "5")
        #expect(d["duration_ms"]?.intValue == 120)
        #expect(await call.waitForEnd(timeout: .seconds(2)) == .hungUp(byCaller: true))
        // DELETE of a caller by ARI
        let c2 = await sim.placeCall(SimCallSpec())
        _ = await ari.waitForEvent("StasisStart", channel: c2.id)
        #expect(try await rest(sim, "DELETE", "/ari/channels/\(c2.id)").status == 204)
        #expect(await c2.waitForEnd(timeout: .seconds(1)) == .hungUp(byCaller: false))
        #expect(try await rest(sim, "DELETE", "/ari/channels/\(c2.id)").status == 404)
        await ari.close()
        await sim.stop()
    }

    @Test func stopWithOpenConnections() async throws {
        let sim = try await startSim()
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: "foneai", username: Self.user, password: Self.pass)
        let peer = try await SimRTPPeer.bind()
        _ = try await setUpMedia(sim, ari, peer: peer, spec: SimCallSpec(audio: .tone(hz: 440, seconds: .infinity)))
        let ai = try await AITestServer.start(mode: .tone(hz: 500, sampleRate: 16000, seconds: nil))
        let ws = try await SimWebSocketClient.connect(url: ai.url)
        try await ws.send(text: #"{"type":"start","version":1,"media":{"sampleRate":16000}}"#)
        try await Task.sleep(for: .milliseconds(100))
        let t0 = ContinuousClock.now
        await sim.stop()
        await ai.stop()
        let took = ContinuousClock.now - t0
        #expect(took < .seconds(3), "stop took \(took)")
        #expect(await ari.waitForClose())
        #expect(await ws.waitForClose())
        await ari.close()
        await ws.close()
        await peer.close()
    }

    @Test func aiServerDropAndClose() async throws {
        let ai = try await AITestServer.start(mode: .script([.sendText(#"{"type":"format","sampleRate":8000}"#), .dropConnection]))
        let ws = try await SimWebSocketClient.connect(url: ai.url)
        try await ws.send(text: #"{"type":"start","version":1}"#)
        #expect(await ws.waitForClose())
        await ai.setMode(.script([.closeSocket]))
        let ws2 = try await SimWebSocketClient.connect(url: ai.url)
        try await ws2.send(text: #"{"type":"start","version":1}"#)
        #expect(await ws2.waitForClose())
        let sessions = await ai.waitForSessions(2)
        #expect(sessions.count == 2)
        #expect(await ai.waitForSession(1) { $0.closed } != nil)
        await ws.close()
        await ws2.close()
        await ai.stop()
    }

    // MARK: AI test server

    @Test func aiServerScriptAndEcho() async throws {
        let ai = try await AITestServer.start(mode: .script([
            .sendTone(hz: 440, seconds: 0.2, sampleRate: 24000, chunkMs: 100, paced: false),
            .sendMark("m1"),
            .waitForMark("m1", timeout: .seconds(2)),
            .end(sessionId: "s-1", variables: ["intent": "billing"]),
        ]))
        let ws = try await SimWebSocketClient.connect(url: ai.url)
        try await ws.send(text: #"{"type":"start","version":1,"callId":"c-1","channelId":"1.2","caller":{"number":"555","name":"A"},"exten":"100","context":"foneai-in","campaign":"100","apiKey":null,"custom":{"lang":"en"},"args":[],"media":{"encoding":"pcm16le","sampleRate":16000,"channels":1,"frameMs":20}}"#)
        try await ws.send(samples: ToneGenerator.tone(hz: 300, seconds: 0.02, sampleRate: 16000))
        try await Task.sleep(for: .milliseconds(200))
        try await ws.send(text: #"{"type":"mark","name":"m1"}"#)
        try await ws.send(text: #"{"type":"dtmf","digit":"7","durationMs":100}"#)
        try await ws.send(text: "garbage")
        try await Task.sleep(for: .milliseconds(200))
        let texts = ws.receivedTexts
        #expect(texts.first == #"{"type":"format","sampleRate":24000}"#)
        #expect(texts.contains(#"{"type":"mark","name":"m1"}"#))
        #expect(texts.last?.contains(#""type":"end""#) == true)
        #expect(texts.last?.contains(#""sessionId":"s-1""#) == true)
        #expect(ws.receivedSamples.count == 4800)
        #expect(abs(ToneAnalysis.dominantFrequency(ws.receivedSamples, sampleRate: 24000) - 440) < 3)
        try await ws.send(text: #"{"type":"stop","reason":"ended"}"#)
        await ws.close()
        let rec = try #require(await ai.waitForSession(0) { $0.closed })
        #expect(rec.start?.callId == "c-1")
        #expect(rec.start?.apiKey == nil)
        #expect(rec.start?.campaign == "100")
        #expect(rec.start?.customJSON == #"{"lang":"en"}"#)
        #expect(rec.start?.sampleRate == 16000)
        #expect(rec.receivedAudio.count == 320)
        #expect(rec.dtmfDigits == ["7"])
        #expect(rec.marksEchoed == ["m1"])
        #expect(rec.stopReason == "ended")
        #expect(rec.malformedMessages == 1)

        await ai.setMode(.echo)
        let ws2 = try await SimWebSocketClient.connect(url: ai.url)
        try await ws2.send(text: #"{"type":"start","version":1,"media":{"sampleRate":16000}}"#)
        try await Task.sleep(for: .milliseconds(50))
        try await ws2.send(samples: [1, 2, 3, -4])
        try await Task.sleep(for: .milliseconds(100))
        #expect(ws2.receivedSamples == [1, 2, 3, -4])
        await ws2.close()
        await ai.stop()
    }
}

/// `make bench`'s capacity: with several runs per call count (BENCH_REPEAT), one failed run
/// fails its count.
@Test func benchmarkCapacityNeedsEveryRunOfACount() {
    #expect(LoadReport.largestPassing([(100, true), (200, true), (300, false)]) == 200)
    #expect(LoadReport.largestPassing([(100, true), (200, true), (200, false), (200, true), (300, true)]) == 100)
    #expect(LoadReport.largestPassing([(300, true), (100, true), (200, true), (200, true)]) == 300)
    #expect(LoadReport.largestPassing([(100, false), (200, true)]) == nil)
    #expect(LoadReport.largestPassing([]) == nil)
}

/// Opt-in load benchmark of the simulator alone: `SIM_BENCH_CALLS=500 swift test --filter SimSelfTestsBenchmark`.
@Suite(.serialized)
struct SimSelfTestsBenchmark {
    static var calls: Int {
        var env: [String: String] = [:]
        for (k, v) in ProcessInfoLite.environment { env[k] = v }
        return Int(env["SIM_BENCH_CALLS"] ?? "") ?? 0
    }

    @Test(.enabled(if: calls > 0)) func manyCalls() async throws {
        let report = try await SimBenchmark.run(calls: Self.calls, seconds: 10)
        print("BENCH \(report)")
        #expect(report.packetsReceived >= report.packetsExpected * 95 / 100)
    }
}

enum ProcessInfoLite {
    static var environment: [(String, String)] {
        var out: [(String, String)] = []
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out.append((String(s[..<eq]), String(s[s.index(after: eq)...]))) }
            p += 1
        }
        return out
    }
}
