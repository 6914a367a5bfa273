import Testing

@testable import FoneAIBridge

/// The pacer's grid rule (`RTPPacer.nextSlot`), in ticks of 0.5 ms: a slot is 40 ticks, the hold 4.
@Suite struct RTPPacerTests {
    typealias P = RTPPacer

    @Test func queuedAudioPlaysExactlyOneFrameApart() {
        // The AI sent ahead: the slot found its frame queued, on time or run late by a busy loop.
        let onTime = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: false, live: false, audioArrivedAt: 500)
        #expect(onTime == (1040, 1040))
        let runLate = P.nextSlot(sentAt: 1003, due: 1000, waited: false, hurry: false, live: false, audioArrivedAt: 500)
        #expect(runLate == (1040, 1040), "the grid stays put: the next interval makes up for the late one")
    }

    @Test func liveAudioThatWaitedTheHoldKeepsTheGrid() {
        let held = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: false, live: true, audioArrivedAt: 1000 - P.holdTicks)
        #expect(held == (1040, 1040))
    }

    @Test func theGridDriftsHalfAMillisecondAFrameTowardsTheHold() {
        // Arrived 2.5 ms before its slot (0.5 ms more than the hold): the next slot comes 0.5 ms sooner.
        let early = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: false, live: true, audioArrivedAt: 995)
        #expect(early == (1039, 1039))
        // Arrived 0.5 ms before its slot: the grid moves 0.5 ms later, not the whole 1.5 ms at once.
        let tight = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: false, live: true, audioArrivedAt: 999)
        #expect(tight == (1041, 1041))
    }

    @Test func bunchedAudioIsCaughtUpFasterTheFurtherBehind() {
        // Waited 3 ms (1 ms beyond the hold): the next packet 18.5 ms after this one.
        let behind = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: false, live: true, audioArrivedAt: 994)
        #expect(behind.due - 1000 == 37)
        // Waited 8 ms (the AI's audio bunched up after a hiccup): 16.5 ms.
        let farBehind = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: false, live: true, audioArrivedAt: 984)
        #expect(farBehind.due - 1000 == 33)
    }

    @Test func aLateFrameRestartsTheGridWhereItWasSent() {
        // The frame arrived 3 ms after its slot: it went out at once and the grid follows it.
        let late = P.nextSlot(sentAt: 1006, due: 1000, waited: true, hurry: false, live: true, audioArrivedAt: 1006)
        #expect(late == (1046, 1046))
    }

    @Test func theFrameAfterALateOneWaitsNoLongerThanCatchUpSpacing() {
        // The late frame went out at 1016 (8 ms after its nominal arrival at 1000), so the grid's
        // next slot is 1056. Its successor arrived on time at 1040: it plays 18.5 ms after the
        // late one, 1.5 ms sooner than that slot, instead of waiting 8 ms.
        #expect(P.slotAfterLateFrame(arrivedAt: 1040, lateSentAt: 1016) == 1016 + 37)
        // It arrived late too, but less: a hold after it arrived, still before the grid's slot.
        #expect(P.slotAfterLateFrame(arrivedAt: 1050, lateSentAt: 1016) == 1050 + P.holdTicks)
        // The AI's timing moved by the late frame's lateness: not sooner than the grid's slot.
        #expect(P.slotAfterLateFrame(arrivedAt: 1056, lateSentAt: 1016) >= 1056)
    }

    @Test func hurriedWholeFramesComeHalfAFrameApart() {
        let hurried = P.nextSlot(sentAt: 1000, due: 1000, waited: false, hurry: true, live: false, audioArrivedAt: 900)
        #expect(hurried == (1020, 1020))
    }

    @Test func theNextSlotIsNeverThisTick() {
        // A slot run very late, with a frame still queued: its successor is already due.
        let stalled = P.nextSlot(sentAt: 1070, due: 1000, waited: false, hurry: false, live: false, audioArrivedAt: 900)
        #expect(stalled == (1040, 1071))
    }
}
