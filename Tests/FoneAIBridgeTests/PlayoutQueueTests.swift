import NIOCore
import Testing

@testable import FoneAIBridge

/// 20 ms of a constant value at `rate`, as PCM16LE.
private func frame(_ value: Int16, rate: Int = 8000, ms: Int = 20) -> ByteBuffer {
    let samples = [Int16](repeating: value, count: rate * ms / 1000)
    var buffer = ByteBuffer()
    samples.withUnsafeBufferPointer { PCM16.writeLittleEndian($0, to: &buffer) }
    return buffer
}

private enum Slot: Equatable {
    case sent([Int16], marker: Bool)
    case wait
    case parked
}

extension PlayoutQueue {
    fileprivate func slot(late: Bool = false) -> Slot {
        let (taken, _) = take(late: late) { frame, marker in (Array(frame), marker) }
        switch taken {
        case .sent(let (samples, marker)): return .sent(samples, marker: marker)
        case .wait: return .wait
        case .parked: return .parked
        }
    }
}

@Suite struct PlayoutQueueTests {
    /// 8 kHz in and out: no resampler, so sample values pass unchanged.
    func queue() -> PlayoutQueue { PlayoutQueue(outputRate: 8000, maxBufferedMs: 1000, aiSampleRate: 8000) }

    @Test func aWholeFrameGoesOutInTheFirstSlotWithTheMarker() {
        let q = queue()
        #expect(q.enqueue(frame(7), sampleRate: 8000), "the first audio wakes the pacer")
        #expect(q.slot() == .sent([Int16](repeating: 7, count: 160), marker: true))
        #expect(!q.enqueue(frame(8), sampleRate: 8000), "the queue is not parked during a burst")
        #expect(q.slot() == .sent([Int16](repeating: 8, count: 160), marker: false))
    }

    @Test func aPartialFrameWaitsForTheRestUntilTheGraceIsOver() {
        let q = queue()
        q.enqueue(frame(3, ms: 10), sampleRate: 8000)
        #expect(q.slot() == .wait)
        q.enqueue(frame(4, ms: 10), sampleRate: 8000)
        #expect(q.slot() == .sent([Int16](repeating: 3, count: 80) + [Int16](repeating: 4, count: 80), marker: true))
        q.enqueue(frame(5, ms: 10), sampleRate: 8000)
        #expect(q.slot() == .wait)
        #expect(q.slot(late: true) == .sent([Int16](repeating: 5, count: 80) + [Int16](repeating: 0, count: 80), marker: false))
    }

    @Test func aBurstEndsWithTwoSilentFramesThenParks() {
        let q = queue()
        q.enqueue(frame(1), sampleRate: 8000)
        #expect(q.slot() == .sent([Int16](repeating: 1, count: 160), marker: true))
        // Ran dry: late audio may still come within the grace.
        #expect(q.slot() == .wait)
        #expect(q.slot(late: true) == .sent([Int16](repeating: 0, count: 160), marker: false))
        // Once in the tail, silence goes out on time.
        #expect(q.slot() == .sent([Int16](repeating: 0, count: 160), marker: false))
        #expect(q.isIdle)
        #expect(q.slot() == .parked)
        #expect(q.enqueue(frame(2), sampleRate: 8000), "a parked queue asks to be woken")
        #expect(q.slot() == .sent([Int16](repeating: 2, count: 160), marker: true))
    }

    @Test func audioArrivingLateInTheGraceContinuesTheBurst() {
        let q = queue()
        q.enqueue(frame(1), sampleRate: 8000)
        _ = q.slot()
        #expect(q.slot() == .wait)
        q.enqueue(frame(2), sampleRate: 8000)
        #expect(q.slot() == .sent([Int16](repeating: 2, count: 160), marker: false))
    }

    @Test func aMarkOnAParkedQueueWakesThePacerAndIsReachedAtOnce() {
        let q = queue()
        #expect(q.addMark("m"))
        let (taken, marks) = q.take(late: false) { _, _ in true }
        if case .parked = taken {} else { Issue.record("expected parked, got \(taken)") }
        #expect(marks == ["m"])
    }

    @Test func theResamplerDelayLeadsTheFirstBurstSoEachAIFrameCompletesAFrame() {
        // 16 kHz AI audio to 8 kHz: every 20 ms the AI sends must complete one 20 ms packet at once.
        let q = PlayoutQueue(outputRate: 8000, maxBufferedMs: 1000, aiSampleRate: 16000)
        for n in 0..<50 {
            q.enqueue(frame(Int16(1000 + n), rate: 16000), sampleRate: 16000)
            guard case .sent(let samples, _) = q.slot() else {
                Issue.record("AI frame \(n) did not complete a packet")
                return
            }
            // After the first packet's lead-in, the packet ends with the new frame's level.
            if n > 0 { #expect(abs(Int(samples[150]) - (1000 + n)) <= 2, "frame \(n): \(samples[150])") }
        }
    }

    @Test func clearDropsAudioAndTheNextBurstStartsAfresh() {
        let q = queue()
        q.enqueue(frame(9), sampleRate: 8000)
        q.addMark("a")
        #expect(q.clear() == ["a"])
        #expect(q.slot() == .parked)
        q.enqueue(frame(4), sampleRate: 8000)
        #expect(q.slot() == .sent([Int16](repeating: 4, count: 160), marker: true))
    }
}
