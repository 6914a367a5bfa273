import FoneAISim
import Foundation
import Testing

/// A fake Asterisk and the real daemon connected to it; the AI server is up to each test.
struct Harness {
    let asterisk: AsteriskSimulator
    let daemon: DaemonProcess

    static func start(aiURL: String, payloadType: Int = 11, format: String = "slin16",
                      extra: [String: [String: Any]] = [:], environment: [String: String] = [:]) async throws -> Harness {
        let asterisk = try await AsteriskSimulator.start(AsteriskSimulator.Configuration())
        let daemon = try DaemonProcess(ariURL: asterisk.ariURL, aiURL: aiURL, username: asterisk.username,
                                       password: asterisk.password, payloadType: payloadType, format: format,
                                       extra: extra, environment: environment)
        try daemon.start()
        let connected = await daemon.waitForLog("Successfully connected to the ARI websocket")
        #expect(connected, "daemon did not connect to ARI:\n\(daemon.log)")
        #expect(await asterisk.waitForAppConnected(timeout: .seconds(5)))
        return Harness(asterisk: asterisk, daemon: daemon)
    }

    /// Stops the daemon (expecting a clean exit) and the simulator.
    func stop() async {
        let status = await daemon.stop()
        #expect(status == 0, "daemon exit status \(String(describing: status)):\n\(daemon.log.suffix(3000))")
        await asterisk.stop()
    }

    /// Nothing the bridge created may survive a call.
    func expectNothingLeaked(sourceLocation: SourceLocation = #_sourceLocation) async {
        let deadline = ContinuousClock.now + .seconds(3)
        while ContinuousClock.now < deadline {
            let bridges = await asterisk.liveBridgeIDs
            let externals = await asterisk.liveExternalChannelIDs
            if bridges.isEmpty && externals.isEmpty { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let bridges = await asterisk.liveBridgeIDs
        let externals = await asterisk.liveExternalChannelIDs
        #expect(bridges.isEmpty, "leaked bridges \(bridges)", sourceLocation: sourceLocation)
        #expect(externals.isEmpty, "leaked external channels \(externals)", sourceLocation: sourceLocation)
    }
}

/// A TCP port nothing listens on (bound, then closed).
func closedTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
