import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@testable import FoneAIBridge

func sine(frequency: Double, rate: Int, count: Int, amplitude: Double = 10000, phase: Double = 0) -> [Int16] {
    (0..<count).map { Int16((amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(rate) + phase)).rounded()) }
}

/// Least-squares fit of a sinusoid at `frequency`: its amplitude and the RMS of what is left.
func fitTone(_ x: ArraySlice<Int16>, rate: Int, frequency: Double) -> (amplitude: Double, residualRMS: Double) {
    var ss = 0.0, cc = 0.0, sc = 0.0, xs = 0.0, xc = 0.0
    for (i, v) in x.enumerated() {
        let w = 2 * Double.pi * frequency * Double(i) / Double(rate)
        let s = sin(w), c = cos(w), d = Double(v)
        ss += s * s; cc += c * c; sc += s * c; xs += d * s; xc += d * c
    }
    let det = ss * cc - sc * sc
    let a = (xs * cc - xc * sc) / det
    let b = (xc * ss - xs * sc) / det
    var residual = 0.0
    for (i, v) in x.enumerated() {
        let w = 2 * Double.pi * frequency * Double(i) / Double(rate)
        let r = Double(v) - a * sin(w) - b * cos(w)
        residual += r * r
    }
    return ((a * a + b * b).squareRoot(), (residual / Double(x.count)).squareRoot())
}

func rms(_ x: ArraySlice<Int16>) -> Double {
    (x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, x.count))).squareRoot()
}

/// Frequency estimated from the rising zero crossings.
func zeroCrossingFrequency(_ x: ArraySlice<Int16>, rate: Int) -> Double {
    var crossings: [Double] = []
    var prev = x.first!
    for (i, v) in x.enumerated().dropFirst() {
        if prev < 0 && v >= 0 {
            // Interpolate where the line crosses zero.
            crossings.append(Double(i - 1) + Double(-prev) / Double(Int(v) - Int(prev)))
        }
        prev = v
    }
    guard crossings.count > 2 else { return 0 }
    return Double(crossings.count - 1) * Double(rate) / (crossings.last! - crossings.first!)
}

func resampleAll(_ input: [Int16], from: Int, to: Int, chunk: Int? = nil) -> [Int16] {
    var r = Resampler(from: from, to: to)
    var out: [Int16] = []
    if let chunk {
        var i = 0
        while i < input.count {
            let n = min(chunk, input.count - i)
            input[i..<(i + n)].withUnsafeBufferPointer { r.process($0, into: &out) }
            i += n
        }
    } else {
        input.withUnsafeBufferPointer { r.process($0, into: &out) }
    }
    r.flush(into: &out)
    return out
}

let rates = [8000, 16000, 24000, 44100, 48000]

@Suite struct ResamplerTests {
    @Test func oneKilohertzStaysOneKilohertzAt16kTo8k() {
        let input = sine(frequency: 1000, rate: 16000, count: 16000)
        let out = resampleAll(input, from: 16000, to: 8000)
        #expect(out.count == 8000)
        let middle = out[400..<7600]
        #expect(abs(zeroCrossingFrequency(middle, rate: 8000) - 1000) < 1)
        let fit = fitTone(middle, rate: 8000, frequency: 1000)
        #expect(abs(fit.amplitude - 10000) < 100)  // within 0.1 dB
        #expect(fit.residualRMS < 10)  // > 57 dB below the tone
    }

    @Test func sixKilohertzIsRemovedAt16kTo8k() {
        // 6 kHz is above 8 kHz's Nyquist; without filtering it would alias to 2 kHz.
        let input = sine(frequency: 6000, rate: 16000, count: 16000)
        let out = resampleAll(input, from: 16000, to: 8000)
        let middle = out[400..<7600]
        let level = rms(middle) / (10000 / 2.0.squareRoot())
        #expect(20 * log10(max(level, 1e-9)) < -55)
        #expect(fitTone(middle, rate: 8000, frequency: 2000).amplitude < 20)
    }

    @Test(arguments: [(24000, 8000, 4500.0), (48000, 8000, 5000.0), (44100, 8000, 7000.0), (48000, 16000, 9000.0),
                      (44100, 16000, 12000.0), (48000, 24000, 14000.0)])
    func aliasesAreSuppressedWhenDownsampling(_ from: Int, _ to: Int, _ frequency: Double) {
        let input = sine(frequency: frequency, rate: from, count: from / 2)
        let out = resampleAll(input, from: from, to: to)
        let middle = out[(to / 20)..<(out.count - to / 20)]
        let level = rms(middle) / (10000 / 2.0.squareRoot())
        #expect(20 * log10(max(level, 1e-9)) < -50, "\(from)→\(to) at \(frequency) Hz")
    }

