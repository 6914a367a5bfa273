/// A bounded FIFO of 16-bit samples waiting to be played to the caller, with named marks.
///
/// When appending would exceed the capacity the OLDEST samples are dropped (and counted in
/// `droppedSamples`): late audio is worth less than current audio. A mark sits after the samples
/// queued when it was added; it is "reached" once every sample before it has been played (or
/// dropped), and is then returned once by `takeReachedMarks()`.
///
/// `popFrame` does not allocate.
public struct PlayoutBuffer: Sendable {
    public struct Mark: Sendable, Equatable {
        public let name: String
        /// Absolute sample position (count of samples ever appended when the mark was added).
        public let position: UInt64
    }

    /// The most samples held at once.
    public let capacity: Int

    var storage: [Int16]
    /// Index in `storage` of the oldest queued sample.
    var head = 0
    /// Samples queued.
    var count = 0
    /// Samples ever appended.
    var writtenTotal: UInt64 = 0
    /// Samples ever played or dropped (the absolute position of `head`).
    var consumedTotal: UInt64 = 0
    var marks: [Mark] = []

    /// Samples dropped because the buffer was full.
    public private(set) var droppedSamples: Int = 0
    /// Samples handed out by `popFrame` (excluding zero padding).
    public private(set) var playedSamples: Int = 0

    /// - Parameter capacitySamples: at least 1.
    public init(capacitySamples: Int) {
        precondition(capacitySamples > 0, "capacity must be positive")
        capacity = capacitySamples
        storage = [Int16](repeating: 0, count: min(capacitySamples, Self.initialRingSamples))
    }

    /// The ring starts this small and doubles as needed up to `capacity`: a call rarely queues
    /// more than a few seconds, and a full 10 s ring per call would be most of its memory.
    static let initialRingSamples = 2048

    /// Capacity `maxBufferedMs` of audio at `sampleRate` (e.g. 10000 ms at 8000 Hz = 80000 samples).
    /// Same as `init(capacitySamples:)`; a capacity below 1 is raised to 1.
    public init(capacity: Int) {
        self.init(capacitySamples: max(1, capacity))
    }

    public init(sampleRate: Int, maxBufferedMs: Int) {
        self.init(capacitySamples: max(1, sampleRate * maxBufferedMs / 1000))
    }

    /// Samples queued and not yet played.
    public var depthSamples: Int { count }
    public var isEmpty: Bool { count == 0 }
    /// Marks not yet returned by `takeReachedMarks` or `clear`.
    public var pendingMarkCount: Int { marks.count }
    /// Whether any mark waits to be reached or taken (cheap; no allocation).
    public var hasPendingMarks: Bool { !marks.isEmpty }

    /// Queues samples, dropping the oldest queued ones if the capacity would be exceeded.
    public mutating func append(_ samples: UnsafeBufferPointer<Int16>) {
        var input = samples
        if input.count > capacity {
            // Only the newest `capacity` samples can be kept.
            let skip = input.count - capacity
            droppedSamples += skip
            writtenTotal += UInt64(skip)
            dropQueued(count)
            consumedTotal = writtenTotal
            input = UnsafeBufferPointer(rebasing: input[skip...])
        }
        let overflow = count + input.count - capacity
        if overflow > 0 { dropQueued(overflow) }
        if count + input.count > storage.count { grow(toHold: count + input.count) }
        let ring = storage.count
        storage.withUnsafeMutableBufferPointer { buf in
            var tail = (head + count) % ring
            var remaining = input[...]
            while !remaining.isEmpty {
                let n = min(remaining.count, ring - tail)
                let chunk = remaining.prefix(n)
                _ = UnsafeMutableBufferPointer(rebasing: buf[tail..<(tail + n)]).initialize(fromContentsOf: chunk)
                remaining = remaining.dropFirst(n)
                tail = (tail + n) % ring
            }
        }
        count += input.count
        writtenTotal += UInt64(input.count)
    }

    /// Doubles the ring (at most to `capacity`) and moves the queued samples to its start.
    mutating func grow(toHold needed: Int) {
        var size = storage.count
        while size < needed { size *= 2 }
        size = min(size, capacity)
        var bigger = [Int16](repeating: 0, count: size)
        let ring = storage.count
        storage.withUnsafeBufferPointer { old in
            for i in 0..<count { bigger[i] = old[(head + i) % ring] }
        }
        storage = bigger
        head = 0
    }

    public mutating func append(_ samples: [Int16]) {
        samples.withUnsafeBufferPointer { append($0) }
    }

    /// Drops the oldest `n` queued samples, counting them as dropped.
    mutating func dropQueued(_ n: Int) {
        let n = min(n, count)
        guard n > 0 else { return }
        head = (head + n) % storage.count
        count -= n
        consumedTotal += UInt64(n)
        droppedSamples += n
    }

    /// Adds a mark after the samples queued now (reached at once if nothing is queued).
    public mutating func appendMark(_ name: String) {
        marks.append(Mark(name: name, position: writtenTotal))
    }

    /// Takes `frameCount` samples into `out[0..<frameCount]`; a short last frame is padded with zeros.
    /// Returns false (and leaves `out` untouched) when nothing is queued.
    /// - Precondition: `out.count >= frameCount`.
    public mutating func popFrame(count frameCount: Int, into out: UnsafeMutableBufferPointer<Int16>) -> Bool {
        precondition(out.count >= frameCount, "output buffer too small")
        guard count > 0, frameCount > 0 else { return false }
        let n = min(frameCount, count)
        let ring = storage.count
        let to = out.baseAddress!
        storage.withUnsafeBufferPointer { buf in
            let first = min(n, ring - head)
            to.update(from: buf.baseAddress! + head, count: first)
            if n > first { (to + first).update(from: buf.baseAddress!, count: n - first) }
        }
        if n < frameCount { (to + n).update(repeating: 0, count: frameCount - n) }
        head = (head + n) % ring
        count -= n
        consumedTotal += UInt64(n)
        playedSamples += n
        return true
    }

    /// Whether at least one mark has been reached (cheap; no allocation).
    public var hasReachedMarks: Bool {
        guard let first = marks.first else { return false }
        return first.position <= consumedTotal
    }

    /// The names of the marks reached since the last call, oldest first.
    public mutating func takeReachedMarks() -> [String] {
        guard hasReachedMarks else { return [] }
        var reached = 0
        while reached < marks.count, marks[reached].position <= consumedTotal { reached += 1 }
        let names = marks[0..<reached].map(\.name)
        marks.removeFirst(reached)
        return names
    }

    /// Drops all queued audio (not counted as dropped) and returns every mark not yet taken,
    /// oldest first (barge-in: they are echoed at once).
    public mutating func clear() -> [String] {
        head = 0
        count = 0
        consumedTotal = writtenTotal
        let names = marks.map(\.name)
        marks.removeAll()
        return names
    }

    /// Queued audio in milliseconds at `sampleRate`.
    public func depthMs(sampleRate: Int) -> Int { count * 1000 / sampleRate }
}
