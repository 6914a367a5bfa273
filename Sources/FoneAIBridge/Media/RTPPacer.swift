import NIOCore

/// Paces every call's AI audio out of the shared RTP socket: one 20 ms packet per call per slot,
/// from one timer on the socket's event loop.
///
/// Each call's slots sit on a fixed 20 ms grid (in whole milliseconds) anchored just after its
/// burst's first audio arrived, so a burst neither waits for a free-running clock nor drifts.
/// Calls wait in a timing wheel of 1 ms buckets; one timer wakes the loop for the next non-empty
/// bucket, every packet due is written, and one flush hands them all to the kernel in a single
/// `sendmmsg`. A call with nothing to play leaves the wheel (an idle daemon has no timer at all)
/// until its playout queue reports new audio. Only the RTP event loop touches this object.
final class RTPPacer {
    static let frameMs: Int64 = 20
    /// How long a slot waits for late audio before padding a partial frame or ending the burst:
    /// almost a whole slot, because audio that misses its slot plays one slot later and, from a
    /// source that streams in real time, every frame after it waits that extra slot too.
    static let graceMs: Int64 = frameMs - 1
    /// A burst's grid starts this long after its first audio arrived (0–1 ms, as the grid is in
    /// whole milliseconds), so the next frames, arriving with the AI's jitter, still find their
    /// slot due rather than just passed and keep the 20 ms spacing.
    static let leadMs: Int64 = 1
    /// The grid follows the AI's timing. Audio that arrives after its slot (by at most
    /// `followLateMs`) moves the grid half that much later, so neither the late packet's
    /// interval nor the next one is off by more than the lateness; audio waiting for its slot
    /// earns the grid a move 1 ms earlier after `earlierAfterWaitMs` (each slot counts the
    /// wait, up to 4 ms: a grid far behind the audio catches up within a second or two). So
    /// the grid settles just behind the AI's frames, whatever phase they keep: about one frame
    /// in a hundred arrives late (by a millisecond or two, mostly), and latency stays low.
    static let followLateMs: Int64 = 5
    static let earlierAfterWaitMs: Int64 = 100
    /// Buckets in the wheel: a power of two above the farthest anything is scheduled ahead (one slot).
    static let wheelSize = 64

    private let channel: any Channel
    private var wheel: [[PacedCall]]
    /// Swapped with the bucket being run, so running a bucket allocates nothing.
    private var spare: [PacedCall] = []
    private var calls: [ObjectIdentifier: PacedCall] = [:]
    /// Every bucket up to and including this millisecond has been run.
    private var ranThroughMs: Int64
    private var timer: (ms: Int64, task: Scheduled<Void>)?
    private(set) var late2ms: UInt64 = 0
    private(set) var late10ms: UInt64 = 0
    private(set) var skippedSlots: UInt64 = 0

    /// A call's place in the pacer.
    final class PacedCall {
        let media: CallMedia
        /// The millisecond of the call's current slot.
        var dueMs: Int64 = 0
        /// The bucket the call waits in, or nil when it is parked (not in the wheel).
        var bucketMs: Int64?
        var stopped = false
        /// The last slot had to wait for its audio.
        var waited = false
        /// Milliseconds audio waited for its slots since the grid last moved earlier.
        var waitedForSlotsMs: Int64 = 0
        /// The last packet's buffer, reused once the kernel has it (NIO then lets go of it).
        var packet: ByteBuffer

        init(media: CallMedia, allocator: ByteBufferAllocator) {
            self.media = media
            packet = allocator.buffer(capacity: 12 + 320)
        }
    }

    init(channel: any Channel) {
        self.channel = channel
        wheel = Array(repeating: [], count: Self.wheelSize)
        ranThroughMs = Self.nowMs()
    }

