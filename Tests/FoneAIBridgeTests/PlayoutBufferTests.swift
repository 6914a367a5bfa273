import Testing

@testable import FoneAIBridge

extension PlayoutBuffer {
    /// Pops one frame into a fresh array (test convenience); nil when empty.
    mutating func pop(_ count: Int) -> [Int16]? {
        var frame = [Int16](repeating: -1, count: count)
        let ok = frame.withUnsafeMutableBufferPointer { popFrame(count: count, into: $0) }
        return ok ? frame : nil
    }
}

@Suite struct PlayoutBufferTests {
    @Test func fifoOrderAndZeroPadding() {
        var b = PlayoutBuffer(capacitySamples: 100)
        #expect(b.isEmpty && b.depthSamples == 0)
        #expect(b.pop(4) == nil)
        b.append([1, 2, 3, 4, 5, 6])
        #expect(b.depthSamples == 6)
        #expect(b.pop(4) == [1, 2, 3, 4])
        #expect(b.pop(4) == [5, 6, 0, 0])
        #expect(b.pop(4) == nil)
        #expect(b.playedSamples == 6 && b.droppedSamples == 0)
    }

    @Test func popFrameLeavesOutputUntouchedWhenEmpty() {
        var b = PlayoutBuffer(capacitySamples: 10)
        var frame: [Int16] = [7, 7]
        let ok = frame.withUnsafeMutableBufferPointer { b.popFrame(count: 2, into: $0) }
        #expect(!ok && frame == [7, 7])
    }

    @Test func wrapsAroundTheRing() {
        var b = PlayoutBuffer(capacitySamples: 5)
        var expected: [Int16] = []
        var got: [Int16] = []
        var next: Int16 = 0
        for round in 0..<50 {
            let n = round % 4 + 1
            let chunk = (0..<n).map { _ -> Int16 in next += 1; return next }
            if b.depthSamples + n <= 5 {
                b.append(chunk)
                expected += chunk
            } else {
                next -= Int16(n)
            }
            if let f = b.pop(2) { got += f.prefix(min(2, f.count)) }
        }
        while let f = b.pop(1) { got += f }
        // Padding zeros only ever appear at the end of a pop that emptied the buffer.
        #expect(got.filter { $0 != 0 } == expected)
        #expect(b.droppedSamples == 0)
    }

    @Test func overflowDropsTheOldest() {
        var b = PlayoutBuffer(capacitySamples: 5)
        b.append([1, 2, 3])
        b.append([4, 5, 6, 7])
        #expect(b.depthSamples == 5 && b.droppedSamples == 2)
        #expect(b.pop(5) == [3, 4, 5, 6, 7])
        // A chunk bigger than the whole buffer keeps only its newest samples.
        b.append([1])
        b.append(Array(10...20).map { Int16($0) })
        #expect(b.droppedSamples == 2 + 1 + 6)
        #expect(b.pop(5) == [16, 17, 18, 19, 20])
        #expect(b.isEmpty)
    }

    @Test func capacityFromMilliseconds() {
        let b = PlayoutBuffer(sampleRate: 8000, maxBufferedMs: 10000)
        #expect(b.capacity == 80000)
        #expect(PlayoutBuffer(capacity: 0).capacity == 1)
        var c = PlayoutBuffer(sampleRate: 8000, maxBufferedMs: 100)
        c.append([Int16](repeating: 1, count: 400))
        #expect(c.depthMs(sampleRate: 8000) == 50)
    }

    @Test func marksAreReachedWhenTheAudioBeforeThemHasPlayed() {
        var b = PlayoutBuffer(capacitySamples: 1000)
        b.append([Int16](repeating: 1, count: 300))
        b.appendMark("a")
        b.append([Int16](repeating: 2, count: 100))
        b.appendMark("b")
        b.appendMark("c")
        #expect(b.pendingMarkCount == 3 && b.hasPendingMarks)
        #expect(!b.hasReachedMarks && b.takeReachedMarks() == [])
        _ = b.pop(160)
        #expect(b.takeReachedMarks() == [])
        _ = b.pop(160)  // 320 played: "a" (at 300) reached
        #expect(b.takeReachedMarks() == ["a"])
        #expect(b.takeReachedMarks() == [])  // only once
        _ = b.pop(160)  // the rest, padded: "b" and "c" reached
        #expect(b.takeReachedMarks() == ["b", "c"])
        #expect(!b.hasPendingMarks)
    }