    @Test(arguments: rates.flatMap { a in rates.map { b in (a, b) } })
    func toneSurvivesEveryRatePair(_ from: Int, _ to: Int) {
        let input = sine(frequency: 1000, rate: from, count: from / 2, phase: 0.3)
        let out = resampleAll(input, from: from, to: to)
        // Output length matches the duration exactly (ceil of count × to / from).
        #expect(out.count == (input.count * to + from - 1) / from)
        let middle = out[(to / 20)..<(out.count - to / 20)]
        #expect(abs(zeroCrossingFrequency(middle, rate: to) - 1000) < 1, "\(from)→\(to)")
        let fit = fitTone(middle, rate: to, frequency: 1000)
        #expect(abs(fit.amplitude - 10000) < 100, "\(from)→\(to) amplitude \(fit.amplitude)")
        #expect(fit.residualRMS < 10, "\(from)→\(to) residual \(fit.residualRMS)")
    }

    @Test(arguments: [(16000, 8000), (48000, 24000), (32000, 16000)])
    func theHalfBandPathMatchesTheGeneralOne(_ from: Int, _ to: Int) {
        #expect(Resampler(from: from, to: to).halfBand != nil)
        let input = sine(frequency: 700, rate: from, count: from / 4).enumerated().map { Int16(clamping: Int($1) + ($0 % 13) * 900 - 5000) }
        for chunk in [1, 7, 320, 4096] {
            var fast = Resampler(from: from, to: to)
            var general = Resampler(from: from, to: to, allowHalfBand: false)
            var a: [Int16] = [], b: [Int16] = []
            var i = 0
            var flushed = false
            while i < input.count {
                let n = min(chunk, input.count - i)
                input[i..<(i + n)].withUnsafeBufferPointer { fast.process($0, into: &a); general.process($0, into: &b) }
                i += n
                if !flushed && i >= input.count / 2 && i < input.count {
                    flushed = true
                    // A reset in the middle, as after a barge-in.
                    fast.flush(into: &a)
                    general.flush(into: &b)
                }
            }
            fast.flush(into: &a)
            general.flush(into: &b)
            #expect(a.count == b.count, "\(from)→\(to) chunk \(chunk)")
            // The general path multiplies the zero taps too (≈1e-17 after rounding the design), and sums in another order.
            #expect(zip(a, b).allSatisfy { abs(Int($0) - Int($1)) <= 1 }, "\(from)→\(to) chunk \(chunk)")
        }
    }

    @Test func outputIsAlignedWithInput() {
        // Zero-phase: the output at time t equals the input's tone at time t (no delay).
        let input = sine(frequency: 500, rate: 24000, count: 12000, phase: 1.0)
        let out = resampleAll(input, from: 24000, to: 8000)
        let expected = sine(frequency: 500, rate: 8000, count: out.count, phase: 1.0)
        for i in stride(from: 400, to: 3600, by: 37) {
            #expect(abs(Int(out[i]) - Int(expected[i])) < 30, "sample \(i)")
        }
    }

    @Test(arguments: [1, 7, 160, 333, 480, 4096])
    func chunkingDoesNotChangeTheOutput(_ chunk: Int) {
        for (from, to) in [(16000, 8000), (24000, 8000), (44100, 8000), (8000, 16000), (48000, 44100)] {
            let input = sine(frequency: 700, rate: from, count: from / 4) .enumerated().map { Int16(clamping: Int($1) + ($0 % 13) * 50) }
            #expect(resampleAll(input, from: from, to: to, chunk: chunk) == resampleAll(input, from: from, to: to), "\(from)→\(to)")
        }
    }

    @Test func noClickAtChunkBoundaries() {
        // A low tone in 20 ms chunks: consecutive output samples never jump more than the tone can.
        let input = sine(frequency: 300, rate: 24000, count: 24000, amplitude: 20000)
        let out = resampleAll(input, from: 24000, to: 8000, chunk: 480)
        let maxStep = 20000 * 2 * Double.pi * 300 / 8000  // largest slope per sample
        for i in 200..<(out.count - 200) {
            #expect(Double(abs(Int(out[i]) - Int(out[i - 1]))) <= maxStep * 1.05)
        }
    }

    @Test func equalRatesPassThrough() {
        let input: [Int16] = [1, -2, 3, Int16.max, Int16.min]
        var r = Resampler(from: 8000, to: 8000)
        var out: [Int16] = []
        r.process(input, into: &out)
        r.flush(into: &out)
        #expect(out == input)
        #expect(r.latencyInputSamples == 0)
    }