    static func nowMs() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }

    var activeCalls: Int { calls.count }

    /// Starts playing the call's queue (audio queued before now goes out in the first slot).
    func start(_ media: CallMedia) {
        let key = ObjectIdentifier(media)
        guard calls[key] == nil, !media.isStopped else { return }
        let call = PacedCall(media: media, allocator: channel.allocator)
        call.dueMs = Self.nowMs()
        calls[key] = call
        kick(call)
    }

    /// The call's queue was parked and has audio (or a mark) again.
    func wake(_ media: CallMedia) {
        guard let call = calls[ObjectIdentifier(media)], call.bucketMs == nil else { return }
        kick(call)
    }

    func stop(_ media: CallMedia) {
        guard let call = calls.removeValue(forKey: ObjectIdentifier(media)) else { return }
        // Dropped from its bucket when that bucket runs.
        call.stopped = true
    }

    /// A burst starts: its first slot is `leadMs` from now.
    private func kick(_ call: PacedCall) {
        let first = Self.nowMs() + Self.leadMs
        // The slots that passed while the call was parked.
        call.media.skipSlots(Int((first - call.dueMs) / Self.frameMs))
        call.dueMs = first
        schedule(call, atMs: first)
        armTimer()
    }

    /// Plays the call's slot if it is due at `now`; reschedules or parks it. Returns whether a
    /// packet was written.
    private func run(_ call: PacedCall, atMs now: Int64) -> Bool {
        call.bucketMs = nil
        guard !call.stopped else { return false }
        if now - call.dueMs >= 2 * Self.frameMs {
            // The loop stalled: skip the missed slots rather than send them all at once (Asterisk
            // has no jitter buffer); the playout queue catches up at twice the pace instead.
            let missed = (now - call.dueMs) / Self.frameMs
            skippedSlots &+= UInt64(missed)
            call.media.skipSlots(Int(missed))
            call.dueMs += missed * Self.frameMs
        }
        switch call.media.playSlot(late: now >= call.dueMs + Self.graceMs, into: &call.packet, channel: channel) {
        case .sent(_, let hurry):
            if hurry {
                call.waited = false
                call.dueMs += Self.frameMs / 2
            } else {
                followAudio(call, sentAtMs: now)
                call.dueMs += Self.frameMs
            }
            schedule(call, atMs: max(call.dueMs, now + 1))
            return true
        case .wait:
            call.waited = true
            schedule(call, atMs: now + 1)
            return false
        case .parked:
            call.dueMs += Self.frameMs
            return false
        }
    }

    /// Moves the call's grid after the audio (see `followLateMs`).
    private func followAudio(_ call: PacedCall, sentAtMs now: Int64) {
        if call.waited {
            call.waited = false
            let lateness = now - call.dueMs
            if lateness > 0 && lateness <= Self.followLateMs { call.dueMs += (lateness + 1) / 2 }
            return
        }
        let wait = call.dueMs - call.media.lastAudioArrivalMs
        guard wait >= 1 else { return }
        call.waitedForSlotsMs += min(wait, 4)
        if call.waitedForSlotsMs >= Self.earlierAfterWaitMs {
            call.waitedForSlotsMs = 0
            call.dueMs -= 1
        }
    }

    private func schedule(_ call: PacedCall, atMs ms: Int64) {
        call.bucketMs = ms
        wheel[Int(ms & Int64(Self.wheelSize - 1))].append(call)
    }

    private func timerFired() {
        timer = nil
        let now = Self.nowMs()
        // After a stall longer than the wheel, each bucket is still run once.
        let from = max(ranThroughMs + 1, now - Int64(Self.wheelSize) + 1)
        var wrote = false
        if from <= now {
            for ms in from...now {
                let index = Int(ms & Int64(Self.wheelSize - 1))
                guard !wheel[index].isEmpty else { continue }
                var bucket = wheel[index]
                wheel[index] = spare
                for call in bucket {
                    guard let due = call.bucketMs else { continue }
                    if due > ms {
                        // Scheduled a wheel turn later than this bucket (only after a long stall).
                        wheel[index].append(call)
                    } else if run(call, atMs: now) {
                        wrote = true
                        if now - ms >= 2 { late2ms &+= 1 }
                        if now - ms >= 10 { late10ms &+= 1 }
                    }
                }
                bucket.removeAll(keepingCapacity: true)
                spare = bucket
            }
            ranThroughMs = now
        }
        if wrote { channel.flush() }
        armTimer()
    }

    /// Schedules the timer for the first non-empty bucket after the ones already run.
    private func armTimer() {
        var next: Int64?
        for ms in (ranThroughMs + 1)...(ranThroughMs + Int64(Self.wheelSize)) where !wheel[Int(ms & Int64(Self.wheelSize - 1))].isEmpty {
            next = ms
            break
        }
        guard let next else {
            timer?.task.cancel()
            timer = nil
            return
        }
        if let timer, timer.ms <= next { return }
        timer?.task.cancel()
        let task = channel.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(next) * 1_000_000)) { [self] in
            timerFired()
        }
        timer = (next, task)
    }
}
