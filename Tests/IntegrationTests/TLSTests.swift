import FoneAISim
import Foundation
import Testing

/// `https://` for ARI and `wss://` for the AI, with certificates verified: against a custom CA
/// (`ari.caFile`, `ai.caFile`) the call works; without it the daemon refuses the connection.
@Suite(.serialized) struct TLSTests {
    @Test func callOverHTTPSAndWSSWithCustomCA() async throws {
        let certificate = try TLSProxy.Certificate.make()
        let ai = try await AITestServer.start(mode: .script([.waitForAudio(minFrames: 10), .end(sessionId: "s-tls")]))
        let asterisk = try await AsteriskSimulator.start(AsteriskSimulator.Configuration())
        let ariTLS = try await TLSProxy(certificate: certificate, backendPort: asterisk.ariPort)
        let aiTLS = try await TLSProxy(certificate: certificate, backendPort: ai.port)
        let daemon = try DaemonProcess(
            ariURL: "https://localhost:\(ariTLS.port)", aiURL: "wss://localhost:\(aiTLS.port)/stream",
            username: asterisk.username, password: asterisk.password,
            extra: ["ari": ["caFile": certificate.certPath], "ai": ["caFile": certificate.certPath]])
        try daemon.start()
        #expect(await daemon.waitForLog("Successfully connected to the ARI websocket"), "\(daemon.log)")
        let call = await asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 5)))
        #expect(await call.waitForEnd(timeout: .seconds(8)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await call.variables()["sessionId"] == "s-tls")
        #expect(await daemon.stop() == 0)
        await ariTLS.close()
        await aiTLS.close()
        await asterisk.stop()
        await ai.stop()
    }

    @Test func untrustedCertificateIsRefused() async throws {
        let certificate = try TLSProxy.Certificate.make()
        let ai = try await AITestServer.start(mode: .echo)
        let asterisk = try await AsteriskSimulator.start(AsteriskSimulator.Configuration())
        let aiTLS = try await TLSProxy(certificate: certificate, backendPort: ai.port)
        let daemon = try DaemonProcess(ariURL: asterisk.ariURL, aiURL: "wss://localhost:\(aiTLS.port)/stream",
                                       username: asterisk.username, password: asterisk.password)
        try daemon.start()
        #expect(await daemon.waitForLog("Successfully connected to the ARI websocket"))
        let call = await asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 5)))
        #expect(await call.waitForEnd(timeout: .seconds(8)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await call.variables()["FONEAI_STATUS"] == "ai_unavailable")
        #expect(await ai.sessionCount == 0)
        #expect(await daemon.stop() == 0)
        await aiTLS.close()
        await asterisk.stop()
        await ai.stop()
    }
}
