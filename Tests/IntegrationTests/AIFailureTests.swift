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
