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
/// Halving the rate (16 → 8 kHz, the common case here) skips the filter's zero taps and takes its
/// own path (`HalfBand`).
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
    /// The 2:1 path (16 → 8 kHz, 48 → 24 kHz, …), which skips the filter's zero taps; nil otherwise.
    var halfBand: HalfBand?

    /// Input history; `history[0]` is input sample index `historyStart` (may be negative: zero pre-roll).
    var history: [Float]
    var historyStart: Int
    /// Next output's position in input samples: `basePosition + phase / up`.
    var basePosition: Int
    var phase: Int

    public init(from inputRate: Int, to outputRate: Int) {
        self.init(from: inputRate, to: outputRate, allowHalfBand: true)
    }

    /// `allowHalfBand: false` keeps 2:1 decimation on the general path (to compare the two).
    init(from inputRate: Int, to outputRate: Int, allowHalfBand: Bool) {
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
            halfBand = nil
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
        halfBand = allowHalfBand && up == 1 && down == 2 ? HalfBand(row: coefficients, lead: lead, half: half) : nil
        // Pre-roll zeros before the first sample so output 0 aligns with input 0.
        history = [Float](repeating: 0, count: taps - half - 1)
        if halfBand == nil { history.reserveCapacity(4096) }
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
        if halfBand != nil {
            halfBand!.append(count: input.count) { input[$0] }
            halfBand!.produce(into: &out)
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
        if halfBand != nil {
            halfBand!.append(pcm16LE: bytes)
            halfBand!.produce(into: &out)
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
        if halfBand != nil {
            halfBand!.flush(into: &out)
            return
        }
        let inputEnd = historyStart + history.count
        appendHistory(count: half) { _ in }  // zeros
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
        halfBand?.reset()
    }

    /// How many output samples `inputCount` more input samples will produce at most (for reserving).
    public func maximumOutputCount(forInputCount inputCount: Int) -> Int {
        up == down ? inputCount : (inputCount + half) * up / down + 2
    }

    /// What `extend` lengthens arrays with before they are filled in.
    private static let zeros = [Float](repeating: 0, count: 1024)

    /// Lengthens `array` by `count` zeros, to be overwritten in place (one append per sample
    /// would check the array's capacity and ownership every time). Grows geometrically: an exact
    /// `reserveCapacity` per call could reallocate every time.
    static func extend(_ array: inout [Float], by count: Int) {
        let needed = array.count + count
        if array.capacity < needed { array.reserveCapacity(Swift.max(needed, 2 * array.capacity)) }
        // Zeros copied from a block: appending `repeatElement` writes them one element at a time.
        zeros.withUnsafeBufferPointer { zeros in
            while array.count < needed {
                array.append(contentsOf: UnsafeBufferPointer(rebasing: zeros[..<Swift.min(zeros.count, needed - array.count)]))
            }
        }
    }

    /// Appends `count` input samples that `fill` writes in place.
    mutating func appendHistory(count: Int, _ fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let start = history.count
        Self.extend(&history, by: count)
        history.withUnsafeMutableBufferPointer { fill(UnsafeMutableBufferPointer(rebasing: $0[start...])) }
    }

    mutating func produce(into out: inout [Int16], limit: Int = .max) {
        let available = historyStart + history.count  // index one past the last input sample
        let taps = self.taps
        let half = self.half
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
                        out[n] = Self.pcm16(Self.dot(row, x, count: taps))
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

    /// Rounds half away from zero by truncating (`rounded()` is a libm call per sample) and clips.
    @inline(__always)
    static func pcm16(_ sum: Float) -> Int16 {
        let y = sum < 0 ? sum - 0.5 : sum + 0.5
        return y >= 32767 ? Int16.max : (y <= -32768 ? Int16.min : Int16(y))
    }

    /// 1.5 · 2^23. Floats from 2^23 to 2^24 have no fraction bits, so adding this rounds to an
    /// integer, and for magnitudes under 2^22 the sum's low mantissa bits hold that integer in
    /// two's complement: conversions both ways without a per-lane integer instruction.
    static let integerBias: Float = 12_582_912

    /// `pcm16` for eight samples at once, stored to `destination` (alignment not needed).
    ///
    /// Clips with masked replaces, which compile to vector blends. Truncates without converting
    /// to integers lane by lane: `Int32(Float)` checks each lane's range (some 20 instructions a
    /// lane), and `clamped` and `SIMD8<Int32>(_:rounding:)` compile to generic stdlib calls.
    @inline(__always)
    static func storePCM16(_ sums: SIMD8<Float>, to destination: UnsafeMutablePointer<Int16>) {
        var y = sums + 0.5
        y.replace(with: sums - 0.5, where: sums .< 0)
        y.replace(with: 32767, where: y .> 32767)
        y.replace(with: -32768, where: y .< -32768)
        // Rounded to the nearest integer by the bias; stepping back where that went away from
        // zero gives y truncated, as `Int16(y)` would.
        let bias = SIMD8<Float>(repeating: integerBias)
        let nearest = (y + bias) - bias
        var truncated = nearest
        truncated.replace(with: nearest - 1, where: (nearest .> y) .& (y .>= 0))
        truncated.replace(with: nearest + 1, where: (nearest .< y) .& (y .< 0))
        let bits = unsafeBitCast(truncated + bias, to: SIMD8<UInt32>.self)
        UnsafeMutableRawPointer(destination).storeBytes(of: SIMD8<Int16>(truncatingIfNeeded: bits), as: SIMD8<Int16>.self)
    }

    /// Σ row[k] · x[k] for k < `count` (a multiple of 8). Two accumulators, so each multiply-add
    /// need not wait for the one before; the lanes are added pairwise at the end (`SIMD8.sum()`
    /// adds them one after another).
    @inline(__always)
    static func dot(_ row: UnsafePointer<Float>, _ x: UnsafePointer<Float>, count: Int) -> Float {
        var even = SIMD8<Float>()
        var odd = SIMD8<Float>()
        var k = 0
        while k + 16 <= count {
            even += load(row + k) * load(x + k)
            odd += load(row + k + 8) * load(x + k + 8)
            k += 16
        }
        if k < count { even += load(row + k) * load(x + k) }
        let total = even + odd
        let four = total.lowHalf + total.highHalf
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

extension Resampler {
    /// 2:1 decimation. The filter's cutoff then sits at a quarter of the input rate, so the
    /// windowed sinc is zero at every even distance from its centre but 0: each output needs the
    /// centre sample and the odd-distance ones, half the taps. Input is split as it arrives into
    /// the even-index samples (the centres) and the odd-index ones, so the multiply-adds run over
    /// contiguous memory; this path keeps no other history.
    struct HalfBand: Sendable {
        /// The centre tap.
        let center: Float
        /// The taps at distances -(2 * side - 1), ..., -1, 1, ..., 2 * side - 1.
        let odd: [Float]
        let side: Int
        /// An output waits until the input `half` samples past it has arrived, as on the general
        /// path, so both paths give the same output at the same time.
        let half: Int
        /// `evens[j]` is input sample 2 * (`evenStart` + j); `odds[j]` is input sample 2 * (`oddStart` + j) + 1.
        var evens: [Float] = []
        var odds: [Float] = []
        var evenStart = 0
        var oddStart = 0
        /// Input samples taken since the stream started.
        var received = 0
        /// The next output; it sits at input position 2 * `next`.
        var next = 0

        /// Nil unless `row` (phase 0 of a filter with support `half`, after `lead` zeros) really
        /// is zero at the even distances.
        init?(row: [Float], lead: Int, half: Int) {
            let side = half / 2
            let centerIndex = lead + half - 1
            var odd: [Float] = []
            for (k, c) in row.enumerated() {
                let d = k - centerIndex
                if d == 0 { continue }
                if d % 2 != 0 && abs(d) <= 2 * side - 1 {
                    odd.append(c)
                } else if abs(c) > 1e-6 * abs(row[centerIndex]) {
                    return nil
                }
            }
            self.odd = odd
            self.side = side
            self.half = half
            center = row[centerIndex]
            evens.reserveCapacity(256)
            odds.reserveCapacity(256)
            reset()
        }

        /// Forgets the stream; zeros stand for the odd samples before input 0.
        mutating func reset() {
            evens.removeAll(keepingCapacity: true)
            odds.removeAll(keepingCapacity: true)
            odds.append(contentsOf: repeatElement(0, count: side))
            evenStart = 0
            oddStart = -side
            received = 0
            next = 0
        }

        /// Takes `count` input samples, `sample(i)` being the i-th.
        @inline(__always)
        mutating func append(count: Int, _ sample: (Int) -> Int16) {
            guard count > 0 else { return }
            // Odd input indices in [received, received + count).
            let oddCount = (received + count) / 2 - received / 2
            let evenCount = count - oddCount
            let evenEnd = evens.count, oddEnd = odds.count
            Resampler.extend(&evens, by: evenCount)
            Resampler.extend(&odds, by: oddCount)
            let firstOdd = received & 1 == 1 ? 0 : 1
            evens.withUnsafeMutableBufferPointer { evens in
                odds.withUnsafeMutableBufferPointer { odds in
                    for j in 0..<evenCount { evens[evenEnd &+ j] = Float(sample(1 &- firstOdd &+ 2 &* j)) }
                    for j in 0..<oddCount { odds[oddEnd &+ j] = Float(sample(firstOdd &+ 2 &* j)) }
                }
            }
            received += count
        }

        /// Takes 16-bit little-endian samples (a trailing odd byte is ignored).
        mutating func append(pcm16LE bytes: UnsafeRawBufferPointer) {
            var rest = bytes
            #if _endian(little)
            // From an even input index, each 32-bit word holds an even sample (low half) and an
            // odd one (high half): eight words at a time split and convert without a scalar step.
            let pairs = bytes.count / 4 / 8 * 8
            if received & 1 == 0 && pairs > 0 {
                let evenEnd = evens.count, oddEnd = odds.count
                Resampler.extend(&evens, by: pairs)
                Resampler.extend(&odds, by: pairs)
                evens.withUnsafeMutableBufferPointer { evens in
                    odds.withUnsafeMutableBufferPointer { odds in
                        for g in stride(from: 0, to: pairs, by: 8) {
                            let words = (bytes.baseAddress! + 4 &* g).loadUnaligned(as: SIMD8<UInt32>.self)
                            let low = SIMD8<Int32>(truncatingIfNeeded: words &<< 16) &>> 16
                            let high = SIMD8<Int32>(truncatingIfNeeded: words) &>> 16
                            UnsafeMutableRawPointer(evens.baseAddress! + evenEnd + g).storeBytes(of: Self.float(low), as: SIMD8<Float>.self)
                            UnsafeMutableRawPointer(odds.baseAddress! + oddEnd + g).storeBytes(of: Self.float(high), as: SIMD8<Float>.self)
                        }
                    }
                }
                received += 2 * pairs
                rest = UnsafeRawBufferPointer(rebasing: bytes[(4 * pairs)...])
            }
            #endif
            append(count: rest.count / 2) { PCM16.sampleLE(rest, at: 2 &* $0) }
        }

        /// Exact for 16-bit values: the sample added to the bias's bits is the biased sample's float
        /// (see `integerBias`).
        @inline(__always)
        static func float(_ samples: SIMD8<Int32>) -> SIMD8<Float> {
            let biased = SIMD8<UInt32>(truncatingIfNeeded: samples) &+ Resampler.integerBias.bitPattern
            return unsafeBitCast(biased, to: SIMD8<Float>.self) - Resampler.integerBias
        }

        /// Appends every output whose input has arrived and that lies before input position `limit`.
        mutating func produce(into out: inout [Int16], limit: Int = .max) {
            // Output n needs input up to 2n + half, and lies before the limit when 2n < limit.
            guard received > half else { return }
            var end = (received - half - 1) / 2 + 1
            if limit < .max { end = min(end, (limit + 1) / 2) }
            let count = end - next
            guard count > 0 else { return }
            let start = out.count
            out.append(contentsOf: repeatElement(0, count: count))
            out.withUnsafeMutableBufferPointer { out in
                filter(into: UnsafeMutableBufferPointer(rebasing: out[start...]))
            }
            next = end
            // Keep what the next output reads: its centre and its first odd tap on.
            let evensDone = min(next - evenStart, evens.count)
            if evensDone > 0 {
                evens.removeFirst(evensDone)
                evenStart += evensDone
            }
            let oddsDone = min(next - side - oddStart, odds.count)
            if oddsDone > 0 {
                odds.removeFirst(oddsDone)
                oddStart += oddsDone
            }
        }

        /// Computes outputs `next`, `next + 1`, … into `out`.
        ///
        /// Output n reads `odds[first + n ..< first + n + taps]`: neighbouring outputs' windows are
        /// one sample apart, so sixteen outputs at a time take one broadcast coefficient and two
        /// vector multiply-adds per tap (each lane an output), and need no sum across lanes.
        private func filter(into out: UnsafeMutableBufferPointer<Int16>) {
            let taps = odd.count
            let center = self.center
            odd.withUnsafeBufferPointer { coeffs in
                odds.withUnsafeBufferPointer { odds in
                    evens.withUnsafeBufferPointer { evens in
                        let first = odds.baseAddress! + (next - side - oddStart)
                        let centers = evens.baseAddress! + (next - evenStart)
                        var n = 0
                        while n &+ 16 <= out.count {
                            let x = first + n
                            var low = center * Resampler.load(centers + n)
                            var high = center * Resampler.load(centers + n + 8)
                            var k = 0
                            while k < taps {
                                let c = SIMD8(repeating: coeffs[k])
                                low += c * Resampler.load(x + k)
                                high += c * Resampler.load(x + k + 8)
                                k &+= 1
                            }
                            Resampler.storePCM16(low, to: out.baseAddress! + n)
                            Resampler.storePCM16(high, to: out.baseAddress! + n + 8)
                            n &+= 16
                        }
                        // The rest one at a time, adding in the lanes' order: any split of the
                        // input gives the same output, to the bit.
                        while n < out.count {
                            var sum = center * centers[n]
                            for k in 0..<taps { sum += coeffs[k] * first[n + k] }
                            out[n] = Resampler.pcm16(sum)
                            n &+= 1
                        }
                    }
                }
            }
        }

        /// The end of a stream: outputs up to the end of the input (as if silence followed), then a reset.
        mutating func flush(into out: inout [Int16]) {
            let inputEnd = received
            append(count: half) { _ in 0 }
            produce(into: &out, limit: inputEnd)
            reset()
        }
    }
}
