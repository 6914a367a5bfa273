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
    case sent([Int16], marker: Bool, hurry: Bool = false)
    case wait
    case parked
}

extension PlayoutQueue {
    fileprivate func slot(late: Bool = false) -> Slot {
        let (taken, _) = take(late: late) { frame, marker in (Array(frame), marker) }
        switch taken {
        case .sent(let (samples, marker), let hurry, _): return .sent(samples, marker: marker, hurry: hurry)
        case .wait: return .wait
        case .parked: return .parked
        }
    }
}

private func sent(_ value: Int16, marker: Bool = false, hurry: Bool = false) -> Slot {
    .sent([Int16](repeating: value, count: 160), marker: marker, hurry: hurry)
}

@Suite struct PlayoutQueueTests {
    /// 8 kHz in and out: no resampler, so sample values pass unchanged.
    func queue() -> PlayoutQueue { PlayoutQueue(outputRate: 8000, maxBufferedMs: 1000, aiSampleRate: 8000) }

    /// A queue that played one frame and then the two silent frames after it (the next slot parks it).
    func queueAfterOneFrameAndItsSilentTail() -> PlayoutQueue {
        let q = queue()
        q.enqueue(frame(1), sampleRate: 8000)
        _ = q.slot()
        _ = q.slot(late: true)
        _ = q.slot()
        return q
    }

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

