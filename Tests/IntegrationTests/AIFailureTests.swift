import FoneAISim
import Foundation
import Testing

/// The AI cannot be reached, or goes away: the caller is continued in the dialplan at once with a
/// status the dialplan can route on. Never dead air, never a stuck channel.
@Suite(.serialized) struct AIFailureTests {
    @Test func unreachableAIContinuesTheCallerWithinOneSecond() async throws {
        let harness = try await Harness.start(aiURL: "ws://127.0.0.1:\(try closedTCPPort())/stream")
        let call = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 5)))
        let outcome = await call.waitForEnd(timeout: .seconds(5))
        #expect(outcome == .continued(context: "foneai-in", exten: "100", priority: 6))
        let variables = await call.variables()
        #expect(variables["FONEAI_STATUS"] == "ai_unavailable")
        if let ended = call.endedAtNanos {
            let seconds = Double(ended - call.placedAtNanos) / 1e9
            #expect(seconds < 1.0, "caller continued after \(seconds) s")
        }
        await harness.expectNothingLeaked()
        await harness.stop()
    }
}

/// An AI server that accepts TCP but never answers the WebSocket handshake: the connect
/// timeout and bounded attempts still continue the caller promptly.
@Suite(.serialized) struct SlowAITests {
    @Test func aiThatNeverAnswersTimesOut() async throws {
        let silent = try SilentTCPListener()
        let harness = try await Harness.start(aiURL: "ws://127.0.0.1:\(silent.port)/stream",
                                              extra: ["ai": ["connectTimeoutMs": 500, "connectAttempts": 2]])
        let call = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 10)))
        #expect(await call.waitForEnd(timeout: .seconds(5)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await call.variables()["FONEAI_STATUS"] == "ai_unavailable")
        if let ended = call.endedAtNanos {
            let seconds = Double(ended - call.placedAtNanos) / 1e9
            #expect(seconds < 2.0, "two 0.5 s attempts, continued after \(seconds) s")
        }
        await harness.expectNothingLeaked()
        await harness.stop()
    }
}

/// A listening TCP socket that never accepts: connections complete in the kernel backlog and
/// then hear nothing.
final class SilentTCPListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}
