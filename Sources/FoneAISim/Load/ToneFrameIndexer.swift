#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Tells which packet of a caller's tone a 20 ms frame carries, from the tone's phase.
///
/// The load benchmark's callers send a sine of integer frequency whose phase advances by a
/// fraction of a cycle per 20 ms packet (301 Hz: 6.02 cycles, so 0.02 cycle): each of the
/// `period` (50) packets of one tone period has its own phase. The phase survives the bridge's
/// byte swap exactly and its 16 → 8 kHz linear-phase resampler unchanged, so the same estimate
/// identifies a packet at the AI server (16 kHz) and at the caller (8 kHz, echoed back). With the
/// order of arrival this gives each frame's packet number, as long as fewer than `period`
/// consecutive packets go missing.
public struct ToneFrameIndexer: Sendable {
    public let frequency: Double
    public let amplitude: Double
    /// Packets per tone period: the slot of packet `n` is `n % period`.
    public let period: Int
    /// Phase position (in 1/period cycles) → packet slot.
    let slotOfPhase: [Int]

    struct Table: Sendable {
        let sin: [Double]
        let cos: [Double]
        /// Inverse of [[Σsin², Σsin·cos], [Σsin·cos, Σcos²]].
        let inv: (Double, Double, Double, Double)
    }

    let table16: Table
    let table8: Table

    /// `frequency` must be an integer number of Hz; the phase step per packet is frac(frequency / 50).
    public init(frequency: Double = 301, amplitude: Double = 8000) {
        self.frequency = frequency
        self.amplitude = amplitude
        var period = 50
        for p in 1...50 {
            let cycles = frequency * Double(p) / 50
            if abs(cycles - cycles.rounded()) < 1e-9 {
                period = p
                break
            }
        }
        self.period = period
        var map = [Int](repeating: -1, count: period)
        for n in 0..<period {
            let c = Self.frac(frequency * Double(n) / 50)
            map[Int((c * Double(period)).rounded()) % period] = n
        }
        slotOfPhase = map
        table16 = Self.makeTable(frequency: frequency, sampleRate: 16000, count: 320)
        table8 = Self.makeTable(frequency: frequency, sampleRate: 8000, count: 160)
    }

    static func frac(_ x: Double) -> Double { x - x.rounded(.down) }

    static func makeTable(frequency: Double, sampleRate: Int, count: Int) -> Table {
        var s = [Double](), c = [Double]()
        var ss = 0.0, cc = 0.0, sc = 0.0
        for i in 0..<count {
            let w = 2 * Double.pi * frequency * Double(i) / Double(sampleRate)
            s.append(sin(w))
            c.append(cos(w))
            ss += sin(w) * sin(w)
            cc += cos(w) * cos(w)
            sc += sin(w) * cos(w)
        }
        let det = ss * cc - sc * sc
        return Table(sin: s, cos: c, inv: (cc / det, -sc / det, -sc / det, ss / det))
    }

    /// The tone's amplitude and phase (cycles, 0..<1) at the first sample.
    func phase(count: Int, table: Table, sample: (Int) -> Double) -> (amplitude: Double, cycles: Double) {
        var i0 = 0.0, q0 = 0.0
        let n = min(count, table.sin.count)
        for i in 0..<n {
            let x = sample(i)
            i0 += x * table.sin[i]
            q0 += x * table.cos[i]
        }
        // x = A·sin(ωi + φ) = A·cosφ·sin(ωi) + A·sinφ·cos(ωi): solve for (A·cosφ, A·sinφ).
        let u = table.inv.0 * i0 + table.inv.1 * q0
        let v = table.inv.2 * i0 + table.inv.3 * q0
        let amp = (u * u + v * v).squareRoot()
        var cycles = atan2(v, u) / (2 * Double.pi)
        if cycles < 0 { cycles += 1 }
        return (amp, cycles)
    }

    /// Slot, distance from the nearest slot (in slots, ±0.5) and amplitude of a frame.
    public struct Estimate: Sendable {
        /// -1 when the frame does not carry the tone (silence, or too weak).
        public var slot: Int
        public var residual: Double
        public var amplitude: Double
    }

    func estimate(amplitude amp: Double, cycles: Double) -> Estimate {
        guard amp >= amplitude * 0.5 else { return Estimate(slot: -1, residual: 0, amplitude: amp) }
        let pos = cycles * Double(period)
        let r = pos.rounded()
        return Estimate(slot: slotOfPhase[Int(r) % period], residual: pos - r, amplitude: amp)
    }

    /// A 20 ms frame of PCM16LE bytes at 16 kHz (what the AI receives): its slot, or -1.
    public func slot(pcm16le bytes: UnsafeRawBufferPointer) -> Int {
        let count = bytes.count / 2
        guard count == 320 else { return -1 }
        let (amp, cycles) = phase(count: count, table: table16) { i in
            Double(Int16(bitPattern: UInt16(bytes[2 * i]) | UInt16(bytes[2 * i + 1]) << 8))
        }
        return estimate(amplitude: amp, cycles: cycles).slot
    }

    /// A 20 ms frame of samples at 8 or 16 kHz.
    public func estimate(_ samples: ArraySlice<Int16>, sampleRate: Int) -> Estimate {
        let table = sampleRate == 16000 ? table16 : table8
        guard samples.count == table.sin.count else { return Estimate(slot: -1, residual: 0, amplitude: 0) }
        let base = samples.startIndex
        let (amp, cycles) = phase(count: samples.count, table: table) { i in Double(samples[base + i]) }
        return estimate(amplitude: amp, cycles: cycles)
    }
}

