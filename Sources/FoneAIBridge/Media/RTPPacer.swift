import NIOCore

/// Paces every call's AI audio out of the shared RTP socket: one 20 ms packet per call per slot,
/// from one timer on the socket's event loop.
///
/// Audio the AI streams in real time plays `holdTicks` (2 ms) after it arrives: the call's 20 ms
/// grid sits that far behind the AI's frames, so a frame up to 2 ms late still goes out on the
/// grid and the caller hears the AI's jitter only beyond that. After each live frame the grid
/// moves towards the hold: 0.5 ms a frame while it is close, 1.5 ms a frame (18.5 ms spacing) once
/// frames wait 1 ms too long, 3.5 ms a frame once they wait 4 ms too long (the AI's audio bunched
/// up after a hiccup upstream). A frame that misses its slot goes out as it arrives and the grid
/// restarts there; if the next frame then comes on time, it plays a hold after it arrives, but no
/// sooner than 18.5 ms after the late one. Audio already queued (the AI sent ahead, or a backlog)
/// plays on the grid, exactly 20 ms apart.
///
/// Calls wait in a timing wheel of 0.5 ms buckets; one timer wakes the loop for the next
/// non-empty bucket, every packet due is written, and one flush hands them all to the kernel in a
/// single `sendmmsg`. A call with nothing to play leaves the wheel (an idle daemon has no timer at
/// all) until its playout queue reports new audio. Only the RTP event loop touches this object.
final class RTPPacer {
    /// The wheel's resolution.
    static let tickNanos: UInt64 = 500_000
    static let ticksPerMs: Int64 = 2
    static let frameMs: Int64 = 20
    static let frameTicks = frameMs * ticksPerMs
    /// How long a slot waits for late audio before padding a partial frame or ending the burst:
    /// almost a whole slot, because audio that misses its slot plays one slot later and, from a
    /// source that streams in real time, every frame after it waits that extra slot too.
    static let graceTicks = frameTicks - 2
    /// How long live audio waits for its slot (2 ms): the jitter the caller does not hear, and
    /// latency every live frame pays. A burst's first slot is this long after its audio arrived.
    static let holdTicks: Int64 = 4
    /// How far the grid moves towards the hold after a live frame (see `gridShift`).
    static let driftTicks: Int64 = 1
    static let behindTicks: Int64 = 2
    static let catchUpTicks: Int64 = 3
    static let farBehindTicks: Int64 = 8
    static let farCatchUpTicks: Int64 = 7
    /// Buckets in the wheel: a power of two above the farthest anything is scheduled ahead (one slot).
    static let wheelSize = 64

    /// The RTP socket's handler: packets written through it are wrapped without generic casts.
    private let output: ChannelHandlerContext
    private var wheel: [[PacedCall]]
    /// Swapped with the bucket being run, so running a bucket allocates nothing.
    private var spare: [PacedCall] = []
    private var calls: [ObjectIdentifier: PacedCall] = [:]
    /// Every bucket up to and including this tick has been run.
    private var ranThrough: Int64
    private var timer: (tick: Int64, task: Scheduled<Void>)?
    /// A flush is scheduled for the end of this event-loop turn.
    private var flushPending = false
    private(set) var late2ms: UInt64 = 0
    private(set) var late10ms: UInt64 = 0
    private(set) var skippedSlots: UInt64 = 0

    /// A call's place in the pacer.
    final class PacedCall {
        let media: CallMedia
        /// The tick of the call's current slot on its 20 ms grid.
        var due: Int64 = 0
        /// The bucket the call waits in, or nil when it is parked (not in the wheel).
        var bucket: Int64?
        var stopped = false
        /// The current slot opened before its frame had arrived.
        var waited = false
        /// The current slot's frame was not yet queued when the previous packet went out: it is
        /// live audio, and its wait tells where the grid stands against the AI's timing.
        var live = true
        /// The previous packet's frame arrived after its slot and went out at this tick, so the
        /// grid restarted there (see `audioArrived`).
        var lateSentAt: Int64?
        /// The last packet's buffer, reused once the kernel has it (NIO then lets go of it).
        var packet: ByteBuffer

        init(media: CallMedia, allocator: ByteBufferAllocator) {
            self.media = media
            packet = allocator.buffer(capacity: 12 + 320)
        }
    }

