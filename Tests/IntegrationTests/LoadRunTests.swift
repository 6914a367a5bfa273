import FoneAISim
import Foundation
import Testing

/// `foneai-sim load` end to end (the harness behind `make bench`), small: the real daemon, the
/// fake Asterisk with a socket per external channel, the echoing AI server and the analysis.
/// Timing is not judged here (that is what `make bench` reports); losing a packet, a call or a
/// counter's agreement is.
@Suite(.serialized)
struct LoadRunTests {
    @Test func everyPacketOfEveryCallCrossesTheBridgeBothWays() async throws {
        var options = LoadOptions(
            calls: 6, holdSeconds: 3, rate: 10,
            bridgePath: DaemonProcess.binDirectory.appendingPathComponent("foneai-bridge").path)
        options.seed = 5
        let result = try await LoadBenchmark.run(options)
        #expect(result.calls.sustained == 6)
        #expect(result.calls.excludedPortCollisions == 0)
        #expect(result.toAI.packetsInWindow > 6 * 50, "\(result.toAI.packetsInWindow) caller packets measured")
        #expect(result.toAI.lost == 0 && result.toAI.duplicates == 0 && result.toAI.unidentified == 0)
        #expect(result.toCaller.framesInWindow > 6 * 50, "\(result.toCaller.framesInWindow) AI frames measured")
        #expect(result.toCaller.lost == 0 && result.toCaller.duplicates == 0)
        #expect(result.simulator.sendErrors ?? 0 == 0)
        // One interval between the AI's answers per caller frame: 20 ms apart, give or take the
        // jitter this test does not judge.
        let answers = try #require(result.pacing.aiAnswerIntervalMs)
        #expect(answers.count > 6 * 50 && (15...25).contains(answers.p50), "\(answers)")
        // Each packet heard in the window came with the kernel's receive time, so the simulator's
        // own read delay is known for each of them.
        let readDelay = try #require(result.simulator.readDelayMs)
        #expect(readDelay.count > 6 * 50 && readDelay.count <= result.toCaller.packetsHeard,
                "\(readDelay.count) read delays for \(result.toCaller.packetsHeard) packets heard")
        for check in result.agreement {
            #expect(check.agree, "\(check.name): daemon \(check.daemon), simulator \(check.simulator)")
        }
        #expect(!result.agreement.isEmpty)
    }
}
