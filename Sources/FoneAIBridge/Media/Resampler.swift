import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A streaming mono 16-bit resampler for any pair of rates whose ratio is rational
/// (8000, 16000, 24000, 44100, 48000, …).
///
/// Polyphase windowed-sinc (Kaiser) interpolation: the filter's cutoff sits at the lower of the
/// two Nyquist frequencies, so downsampling is anti-aliased (16 kHz → 8 kHz attenuates content
/// above ~4.5 kHz by more than 60 dB) and upsampling suppresses images. State carries across
/// calls, so chunk boundaries are seamless: feeding the input in any split gives the same output.
///
/// Output lags input by `latencyInputSamples` input samples (half the filter length); `flush`
/// pushes out the tail. Equal rates pass samples through unchanged.
public struct Resampler: Sendable {
    public let inputRate: Int
    public let outputRate: Int

    /// Output samples per polyphase cycle (upsampling factor).
    let up: Int
    /// Input samples per polyphase cycle (downsampling factor).
    let down: Int
    /// One output's step in input samples: `wholeStep + fractionStep / up`.
    let wholeStep: Int
    let fractionStep: Int
    /// Taps per phase (a multiple of 8).
    let taps: Int
    /// Half the filter support in input samples; output `n` at input time t uses x[floor(t)-half+1 ... floor(t)+half].
    let half: Int
    /// Leading zero coefficients in each row (`taps - 2 * half`), so rows end at x[floor(t)+half].
    let lead: Int
    /// `up` phases × `taps` coefficients.
    let coefficients: [Float]

    /// Input history; `history[0]` is input sample index `historyStart` (may be negative: zero pre-roll).
    var history: [Float]
    var historyStart: Int
    /// Next output's position in input samples: `basePosition + phase / up`.
    var basePosition: Int
    var phase: Int

    public init(from inputRate: Int, to outputRate: Int) {
        precondition(inputRate > 0 && outputRate > 0, "sample rates must be positive")
        self.inputRate = inputRate
        self.outputRate = outputRate
        let g = Resampler.gcd(inputRate, outputRate)
        up = outputRate / g
        down = inputRate / g
        wholeStep = down / up
        fractionStep = down % up
        if inputRate == outputRate {
            taps = 0
            half = 0
            lead = 0
            coefficients = []
            history = []
            historyStart = 0
            basePosition = 0
            phase = 0
            return
        }
        // Filter design, in units of input samples.
        // Cutoff at the lower Nyquist frequency; transition band ±1/16 of the lower rate
        // (e.g. 3.5–4.5 kHz for 8 kHz), stop-band attenuation ~70 dB.
        let lowRate = Double(min(inputRate, outputRate))
        let cutoff = 0.5 * lowRate / Double(inputRate)  // cycles per input sample
        let transition = 0.125 * lowRate / Double(inputRate)  // full width, cycles per input sample
        let attenuation = 70.0
        let beta = 0.1102 * (attenuation - 8.7)
        let length = (attenuation - 8) / (2.285 * 2 * Double.pi * transition)  // Kaiser's estimate
        let half = max(2, Int((length / 2).rounded(.up)))
        let taps = (2 * half + 7) / 8 * 8
        self.half = half
        self.taps = taps
        let lead = taps - 2 * half
        self.lead = lead
        var coefficients = [Float](repeating: 0, count: up * taps)
        let i0Beta = Resampler.besselI0(beta)
        for p in 0..<up {
            let frac = Double(p) / Double(up)  // output position = floor + frac
            var row = [Double](repeating: 0, count: taps)
            var sum = 0.0
            for k in 0..<(2 * half) {
                // tap k multiplies x[floor(t) - half + 1 + k]; its distance from t:
                let d = Double(k - half + 1) - frac
                let x = d / Double(half)
                guard abs(x) < 1 else { continue }
                let window = Resampler.besselI0(beta * (1 - x * x).squareRoot()) / i0Beta
                let arg = 2 * cutoff * d
                let sinc = arg == 0 ? 1.0 : sin(Double.pi * arg) / (Double.pi * arg)
                let v = 2 * cutoff * sinc * window
                row[lead + k] = v
                sum += v
            }
            // Unity gain at DC for every phase.
            for k in 0..<taps { coefficients[p * taps + k] = Float(row[k] / sum) }
        }
        self.coefficients = coefficients
        // Pre-roll zeros before the first sample so output 0 aligns with input 0.
        history = [Float](repeating: 0, count: taps - half - 1)
        history.reserveCapacity(4096)
        historyStart = -(taps - half - 1)
        basePosition = 0
        phase = 0
    }

    /// The delay, in input samples, between an input sample and its output (half the filter).
    public var latencyInputSamples: Int { half }

    /// Resamples `input` and appends the output to `out`.
    public mutating func process(_ input: UnsafeBufferPointer<Int16>, into out: inout [Int16]) {
        if up == down {
            out.append(contentsOf: input)
            return
        }
        appendHistory(count: input.count) { history in
            for i in 0..<input.count { history[i] = Float(input[i]) }
        }
        produce(into: &out)
    }

    /// Resamples `input` and appends the output to `out`.
    public mutating func process(_ input: [Int16], into out: inout [Int16]) {
        input.withUnsafeBufferPointer { process($0, into: &out) }
    }