    @Test func markOnAnEmptyBufferIsReachedAtOnce() {
        var b = PlayoutBuffer(capacitySamples: 10)
        b.appendMark("now")
        #expect(b.hasReachedMarks)
        #expect(b.takeReachedMarks() == ["now"])
    }

    @Test func markExactlyAtAFrameEnd() {
        var b = PlayoutBuffer(capacitySamples: 1000)
        b.append([Int16](repeating: 1, count: 160))
        b.appendMark("end")
        b.append([Int16](repeating: 1, count: 160))
        _ = b.pop(160)
        #expect(b.takeReachedMarks() == ["end"])
    }

    @Test func droppedAudioCountsAsPassedForMarks() {
        var b = PlayoutBuffer(capacitySamples: 10)
        b.append([Int16](repeating: 1, count: 8))
        b.appendMark("old")
        b.append([Int16](repeating: 2, count: 10))  // drops all 8 samples before the mark
        #expect(b.takeReachedMarks() == ["old"])
        #expect(b.depthSamples == 10)
    }

    @Test func clearDropsAudioAndReturnsPendingMarks() {
        var b = PlayoutBuffer(capacitySamples: 100)
        b.append([1, 2, 3])
        b.appendMark("x")
        b.append([4])
        b.appendMark("y")
        #expect(b.clear() == ["x", "y"])
        #expect(b.isEmpty && b.pop(2) == nil)
        #expect(b.takeReachedMarks() == [])
        #expect(b.droppedSamples == 0)
        // Works normally afterwards, with marks positioned after the clear.
        b.append([9, 8])
        b.appendMark("z")
        #expect(b.pop(1) == [9])
        #expect(b.takeReachedMarks() == [])
        #expect(b.pop(1) == [8])
        #expect(b.takeReachedMarks() == ["z"])
    }

    @Test func longRunKeepsCountsConsistent() {
        var b = PlayoutBuffer(capacitySamples: 800)
        var rng = SplitMix64(seed: 7)
        var appended = 0
        var frame = [Int16](repeating: 0, count: 160)
        for i in 0..<5000 {
            let n = Int(rng.next() % 500)
            b.append([Int16](repeating: Int16(i % 100), count: n))
            appended += n
            if rng.next() % 3 == 0 { b.appendMark("m\(i)") }
            _ = frame.withUnsafeMutableBufferPointer { b.popFrame(count: 160, into: $0) }
            _ = b.takeReachedMarks()
            #expect(b.depthSamples <= 800)
        }
        #expect(appended == b.playedSamples + b.droppedSamples + b.depthSamples)
    }

    @Test func ringGrowsOnDemandAndKeepsOrderAcrossTheWrap() {
        // 10 s at 8 kHz may be queued, but the ring starts small.
        var b = PlayoutBuffer(capacitySamples: 80000)
        #expect(b.storage.count == PlayoutBuffer.initialRingSamples)
        var next: Int16 = 0
        var expected: Int16 = 0
        // Wrap the small ring first, then grow it while its contents straddle the end.
        for _ in 0..<3 {
            b.append((0..<1500).map { _ in defer { next &+= 1 }; return next })
            for _ in 0..<9 {
                let frame = b.pop(160)!
                for v in frame { #expect(v == expected); expected &+= 1 }
            }
        }
        b.append((0..<20000).map { _ in defer { next &+= 1 }; return next })
        #expect(b.storage.count > PlayoutBuffer.initialRingSamples && b.storage.count <= 80000)
        while let frame = b.pop(160) {
            for v in frame.prefix(Int(next) - Int(expected)) { #expect(v == expected); expected &+= 1 }
        }
        #expect(expected == next && b.droppedSamples == 0)
    }

    @Test func ringNeverGrowsBeyondTheCapacity() {
        var b = PlayoutBuffer(capacitySamples: 3000)
        b.append([Int16](repeating: 1, count: 2500))
        b.append([Int16](repeating: 2, count: 2500))
        #expect(b.storage.count == 3000)
        #expect(b.depthSamples == 3000 && b.droppedSamples == 2000)
        #expect(b.pop(500) == [Int16](repeating: 1, count: 500))
        #expect(b.pop(160) == [Int16](repeating: 2, count: 160))
    }
}