    @Test func aSentSlotSaysWhetherTheNextFrameIsAlreadyQueued() {
        let q = queue()
        q.enqueue(frame(1), sampleRate: 8000)
        q.enqueue(frame(2), sampleRate: 8000)
        var queued: [Bool] = []
        for _ in 0..<2 {
            if case .sent(_, _, let next) = q.take(late: false, { _, _ in true }).0 { queued.append(next) }
        }
        #expect(queued == [true, false])
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
            guard case .sent(let samples, _, _) = q.slot() else {
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

    @Test func aStalledPacerCatchesUpWhatARealTimeSourceSentMeanwhile() {
        // Frames 1, 2, 3 arrived while two slots passed unplayed: played at the normal pace they
        // would keep the caller two slots behind, so the next four slots come at half spacing
        // (gaining 40 ms) and nothing is dropped.
        let q = queue()
        q.enqueue(frame(9), sampleRate: 8000)
        _ = q.slot()
        for v in Int16(1)...3 { q.enqueue(frame(v), sampleRate: 8000) }
        q.skipSlots(2)
        #expect(q.slot() == sent(1, marker: true, hurry: true))
        #expect(q.slot() == sent(2, hurry: true))
        #expect(q.slot() == sent(3, hurry: true))
        q.enqueue(frame(4), sampleRate: 8000)
        #expect(q.slot() == sent(4, hurry: true))
        q.enqueue(frame(5), sampleRate: 8000)
        #expect(q.slot() == sent(5))
        #expect(q.droppedSamples == 0)
    }

    @Test func aStalledPacerKeepsAudioTheAISentAhead() {
        let q = queue()
        for v in Int16(1)...20 { q.enqueue(frame(v), sampleRate: 8000) }
        q.skipSlots(2)
        #expect(q.slot() == .sent([Int16](repeating: 1, count: 160), marker: true))
        #expect(q.droppedSamples == 0)
    }

    @Test func lateAudioThatBunchedUpIsCaughtUpSoTheCallerStaysInTime() {
        let q = queue()
        q.enqueue(frame(1), sampleRate: 8000)
        _ = q.slot()
        // Frames 2 and 3 are late: the caller hears two silent frames in their slots.
        #expect(q.slot() == .wait)
        #expect(q.slot(late: true) == .sent([Int16](repeating: 0, count: 160), marker: false))
        #expect(q.slot() == .sent([Int16](repeating: 0, count: 160), marker: false))
        q.enqueue(frame(2), sampleRate: 8000)
        q.enqueue(frame(3), sampleRate: 8000)
        // They come together: played 10 ms apart, then frame 4 (due about now) too.
        #expect(q.slot() == sent(2, hurry: true))
        #expect(q.slot() == sent(3, hurry: true))
        q.enqueue(frame(4), sampleRate: 8000)
        #expect(q.slot() == sent(4))
        #expect(q.droppedSamples == 0)
    }

    @Test func aNewBurstAfterTheTailLosesNothing() {
        // A source that sends in real time starts its next burst with one frame: kept.
        let q = queueAfterOneFrameAndItsSilentTail()
        q.enqueue(frame(5), sampleRate: 8000)
        #expect(q.slot() == .sent([Int16](repeating: 5, count: 160), marker: false))
        // And one sent ahead arrives deep: kept.
        _ = q.slot(late: true)
        _ = q.slot()
        for v in Int16(6)...15 { q.enqueue(frame(v), sampleRate: 8000) }
        #expect(q.slot() == .sent([Int16](repeating: 6, count: 160), marker: false))
        #expect(q.droppedSamples == 0)
    }

    @Test func marksInDroppedAudioAreReported() {
        // Audio beyond maxBufferedMs drops the oldest, and a mark in it counts as reached.
        let q = PlayoutQueue(outputRate: 8000, maxBufferedMs: 40, aiSampleRate: 8000)
        q.enqueue(frame(1), sampleRate: 8000)
        q.addMark("gone")
        for v in Int16(2)...4 { q.enqueue(frame(v), sampleRate: 8000) }
        let (_, marks) = q.take(late: false) { _, _ in true }
        #expect(marks == ["gone"])
        #expect(q.droppedSamples == 2 * 160)
    }

    @Test func aStallThatOutlastsTheTailIsCaughtUpWithinTheWindow() {
        let q = queueAfterOneFrameAndItsSilentTail()
        #expect(q.slot() == .parked)
        // Four slots played none of frames 2-5 (two silent, two parked); they come at once with
        // frame 6, which is due now: eight slots at half spacing catch the caller up.
        q.skipSlots(1)
        for v in Int16(2)...6 { q.enqueue(frame(v), sampleRate: 8000) }
        #expect(q.slot() == sent(2, marker: true, hurry: true))
        for v in Int16(3)...6 { #expect(q.slot() == sent(v, hurry: true)) }
        #expect(q.droppedSamples == 0)
    }

    @Test func fewerFramesThanMissedSlotsAreCaughtUpToo() {
        // A stall upstream: three slots went silent or parked, then two frames came at once.
        let q = queueAfterOneFrameAndItsSilentTail()
        #expect(q.slot() == .parked)
        q.enqueue(frame(2), sampleRate: 8000)
        q.enqueue(frame(3), sampleRate: 8000)
        q.skipSlots(0)
        #expect(q.slot() == sent(2, marker: true, hurry: true))
        #expect(q.slot() == sent(3, hurry: true))
        q.enqueue(frame(4), sampleRate: 8000)
        #expect(q.slot() == sent(4))
    }

    @Test func audioAfterAPauseIsNeverDropped() {
        let q = queueAfterOneFrameAndItsSilentTail()
        _ = q.slot()
        q.skipSlots(10)
        for v in Int16(2)...14 { q.enqueue(frame(v), sampleRate: 8000) }
        #expect(q.slot() == .sent([Int16](repeating: 2, count: 160), marker: true))
        #expect(q.droppedSamples == 0)
    }

    @Test func aLoneFrameAfterOneSilentSlotIsKept() {
        // It may be a late frame or the first of a new burst: both are played.
        let q = queue()
        q.enqueue(frame(1), sampleRate: 8000)
        _ = q.slot()
        _ = q.slot(late: true)
        q.enqueue(frame(2), sampleRate: 8000)
        #expect(q.slot() == .sent([Int16](repeating: 2, count: 160), marker: false))
        #expect(q.droppedSamples == 0)
    }

    @Test func aStandingBacklogOfOneFrameIsCaughtUp() {
        // A real-time source one frame behind for a whole window: the window's last slot and the
        // next come at half spacing, after which each frame plays as it arrives.
        let q = queue()
        let window = PlayoutQueue.backlogWindowSlots
        q.enqueue(frame(0), sampleRate: 8000)
        for n in 1..<window {
            q.enqueue(frame(Int16(n)), sampleRate: 8000)
            #expect(q.slot() == sent(Int16(n - 1), marker: n == 1))
        }
        q.enqueue(frame(Int16(window)), sampleRate: 8000)
        #expect(q.slot() == sent(Int16(window - 1), hurry: true))
        #expect(q.slot() == sent(Int16(window), hurry: true))
        q.enqueue(frame(100), sampleRate: 8000)
        #expect(q.slot() == sent(100))
        #expect(q.droppedSamples == 0)
    }

    @Test func aJitteryStandingBacklogIsCaughtUp() {
        // A real-time source whose frames arrive a little early or late, so the backlog left after
        // each slot moves between one and three frames (bunched up after a hiccup upstream).
        let q = queue()
        var next: Int16 = 0
        func arrive(_ count: Int) {
            for _ in 0..<count {
                q.enqueue(frame(next), sampleRate: 8000)
                next += 1
            }
        }
        arrive(3)
        let arrivals = [0, 0, 3, 1, 1, 1, 0, 2, 1, 1]
        #expect(arrivals.count == PlayoutQueue.backlogWindowSlots)
        var hurried: [Bool] = []
        for (n, count) in arrivals.enumerated() {
            arrive(count)
            let slot = q.slot()
            guard case .sent(let samples, _, let hurry) = slot else {
                Issue.record("slot \(n): \(slot)")
                return
            }
            #expect(samples.first == Int16(n))
            hurried.append(hurry)
        }
        // The window's least backlog was one frame: its last slot and the next come at half spacing.
        #expect(hurried == [Bool](repeating: false, count: arrivals.count - 1) + [true])
        arrive(1)
        #expect(q.slot() == sent(Int16(arrivals.count), hurry: true))
        arrive(1)
        #expect(q.slot() == sent(Int16(arrivals.count + 1)))
        #expect(q.droppedSamples == 0)
    }

    @Test func aBurstSentAheadDrainsAtTheNormalPace() {
        let q = queue()
        for v in Int16(1)...40 { q.enqueue(frame(v), sampleRate: 8000) }
        for v in Int16(1)...40 { #expect(q.slot() == sent(v, marker: v == 1)) }
    }
}