    @Test func clipsInsteadOfWrapping() {
        // A full-scale square wave rings past full scale after filtering; it must clip, not wrap.
        let input = (0..<8000).map { ($0 / 20) % 2 == 0 ? Int16.max : Int16.min }
        let out = resampleAll(input, from: 16000, to: 8000)
        for i in 1..<out.count {
            // A wrap would show as a jump of nearly 65536.
            #expect(abs(Int(out[i]) - Int(out[i - 1])) < 60000)
        }
    }

    @Test func eightAtATimeRoundsAndClipsExactlyLikeOneAtATime() {
        // Ties, both sides of every clip bound, fractions just off integers, and a spread between.
        var values: [Float] = [0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, 32766.5, 32767, 32767.5,
                               40000, -32767.5, -32768, -32768.5, -32769, -40000, 1e9, -1e9, 0.25, -0.25]
        for i in -2_000...2_000 { values.append(Float(i) * 0.25) }
        values += (0..<2_000).map { _ in Float.random(in: -33_000...33_000) }
        while values.count % 8 != 0 { values.append(0) }
        var out = [Int16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { values in
            out.withUnsafeMutableBufferPointer { out in
                for i in stride(from: 0, to: values.count, by: 8) {
                    Resampler.storePCM16(Resampler.load(values.baseAddress! + i), to: out.baseAddress! + i)
                }
            }
        }
        for (value, sample) in zip(values, out) where sample != Resampler.pcm16(value) {
            Issue.record("\(value): \(sample), one at a time \(Resampler.pcm16(value))")
        }
    }

    @Test func readsLittleEndianBytes() {
        let input = sine(frequency: 440, rate: 16000, count: 3200)
        var bytes = ByteBufferAllocator().buffer(capacity: 6400)
        input.withUnsafeBufferPointer { PCM16.writeLittleEndian($0, to: &bytes) }
        var r = Resampler(from: 16000, to: 8000)
        var fromBytes: [Int16] = []
        r.process(pcm16LE: bytes, into: &fromBytes)
        r.flush(into: &fromBytes)
        #expect(fromBytes == resampleAll(input, from: 16000, to: 8000))
        // Same for the pass-through case.
        var same = Resampler(from: 16000, to: 16000)
        var passed: [Int16] = []
        same.process(pcm16LE: bytes, into: &passed)
        #expect(passed == input)
    }

    @Test(arguments: [16000, 48000])
    func bytesInAnySplitGiveWhatSamplesGive(_ from: Int) {
        // Odd sample counts shift the even/odd split from one chunk to the next.
        let input = sine(frequency: 700, rate: from, count: 3000).enumerated().map { Int16(clamping: Int($1) + ($0 % 7) * 3000 - 9000) }
        var bytes = ByteBufferAllocator().buffer(capacity: 2 * input.count)
        input.withUnsafeBufferPointer { PCM16.writeLittleEndian($0, to: &bytes) }
        for chunkBytes in [2, 6, 64, 66, 640, 666, 6000] {
            var r = Resampler(from: from, to: from / 2)
            var out: [Int16] = []
            var offset = 0
            while offset < bytes.readableBytes {
                let n = min(chunkBytes, bytes.readableBytes - offset)
                r.process(pcm16LE: bytes.getSlice(at: offset, length: n)!, into: &out)
                offset += n
            }
            r.flush(into: &out)
            #expect(out == resampleAll(input, from: from, to: from / 2), "\(from) Hz in \(chunkBytes)-byte chunks")
        }
    }

    @Test func flushResetsTheStream() {
        let input = sine(frequency: 1000, rate: 16000, count: 1600)
        var r = Resampler(from: 16000, to: 8000)
        var first: [Int16] = []
        r.process(input, into: &first)
        r.flush(into: &first)
        var second: [Int16] = []
        r.process(input, into: &second)
        r.flush(into: &second)
        #expect(first == second)
        #expect(first.count == 800)
    }

    @Test func latencyIsBounded() {
        // Data comes out within a few milliseconds of going in (20 ms chunks must flow).
        for from in rates {
            for to in rates where to != from {
                let r = Resampler(from: from, to: to)
                #expect(Double(r.latencyInputSamples) / Double(from) < 0.006, "\(from)→\(to)")
                var r2 = r
                var out: [Int16] = []
                let chunk = sine(frequency: 1000, rate: from, count: from / 50)
                r2.process(chunk, into: &out)
                #expect(out.count > 0, "\(from)→\(to)")
                #expect(out.count <= r.maximumOutputCount(forInputCount: chunk.count))
            }
        }
    }
}