    init(output: ChannelHandlerContext) {
        self.output = output
        wheel = Array(repeating: [], count: Self.wheelSize)
        ranThrough = Self.now()
    }

    /// The current tick.
    static func now() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds / tickNanos) }

    var activeCalls: Int { calls.count }

    /// Starts playing the call's queue (audio queued before now goes out in the first slot).
    func start(_ media: CallMedia) {
        let key = ObjectIdentifier(media)
        guard calls[key] == nil, !media.isStopped else { return }
        let call = PacedCall(media: media, allocator: output.channel.allocator)
        call.due = Self.now()
        calls[key] = call
        kick(call)
    }

    /// The call's queue was parked and has audio (or a mark) again.
    func wake(_ media: CallMedia) {
        guard let call = calls[ObjectIdentifier(media)], call.bucket == nil else { return }
        kick(call)
    }

    /// AI audio arrived for the call: a slot that opened and waits for it plays it now, rather
    /// than at the next tick. After a late frame, the next frame may come sooner than the
    /// restarted grid expects (the late one was a hiccup, not a shift of the AI's timing): it
    /// then plays `holdTicks` after it arrived, but no sooner than catch-up spacing (18.5 ms)
    /// after the late one, instead of waiting as long as the late one was late.
    func audioArrived(_ media: CallMedia) {
        guard let call = calls[ObjectIdentifier(media)], call.bucket != nil else { return }
        // Either way the call's entry in the wheel goes stale (see `timerFired`).
        if call.waited {
            if run(call, at: Self.now()) { flushSoon() }
        } else if let lateSentAt = call.lateSentAt, media.playout.hasWholeFrame {
            call.lateSentAt = nil
            let sooner = Self.slotAfterLateFrame(arrivedAt: Self.now(), lateSentAt: lateSentAt)
            guard sooner < call.due else { return }
            call.due = sooner
            schedule(call, at: sooner)
        } else {
            return
        }
        armTimer()
    }

    /// Flushes once the event loop has handled this turn's I/O, so the packets of every AI frame
    /// that arrived in it go to the kernel in one `sendmmsg`.
    private func flushSoon() {
        guard !flushPending else { return }
        flushPending = true
        output.eventLoop.assumeIsolated().execute { [self] in
            flushPending = false
            output.flush()
        }
    }

    func stop(_ media: CallMedia) {
        guard let call = calls.removeValue(forKey: ObjectIdentifier(media)) else { return }
        // Dropped from its bucket when that bucket runs.
        call.stopped = true
    }

    /// A burst starts: its first slot is `holdTicks` from now.
    private func kick(_ call: PacedCall) {
        let first = Self.now() + Self.holdTicks
        // The slots that passed while the call was parked.
        call.media.skipSlots(Int((first - call.due) / Self.frameTicks))
        call.due = first
        call.waited = false
        call.live = true
        schedule(call, at: first)
        armTimer()
    }

    /// Plays the call's slot if its audio is there at tick `now`; reschedules or parks it.
    /// Returns whether a packet was written.
    private func run(_ call: PacedCall, at now: Int64) -> Bool {
        call.bucket = nil
        let wasLate = call.waited
        call.lateSentAt = nil
        guard !call.stopped else { return false }
        if now - call.due >= 2 * Self.frameTicks {
            // The loop stalled: skip the missed slots rather than send them all at once (Asterisk
            // has no jitter buffer); the playout queue catches up at twice the pace instead.
            let missed = (now - call.due) / Self.frameTicks
            skippedSlots &+= UInt64(missed)
            call.media.skipSlots(Int(missed))
            call.due += missed * Self.frameTicks
        }
        switch call.media.playSlot(late: now >= call.due + Self.graceTicks, into: &call.packet, output: output) {
        case .sent(_, let hurry, let nextFrameQueued):
            let next = Self.nextSlot(sentAt: now, due: call.due, waited: call.waited, hurry: hurry,
                                     live: call.live, audioArrivedAt: call.media.lastAudioArrival)
            call.due = next.due
            call.waited = false
            call.live = !nextFrameQueued
            if wasLate && !hurry && !nextFrameQueued { call.lateSentAt = now }
            schedule(call, at: next.opens)
            return true
        case .wait:
            call.waited = true
            schedule(call, at: now + 1)
            return false
        case .parked:
            call.due += Self.frameTicks
            call.waited = false
            return false
        }
    }

    /// Where a call's grid goes after a packet was sent at tick `now` for the slot due at `due`,
    /// and when the next slot opens.
    /// - waited: the slot opened before its frame had arrived (the frame went out as it arrived).
    /// - hurry: the playout queue is catching up whole frames (the next slot is half a frame away).
    /// - live: the frame arrived after the previous packet went out.
    /// - audioArrivedAt: when the call's latest AI audio arrived.
    static func nextSlot(sentAt now: Int64, due: Int64, waited: Bool, hurry: Bool,
                         live: Bool, audioArrivedAt: Int64) -> (due: Int64, opens: Int64) {
        let next: Int64
        if hurry {
            next = due + frameTicks / 2
        } else if waited {
            next = now + frameTicks
        } else if live {
            next = due + frameTicks - gridShift(waitBeyondHold: due - audioArrivedAt - holdTicks)
        } else {
            // Queued audio keeps the grid, even when the loop ran this slot late.
            next = due + frameTicks
        }
        return (next, max(next, now + 1))
    }

    /// When a frame that arrived at tick `now` plays, if the previous frame arrived after its slot
    /// and went out at `lateSentAt`: a hold after its arrival, but no sooner than catch-up spacing
    /// after the late one. Later than the restarted grid's slot (`lateSentAt + frameTicks`) means
    /// the AI's timing moved, and that slot stands.
    static func slotAfterLateFrame(arrivedAt now: Int64, lateSentAt: Int64) -> Int64 {
        max(now + holdTicks, lateSentAt + frameTicks - catchUpTicks)
    }

    /// How much sooner the next slot comes after a live frame that waited `waitBeyondHold` ticks
    /// longer than the hold (negative: shorter, so the grid moves later).
    static func gridShift(waitBeyondHold: Int64) -> Int64 {
        if waitBeyondHold >= farBehindTicks { return farCatchUpTicks }
        if waitBeyondHold >= behindTicks { return catchUpTicks }
        return min(max(waitBeyondHold, -driftTicks), driftTicks)
    }

    private func schedule(_ call: PacedCall, at tick: Int64) {
        call.bucket = tick
        wheel[Int(tick & Int64(Self.wheelSize - 1))].append(call)
    }

    private func timerFired() {
        timer = nil
        let now = Self.now()
        // After a stall longer than the wheel, each bucket is still run once.
        let from = max(ranThrough + 1, now - Int64(Self.wheelSize) + 1)
        var wrote = false
        if from <= now {
            for tick in from...now {
                let index = Int(tick & Int64(Self.wheelSize - 1))
                guard !wheel[index].isEmpty else { continue }
                var bucket = wheel[index]
                wheel[index] = spare
                for call in bucket {
                    // A call that played early (`audioArrived`) or stopped leaves a stale entry.
                    guard let due = call.bucket, Int(due & Int64(Self.wheelSize - 1)) == index else { continue }
                    if due > tick {
                        // Scheduled a wheel turn later than this bucket (only after a long stall).
                        wheel[index].append(call)
                    } else if run(call, at: now) {
                        wrote = true
                        if now - tick >= 2 * Self.ticksPerMs { late2ms &+= 1 }
                        if now - tick >= 10 * Self.ticksPerMs { late10ms &+= 1 }
                    }
                }
                bucket.removeAll(keepingCapacity: true)
                spare = bucket
            }
            ranThrough = now
        }
        if wrote { output.flush() }
        armTimer()
    }

    /// Schedules the timer for the first non-empty bucket after the ones already run.
    private func armTimer() {
        var next: Int64?
        for tick in (ranThrough + 1)...(ranThrough + Int64(Self.wheelSize)) where !wheel[Int(tick & Int64(Self.wheelSize - 1))].isEmpty {
            next = tick
            break
        }
        guard let next else {
            timer?.task.cancel()
            timer = nil
            return
        }
        if let timer, timer.tick <= next { return }
        timer?.task.cancel()
        let task = output.eventLoop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(UInt64(next) * Self.tickNanos)) { [self] in
            timerFired()
        }
        timer = (next, task)
    }
}
