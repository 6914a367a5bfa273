import NIOCore
import Synchronization

/// AI audio waiting to be played to the caller: resampled to the leg's output rate, bounded,
/// with marks, and handed out one 20 ms frame per pacer tick. Shared by the RTP and WebSocket
/// media legs; its lock is this call's own.
public final class PlayoutQueue: Sendable {
    /// A talkspurt starts once this many frames are queued (or after as many ticks of waiting):
    /// AI audio arrives with jitter and the resampler holds back a few samples, so starting on
    /// the first partial frame would pad nearly every packet with zeros.
    static let prebufferFrames = 2
    /// Silent frames sent after a burst, so Asterisk lets go of its last ~10 ms now.
    static let silentTailFrames = 2

    public let outputRate: Int
    public let frameSamples: Int
    private let state: Mutex<State>

    struct State: ~Copyable {
        var playout: PlayoutBuffer
        var resampler: Resampler
        var aiSampleRate: Int
        var silentTail = 0
        var startsTalkspurt = true
        var talking = false
        var prebufferTicks = 0
        var frame: [Int16]
        var decoded: [Int16] = []
        var resampled: [Int16] = []
    }

    public init(outputRate: Int, frameMs: Int = 20, maxBufferedMs: Int, aiSampleRate: Int) {
        self.outputRate = outputRate
        frameSamples = outputRate * frameMs / 1000
        state = Mutex(State(playout: PlayoutBuffer(capacity: outputRate * maxBufferedMs / 1000),
                            resampler: Resampler(from: aiSampleRate, to: outputRate), aiSampleRate: aiSampleRate,
                            frame: Array(repeating: 0, count: outputRate * frameMs / 1000)))
    }

    /// Queues AI audio (PCM16LE at `sampleRate`).
    public func enqueue(_ pcm: ByteBuffer, sampleRate: Int) {
        state.withLock { state in
            if sampleRate != state.aiSampleRate {
                state.aiSampleRate = sampleRate
                state.resampler = Resampler(from: sampleRate, to: outputRate)
            }
            PCM16.appendLittleEndian(pcm.readableBytesView, to: &state.decoded)
            state.resampled.removeAll(keepingCapacity: true)
            state.decoded.withUnsafeBufferPointer { state.resampler.process($0, into: &state.resampled) }
            state.decoded.removeAll(keepingCapacity: true)
            state.resampled.withUnsafeBufferPointer { state.playout.append($0) }
        }
    }

    public func addMark(_ name: String) {
        state.withLock { $0.playout.appendMark(name) }
    }

    /// Barge-in: drops queued audio; returns the marks that will now never be reached.
    public func clear() -> [String] {
        state.withLock { state in
            state.talking = false
            state.prebufferTicks = 0
            return state.playout.clear()
        }
    }

    /// Nothing queued or owed: the caller has heard everything the AI sent.
    public var isIdle: Bool { state.withLock { $0.playout.depthSamples == 0 && $0.silentTail == 0 } }
    public var depthMs: Int { state.withLock { $0.playout.depthSamples * 1000 / outputRate } }
    public var droppedSamples: Int { state.withLock { $0.playout.droppedSamples } }

    /// A slot that passed without sending (the pacer stalled): the next packet starts a talkspurt.
    public func skipSlot() {
        state.withLock { $0.startsTalkspurt = true }
    }

    /// One 20 ms slot. `emit` gets the frame to send (audio, or silence after a burst) and whether
    /// it starts a talkspurt; it is not called when there is nothing to send. Also returns the
    /// marks playback has now reached.
    public func tick<R: Sendable>(_ emit: (UnsafeBufferPointer<Int16>, _ startsTalkspurt: Bool) -> R) -> (R?, [String]) {
        state.withLock { state in
            let count = state.frame.count
            if !state.talking && state.playout.depthSamples > 0 {
                state.prebufferTicks += 1
                if state.playout.depthSamples >= count * Self.prebufferFrames || state.prebufferTicks > Self.prebufferFrames {
                    state.talking = true
                    state.prebufferTicks = 0
                }
            }
            let hadAudio = state.talking && state.frame.withUnsafeMutableBufferPointer { state.playout.popFrame(count: count, into: $0) }
            let marks = state.playout.hasPendingMarks ? state.playout.takeReachedMarks() : []
            if hadAudio {
                state.silentTail = Self.silentTailFrames
            } else if state.silentTail > 0 {
                state.talking = false
                state.silentTail -= 1
                state.frame.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
            } else {
                state.talking = false
                state.startsTalkspurt = true
                return (nil, marks)
            }
            let starts = state.startsTalkspurt
            state.startsTalkspurt = false
            return (state.frame.withUnsafeBufferPointer { emit($0, starts) }, marks)
        }
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
}
