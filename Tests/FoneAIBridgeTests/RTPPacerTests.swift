import Testing

@testable import FoneAIBridge

/// The pacer's grid rule (`RTPPacer.nextSlot`), in ticks of 0.5 ms: a slot is 40 ticks.
@Suite struct RTPPacerTests {
    typealias P = RTPPacer

    @Test func queuedAudioPlaysExactlyOneFrameApart() {
        // The AI sent ahead: the slot found its frame queued, on time or run late by a busy loop.
        let onTime = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: false, audioArrivedAt: 500, wholeFrameQueued: true)
        #expect(onTime == (1040, 1040))
        let runLate = P.nextSlot(sentAt: 1003, due: 1000, waited: false, hurry: false, audioArrivedAt: 500, wholeFrameQueued: true)
        #expect(runLate == (1040, 1040), "the grid stays put: the next interval makes up for the late one")
    }

    @Test func liveAudioReanchorsTheGridWhereItWasSent() {
        // The frame arrived 3 ms after its slot: it went out at once and the grid follows it.
        let late = P.nextSlot(sentAt: 1006, due: 1000, waited: true, hurry: false, audioArrivedAt: 1006, wholeFrameQueued: false)
        #expect(late == (1046, 1043), "the next slot opens 18.5 ms after this packet")
        // The frame arrived 1 ms early, inside the slot's early opening: the grid moves earlier.
        let early = P.nextSlot(sentAt: 998, due: 1000, waited: true, hurry: false, audioArrivedAt: 998, wholeFrameQueued: false)
        #expect(early == (1038, 1035))
    }

    @Test func aFrameFoundWaitingWhenItsSlotOpenedGoesOutThen() {
        // A frame that arrived 1 ms before its slot opened early: sent at the opening, 1.5 ms early.
        let justEarly = P.nextSlot(sentAt: 997, due: 1000, waited: false, hurry: false, audioArrivedAt: 995, wholeFrameQueued: false)
        #expect(justEarly == (1037, 1034))
    }

    @Test func bunchedAudioIsCaughtUpAtFifteenMilliseconds() {
        // The frame had waited 6 ms when its slot opened (the AI's audio bunched up after a hiccup):
        // the next slot opens 15 ms after this packet instead of 18.5.
        let behind = P.nextSlot(sentAt: 997, due: 1000, waited: false, hurry: false, audioArrivedAt: 985, wholeFrameQueued: false)
        #expect(behind == (1030, 1027))
        #expect(behind.opens - 997 == 15 * P.ticksPerMs)
    }

    @Test func hurriedWholeFramesComeHalfAFrameApart() {
        let hurried = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: true, audioArrivedAt: 900, wholeFrameQueued: true)
        #expect(hurried == (1020, 1020))
    }

    @Test func theNextSlotIsNeverThisTick() {
        // A slot run very late, with a frame still queued: its successor is already due.
        let stalled = P.nextSlot(sentAt: 1070, due: 1000, waited: false, hurry: false, audioArrivedAt: 900, wholeFrameQueued: true)
        #expect(stalled == (1040, 1071))
    }
}
