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
        reserveHistory(input.count)
        for s in input { history.append(Float(s)) }
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
        reserveHistory(n)
        for i in 0..<n { history.append(Float(PCM16.sampleLE(bytes, at: 2 * i))) }
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

    /// Grows the history geometrically (an exact `reserveCapacity` per call could reallocate every time).
    mutating func reserveHistory(_ extra: Int) {
        let needed = history.count + extra
        if history.capacity < needed { history.reserveCapacity(Swift.max(needed, 2 * history.capacity)) }
    }

    mutating func produce(into out: inout [Int16], limit: Int = .max) {
        let available = historyStart + history.count  // index one past the last input sample
        let taps = self.taps
        let half = self.half
        let up = self.up
        let down = self.down
        var base = basePosition
        var phase = self.phase
        let historyStart = self.historyStart
        coefficients.withUnsafeBufferPointer { coeffs in
            history.withUnsafeBufferPointer { hist in
                // Row covers x[base + half + 1 - taps ... base + half].
                while base + half < available && base < limit {
                    let first = base + half + 1 - taps - historyStart
                    if first + taps > hist.count { break }
                    let row = coeffs.baseAddress! + phase * taps
                    let x = hist.baseAddress! + first
                    var acc = SIMD8<Float>()
                    var k = 0
                    while k < taps {
                        let c = UnsafeRawPointer(row + k).loadUnaligned(as: SIMD8<Float>.self)
                        let v = UnsafeRawPointer(x + k).loadUnaligned(as: SIMD8<Float>.self)
                        acc += c * v
                        k += 8
                    }
                    // Round half away from zero by truncating: `rounded()` is a libm call per sample.
                    let sum = acc.sum()
                    let y = sum < 0 ? sum - 0.5 : sum + 0.5
                    out.append(y >= 32767 ? Int16.max : (y <= -32768 ? Int16.min : Int16(y)))
                    phase += down
                    base += phase / up
                    phase %= up
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
