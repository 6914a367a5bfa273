import NIOCore
import Synchronization

/// AI audio waiting to be played to the caller: resampled to the leg's output rate, bounded,
/// with marks, and handed out one 20 ms frame per pacer slot. Shared by the RTP and WebSocket
/// media legs; its lock is this call's own.
///
/// Audio goes out as soon as a whole frame is queued: there is no prebuffer, so the bridge adds
/// only the resampler's filter delay (about 2 ms) and the wait for the call's next 20 ms slot.
/// When a slot finds less than a frame, the pacer waits a little for late audio (`take(late:)`)
/// before padding or ending the burst. With nothing queued or owed the queue *parks*: the pacer
/// stops visiting it and the next `enqueue` or `addMark` says so, so the pacer can be woken.
public final class PlayoutQueue: Sendable {
    /// Silent frames sent after a burst, so Asterisk lets go of its last ~10 ms now.
    static let silentTailFrames = 2

    public let outputRate: Int
    public let frameSamples: Int
    private let state: Mutex<State>

    struct State: ~Copyable {
        var playout: PlayoutBuffer
        var resampler: Resampler
        var aiSampleRate: Int
        /// Whether the resampler's delay has been queued as leading silence. The resampler only
        /// outputs samples whose whole filter support it has seen; with that delay in front, each
        /// 20 ms of AI audio completes exactly one frame instead of ending ~2 ms short of one.
        var primed = false
        var parked = true
        var silentTail = 0
        var inSilentTail = false
        /// Slots since the last audio frame that played none (silence after a burst, or stalls).
        var missedSlots = 0
        /// Slots still to play at half spacing, catching up audio that bunched up (see `catchUp`).
        var hurrySlots = 0
        /// The frames left queued after each slot of the current backlog window (see `watchBacklog`).
        var backlogSlots = 0
        var backlogMin = 0
        var backlogMax = 0
        var startsTalkspurt = true
        var frame: [Int16]
        var resampled: [Int16] = []
    }

    public init(outputRate: Int, frameMs: Int = 20, maxBufferedMs: Int, aiSampleRate: Int) {
        self.outputRate = outputRate
        frameSamples = outputRate * frameMs / 1000
        state = Mutex(State(playout: PlayoutBuffer(capacity: outputRate * maxBufferedMs / 1000),
                            resampler: Resampler(from: aiSampleRate, to: outputRate), aiSampleRate: aiSampleRate,
                            frame: Array(repeating: 0, count: outputRate * frameMs / 1000)))
    }

    /// Queues AI audio (PCM16LE at `sampleRate`). Returns true when the queue was parked: the
    /// caller must wake the pacer.
    @discardableResult
    public func enqueue(_ pcm: ByteBuffer, sampleRate: Int) -> Bool {
        state.withLock { state in
            if sampleRate != state.aiSampleRate {
                state.aiSampleRate = sampleRate
                state.resampler = Resampler(from: sampleRate, to: outputRate)
                state.primed = false
            }
            state.resampled.removeAll(keepingCapacity: true)
            if !state.primed {
                state.primed = true
                let delay = state.resampler.latencyInputSamples * outputRate / sampleRate
                state.resampled.append(contentsOf: repeatElement(0, count: delay))
            }
            state.resampler.process(pcm16LE: pcm, into: &state.resampled)
            state.resampled.withUnsafeBufferPointer { state.playout.append($0) }
            return Self.unpark(&state)
        }
    }

    /// Adds a mark after the audio queued now. Returns true when the pacer must be woken (to
    /// report the mark once everything before it has played).
    @discardableResult
    public func addMark(_ name: String) -> Bool {
        state.withLock { state in
            state.playout.appendMark(name)
            return Self.unpark(&state)
        }
    }

    private static func unpark(_ state: inout State) -> Bool {
        guard state.parked else { return false }
        state.parked = false
        return true
    }

    /// Barge-in: drops queued audio; returns the marks that will now never be reached.
    public func clear() -> [String] {
        state.withLock { state in
            // The resampler still holds the start of the dropped audio.
            state.resampler.reset()
            state.primed = false
            state.silentTail = 0
            state.inSilentTail = false
            state.missedSlots = 0
            state.hurrySlots = 0
            state.backlogSlots = 0
            state.startsTalkspurt = true
            return state.playout.clear()
        }
    }

    /// A whole frame is queued for the next slot.
    public var hasWholeFrame: Bool { state.withLock { $0.playout.depthSamples >= $0.frame.count } }
    /// Nothing queued or owed: the caller has heard everything the AI sent.
    public var isIdle: Bool { state.withLock { $0.playout.depthSamples == 0 && $0.silentTail == 0 } }
    public var depthMs: Int { state.withLock { $0.playout.depthSamples * 1000 / outputRate } }
    public var droppedSamples: Int { state.withLock { $0.playout.droppedSamples } }

    /// `slots` slots passed without sending (the pacer stalled, or the queue was parked): the
    /// next packet starts a talkspurt, and the slots count as missed (see `catchUp`).
    public func skipSlots(_ slots: Int) {
        state.withLock { state in
            state.startsTalkspurt = true
            state.missedSlots += slots
        }
    }

    /// Missed slots older than this are a pause, not a stall: audio after it starts a new burst.
    static let catchUpWindowSlots = 5