/// The frames the load benchmark's AI server answers with: for its `j`-th answer in a session it
/// sends 20 ms of a tone at `frequency(j % count)` (400, 500, … Hz: whole cycles per 20 ms, so
/// frames join without clicks and the tones are orthogonal over a frame). A frequency survives
/// the bridge's resampling and any shift of the frame grid (padding after an underrun), so each
/// packet the caller hears names the answer it carries, modulo `count`.
public struct EchoTags: Sendable {
    public let count: Int
    public let amplitude: Double
    public let firstHz: Double
    public let stepHz: Double
    /// PCM16LE, 16 kHz, 320 samples, per tag.
    public let frames16k: [[UInt8]]
    /// sin/cos tables per tag at 8 kHz over 160 samples.
    let sin8: [[Double]]
    let cos8: [[Double]]

    public init(count: Int = 25, firstHz: Double = 400, stepHz: Double = 100, amplitude: Double = 8000) {
        self.count = count
        self.firstHz = firstHz
        self.stepHz = stepHz
        self.amplitude = amplitude
        var frames: [[UInt8]] = []
        var s8: [[Double]] = [], c8: [[Double]] = []
        for k in 0..<count {
            let hz = firstHz + stepHz * Double(k)
            var bytes: [UInt8] = []
            for i in 0..<320 {
                let v = UInt16(bitPattern: Int16((amplitude * sin(2 * Double.pi * hz * Double(i) / 16000)).rounded()))
                bytes.append(UInt8(v & 0xFF))
                bytes.append(UInt8(v >> 8))
            }
            frames.append(bytes)
            s8.append((0..<160).map { sin(2 * Double.pi * hz * Double($0) / 8000) })
            c8.append((0..<160).map { cos(2 * Double.pi * hz * Double($0) / 8000) })
        }
        frames16k = frames
        sin8 = s8
        cos8 = c8
    }

    public func frequency(_ tag: Int) -> Double { firstHz + stepHz * Double(tag) }

    /// Amplitude of tag `k`'s tone in a 160-sample frame at 8 kHz.
    func amplitude(of k: Int, in samples: ArraySlice<Int16>) -> Double {
        var i = 0.0, q = 0.0
        let s = sin8[k], c = cos8[k]
        var idx = 0
        for x in samples {
            let v = Double(x)
            i += v * s[idx]
            q += v * c[idx]
            idx += 1
        }
        return 2 * (i * i + q * q).squareRoot() / Double(samples.count)
    }

    /// Which tag a 20 ms packet at 8 kHz carries (-1: none, i.e. silence), trying `expected` first;
    /// `clean` is false when the packet mixes two tags (its frame grid is shifted).
    public func detect(_ samples: ArraySlice<Int16>, expected: Int?) -> (tag: Int, clean: Bool) {
        guard samples.count == 160 else { return (-1, false) }
        if let e = expected, e >= 0 {
            let a = amplitude(of: e % count, in: samples)
            if a >= amplitude * 0.8 { return (e % count, true) }
        }
        var best = -1
        var bestAmp = 0.0
        for k in 0..<count {
            let a = amplitude(of: k, in: samples)
            if a > bestAmp {
                bestAmp = a
                best = k
            }
        }
        guard bestAmp >= amplitude * 0.3 else { return (-1, true) }
        return (best, bestAmp >= amplitude * 0.8)
    }
}

/// Numbers for values observed in order modulo `period`: each is the number congruent to its
/// value that is closest to (previous + 1), looking back at most period/2 - 1 and ahead at most
/// period/2. A number equal to the previous one is a duplicate. When that number would go
/// backwards (more than period/2 consecutive values were lost), `fallback(index, value)` is asked
/// (the benchmark finds the number from timestamps); nil or still backwards: the value is skipped
/// and counted in `backwards`. Values < 0 stay -1.
func unwrapModulo(_ values: [Int], period: Int, first: (Int) -> Int,
                  fallback: (Int, Int) -> Int? = { _, _ in nil }) -> (numbers: [Int], duplicates: Int, backwards: Int) {
    var out = [Int](repeating: -1, count: values.count)
    var prev: Int? = nil
    var dups = 0, back = 0
    for (i, v) in values.enumerated() where v >= 0 {
        guard let p = prev else {
            out[i] = first(v)
            prev = out[i]
            continue
        }
        let expected = p + 1
        let delta = ((v - expected % period) % period + period) % period  // 0 ..< period
        var n = delta <= period / 2 ? expected + delta : expected + delta - period
        if n == p { dups += 1 }
        if n < p {
            guard let f = fallback(i, v), f > p else {
                back += 1
                continue  // a misread: keep the track
            }
            n = f
        }
        out[i] = n
        prev = n
    }
    return (out, dups, back)
}

/// The largest number `n` ≡ `value` (mod `period`) whose time `times[n]` is at most `limit`.
func latestMatching(_ times: [UInt64], value: Int, period: Int, limit: UInt64) -> Int? {
    // Binary search for the last index with times[index] <= limit (times are non-decreasing).
    var lo = 0, hi = times.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if times[mid] <= limit { lo = mid + 1 } else { hi = mid }
    }
    var n = lo - 1
    guard n >= 0 else { return nil }
    n -= ((n - value) % period + period) % period
    return n >= 0 ? n : nil
}