    /// Resamples 16-bit little-endian PCM bytes (a trailing odd byte is ignored) and appends to `out`.
    public mutating func process(pcm16LE bytes: UnsafeRawBufferPointer, into out: inout [Int16]) {
        let n = bytes.count / 2
        if up == down {
            PCM16.appendSamples(fromLittleEndian: bytes, to: &out)
            return
        }
        appendHistory(count: n) { history in
            for i in 0..<n { history[i] = Float(PCM16.sampleLE(bytes, at: 2 * i)) }
        }
        produce(into: &out)
    }

    /// Resamples the readable bytes of `buffer` (16-bit little-endian PCM; not consumed).
    public mutating func process(pcm16LE buffer: ByteBuffer, into out: inout [Int16]) {
        buffer.withUnsafeReadableBytes { process(pcm16LE: $0, into: &out) }
    }

    /// Pushes out the samples still held back by the filter (as if followed by silence) and
    /// resets the stream. Call at the end of a burst of audio.
    public mutating func flush(into out: inout [Int16]) {
        guard up != down else { return }
        let inputEnd = historyStart + history.count
        history.append(contentsOf: repeatElement(0, count: half))
        // Produce only outputs whose position lies before the end of the real input.
        produce(into: &out, limit: inputEnd)
        reset()
    }

    /// Forgets all state (the next input starts a new stream).
    public mutating func reset() {
        guard up != down else { return }
        history.removeAll(keepingCapacity: true)
        history.append(contentsOf: repeatElement(0, count: taps - half - 1))
        historyStart = -(taps - half - 1)
        basePosition = 0
        phase = 0
    }

    /// How many output samples `inputCount` more input samples will produce at most (for reserving).
    public func maximumOutputCount(forInputCount inputCount: Int) -> Int {
        up == down ? inputCount : (inputCount + half) * up / down + 2
    }

    /// Appends `count` input samples that `fill` writes in place (one append per sample would
    /// check the array's capacity and ownership every time). Grows the history geometrically:
    /// an exact `reserveCapacity` per call could reallocate every time.
    mutating func appendHistory(count: Int, _ fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let start = history.count
        let needed = start + count
        if history.capacity < needed { history.reserveCapacity(Swift.max(needed, 2 * history.capacity)) }
        history.append(contentsOf: repeatElement(0, count: count))
        history.withUnsafeMutableBufferPointer { fill(UnsafeMutableBufferPointer(rebasing: $0[start...])) }
    }

    mutating func produce(into out: inout [Int16], limit: Int = .max) {
        let available = historyStart + history.count  // index one past the last input sample
        let taps = self.taps
        let half = self.half
        let up = self.up
        let down = self.down
        var base = basePosition
        var phase = self.phase
        // How many outputs the input allows: each needs x[base + half] and lies before `limit`.
        var count = 0
        do {
            var b = base, p = phase
            while b + half < available && b < limit {
                count += 1
                step(&b, &p)
            }
        }
        guard count > 0 else { return }
        let historyStart = self.historyStart
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        out.withUnsafeMutableBufferPointer { out in
            coefficients.withUnsafeBufferPointer { coeffs in
                history.withUnsafeBufferPointer { hist in
                    for n in start..<(start + count) {
                        // Row covers x[base + half + 1 - taps ... base + half].
                        let row = coeffs.baseAddress! + phase * taps
                        let x = hist.baseAddress! + (base + half + 1 - taps - historyStart)
                        // Two accumulators, so each multiply-add need not wait for the one before.
                        var even = SIMD8<Float>()
                        var odd = SIMD8<Float>()
                        var k = 0
                        while k + 16 <= taps {
                            even += Self.load(row + k) * Self.load(x + k)
                            odd += Self.load(row + k + 8) * Self.load(x + k + 8)
                            k += 16
                        }
                        if k < taps { even += Self.load(row + k) * Self.load(x + k) }
                        // Round half away from zero by truncating: `rounded()` is a libm call per sample.
                        let sum = Self.sum(even + odd)
                        let y = sum < 0 ? sum - 0.5 : sum + 0.5
                        out[n] = y >= 32767 ? Int16.max : (y <= -32768 ? Int16.min : Int16(y))
                        step(&base, &phase)
                    }
                }
            }
        }
        basePosition = base
        self.phase = phase
        // Drop history no longer needed (keep from the next output's first tap).
        let keepFrom = base + half + 1 - taps - historyStart
        if keepFrom > 0 {
            let drop = min(keepFrom, history.count)
            history.removeFirst(drop)
            self.historyStart += drop
        }
    }

    /// Moves an output position (`base + phase / up` input samples) on by one output, without
    /// the integer division per sample that `phase / up` would cost.
    @inline(__always)
    func step(_ base: inout Int, _ phase: inout Int) {
        base += wholeStep
        phase += fractionStep
        if phase >= up {
            phase -= up
            base += 1
        }
    }

    /// Adds the lanes pairwise (`SIMD8.sum()` adds them one after another).
    @inline(__always)
    static func sum(_ v: SIMD8<Float>) -> Float {
        let four = v.lowHalf + v.highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }

    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        var a = a, b = b
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    /// Modified Bessel function of the first kind, order 0.
    static func besselI0(_ x: Double) -> Double {
        var sum = 1.0
        var term = 1.0
        let q = x * x / 4
        var k = 1.0
        while term > 1e-12 * sum {
            term *= q / (k * k)
            sum += term
            k += 1
        }
        return sum
    }
}