    /// Audio is back after slots that played none of it (the pacer stalled, or the audio came
    /// too late and the caller heard silence instead). If what is queued is no more than those
    /// slots should have played, the source streams in real time and that audio bunched up:
    /// played at the normal pace it would keep the caller behind for the rest of the burst, so
    /// it is played at twice the pace until the caller is back in time (each hurried slot
    /// gains 10 ms; nothing is dropped). Audio the AI sent ahead (a deeper queue), a lone frame
    /// (it may start a new burst), and audio after a pause (more than `catchUpWindowSlots`)
    /// play at the normal pace.
    private func catchUp(_ state: inout State) {
        let frames = state.playout.depthSamples / frameSamples
        let missed = state.missedSlots
        if missed <= Self.catchUpWindowSlots && frames >= 2 && frames <= missed + 1 {
            state.hurrySlots = 2 * (frames - 1)
        }
        state.missedSlots = 0
    }

    /// Slots a backlog is watched before it is caught up (200 ms: a source that bunched up after
    /// a hiccup keeps the caller behind only that long).
    static let backlogWindowSlots = 10
    /// How much the backlog may vary over the window and still count as standing (the source's
    /// jitter moves a frame's arrival to either side of a slot).
    static let backlogJitterFrames = 2
    /// Deeper than this (in frames) the AI sent audio ahead, which plays at the normal pace.
    static let maxCaughtUpBacklog = 4

    /// A small backlog that stays (audio that bunched up while the slot still waited for it,
    /// so no slot was missed) keeps the caller that far behind for the rest of a real-time
    /// stream: when every slot of a window left between `n` and `n + backlogJitterFrames` frames queued, with
    /// `n` at most `maxCaughtUpBacklog`, the next `2n` slots come at half spacing. A burst the
    /// AI sent ahead drains steadily or runs deeper, and is left alone.
    private func watchBacklog(_ state: inout State) {
        let frames = state.playout.depthSamples / frameSamples
        guard frames > 0, state.hurrySlots == 0 else {
            state.backlogSlots = 0
            return
        }
        if state.backlogSlots == 0 {
            (state.backlogMin, state.backlogMax) = (frames, frames)
        } else {
            state.backlogMin = min(state.backlogMin, frames)
            state.backlogMax = max(state.backlogMax, frames)
        }
        state.backlogSlots += 1
        guard state.backlogSlots >= Self.backlogWindowSlots else { return }
        state.backlogSlots = 0
        if state.backlogMin <= Self.maxCaughtUpBacklog && state.backlogMax <= state.backlogMin + Self.backlogJitterFrames {
            state.hurrySlots = 2 * state.backlogMin
        }
    }

    public enum Take<R: Sendable>: Sendable {
        /// `emit` was called with this slot's frame; `hurry`: the next slot comes after half a
        /// frame (catching up, see `catchUp`); `nextFrameQueued`: a whole frame is already queued
        /// for the next slot.
        case sent(R, hurry: Bool, nextFrameQueued: Bool)
        /// Less than a frame is queued, or a burst has just run dry: ask again shortly (with
        /// `late: true` once the slot's grace is over).
        case wait
        /// Nothing to send and nothing owed; the queue is parked until `enqueue` or `addMark`.
        case parked
    }

    /// One 20 ms slot. `emit` gets the frame to send (audio, or silence after a burst) and whether
    /// it starts a talkspurt. `late`: the slot's grace for late audio is over, so a partial frame
    /// is sent padded with silence and a burst that ran dry is over. Also returns the marks
    /// playback has now reached.
    public func take<R: Sendable>(late: Bool, _ emit: (UnsafeBufferPointer<Int16>, _ startsTalkspurt: Bool) -> R) -> (Take<R>, [String]) {
        state.withLock { state in
            let count = state.frame.count
            if state.missedSlots > 0 && state.playout.depthSamples >= count { catchUp(&state) }
            let depth = state.playout.depthSamples
            if depth >= count || (depth > 0 && late) {
                _ = state.frame.withUnsafeMutableBufferPointer { state.playout.popFrame(count: count, into: $0) }
                state.silentTail = Self.silentTailFrames
                state.inSilentTail = false
                state.missedSlots = 0
                watchBacklog(&state)
            } else if depth > 0 || (state.silentTail > 0 && !state.inSilentTail && !late) {
                return (.wait, Self.reachedMarks(&state))
            } else if state.silentTail > 0 {
                state.inSilentTail = true
                state.silentTail -= 1
                state.missedSlots += 1
                state.frame.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            } else {
                state.parked = true
                state.inSilentTail = false
                state.hurrySlots = 0
                state.missedSlots += 1
                state.startsTalkspurt = true
                return (.parked, Self.reachedMarks(&state))
            }
            let starts = state.startsTalkspurt
            state.startsTalkspurt = false
            let hurry = state.hurrySlots > 0
            if hurry { state.hurrySlots -= 1 }
            let result = state.frame.withUnsafeBufferPointer { emit($0, starts) }
            let nextFrameQueued = state.playout.depthSamples >= count
            return (.sent(result, hurry: hurry, nextFrameQueued: nextFrameQueued), Self.reachedMarks(&state))
        }
    }

    private static func reachedMarks(_ state: inout State) -> [String] {
        state.playout.hasPendingMarks ? state.playout.takeReachedMarks() : []
    }
}

/// What a call needs from its media leg, whichever transport carries the audio.
public protocol MediaLeg: Sendable {
    var playout: PlayoutQueue { get }
    var packetsIn: UInt64 { get }
    var packetsOut: UInt64 { get }
    var packetsDropped: UInt64 { get }
    /// Whether queued audio is actually being played (the pacer runs and has not been stopped).
    var isPacing: Bool { get }
    /// Queues AI audio (PCM16LE at `sampleRate`) for the caller.
    func enqueueAudio(_ pcm: ByteBuffer, sampleRate: Int)
    /// Adds a mark after the audio queued now.
    func addMark(_ name: String)
}
