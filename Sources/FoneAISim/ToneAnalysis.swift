import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Sine generator with a continuous phase.
public struct ToneGenerator: Sendable {
    public var frequency: Double
    public var sampleRate: Int
    public var amplitude: Double
    /// Index of the next sample to produce.
    public private(set) var position: Int = 0

    public init(frequency: Double, sampleRate: Int, amplitude: Double = 8000) {
        self.frequency = frequency
        self.sampleRate = sampleRate
        self.amplitude = amplitude
    }

    /// Sample number `index` of the tone (stateless).
    @inline(__always)
    public static func sample(index: Int, frequency: Double, sampleRate: Int, amplitude: Double = 8000) -> Int16 {
        let phase = 2 * Double.pi * frequency * Double(index) / Double(sampleRate)
        return Int16(clamping: Int((amplitude * sin(phase)).rounded()))
    }

    /// Next `count` samples.
    public mutating func next(_ count: Int) -> [Int16] {
        var out = [Int16]()
        out.reserveCapacity(count)
        for i in 0..<count {
            out.append(Self.sample(index: position + i, frequency: frequency, sampleRate: sampleRate, amplitude: amplitude))
        }
        position += count
        return out
    }

    /// `seconds` of a tone.
    public static func tone(hz: Double, seconds: Double, sampleRate: Int, amplitude: Double = 8000) -> [Int16] {
        var g = ToneGenerator(frequency: hz, sampleRate: sampleRate, amplitude: amplitude)
        return g.next(Int((seconds * Double(sampleRate)).rounded()))
    }
}

/// Simple signal analysis for tests: dominant frequency, RMS, silence trimming.
public enum ToneAnalysis {
    /// Root mean square of the samples (0 for an empty array).
    public static func rms(_ samples: [Int16]) -> Double {
        guard !samples.isEmpty else { return 0 }
        var acc = 0.0
        for s in samples {
            let d = Double(s)
            acc += d * d
        }
        return (acc / Double(samples.count)).squareRoot()
    }

    public static func rms(_ samples: ArraySlice<Int16>) -> Double {
        rms(Array(samples))
    }

    /// The samples without leading and trailing silence (|s| <= threshold).
    public static func trimSilence(_ samples: [Int16], threshold: Int16 = 200) -> ArraySlice<Int16> {
        guard let first = samples.firstIndex(where: { abs(Int32($0)) > Int32(threshold) }),
            let last = samples.lastIndex(where: { abs(Int32($0)) > Int32(threshold) })
        else { return [] }
        return samples[first...last]
    }

    /// Number of samples whose 10 ms window has an RMS above `threshold` (a measure of "how much sound").
    public static func activeSampleCount(_ samples: [Int16], sampleRate: Int, threshold: Double = 300) -> Int {
        let win = max(1, sampleRate / 100)
        var count = 0
        var i = 0
        while i < samples.count {
            let end = min(samples.count, i + win)
            if rms(samples[i..<end]) > threshold { count += end - i }
            i = end
        }
        return count
    }

    /// Goertzel power of `frequency` over the samples.
    public static func goertzelPower(_ samples: ArraySlice<Int16>, frequency: Double, sampleRate: Int) -> Double {
        let w = 2 * Double.pi * frequency / Double(sampleRate)
        let coeff = 2 * cos(w)
        var s1 = 0.0, s2 = 0.0
        for x in samples {
            let s0 = Double(x) + coeff * s1 - s2
            s2 = s1
            s1 = s0
        }
        return s1 * s1 + s2 * s2 - coeff * s1 * s2
    }

    /// The samples of the 10 ms windows that carry sound (RMS above `threshold`, or above 10 % of the
    /// loudest window), concatenated: silence gaps (RTP gaps, underruns) removed.
    public static func activeSamples(_ samples: [Int16], sampleRate: Int, threshold: Double = 100) -> [Int16] {
        let win = max(1, sampleRate / 100)
        var rmsList: [Double] = []
        var i = 0
        while i < samples.count {
            let end = min(samples.count, i + win)
            rmsList.append(rms(samples[i..<end]))
            i = end
        }
        let loudest = rmsList.max() ?? 0
        let limit = max(threshold, loudest * 0.1)
        var out: [Int16] = []
        out.reserveCapacity(samples.count)
        for (w, r) in rmsList.enumerated() where r > limit {
            let start = w * win
            out.append(contentsOf: samples[start..<min(samples.count, start + win)])
        }
        return out
    }

    /// Dominant frequency in Hz of a (mostly) tonal signal; 0 when the signal is silent.
    ///
    /// Silent 10 ms windows (gaps anywhere, not only at the ends) are ignored. A zero-crossing
    /// estimate over the active windows (each window counted on its own, so splices add nothing) is
    /// refined with a Goertzel scan (1 Hz steps, ±25 %) over at most 0.25 s of active sound, and
    /// parabolic interpolation. `maxSeconds` limits how much active sound is analysed.
    public static func dominantFrequency(_ samples: [Int16], sampleRate: Int, maxSeconds: Double = 2.0) -> Double {
        let win = max(1, sampleRate / 100)
        var active = activeSamples(samples, sampleRate: sampleRate)
        guard active.count >= max(16, win) else { return 0 }
        let maxCount = Int(maxSeconds * Double(sampleRate))
        if active.count > maxCount {
            let start = ((active.count - maxCount) / 2 / win) * win
            active = Array(active[start..<start + maxCount])
        }
        // Zero-crossing estimate per window: crossings / time, summed over windows.
        let hyst: Int32 = 64
        var crossingsTotal = 0.0
        var spanTotal = 0.0
        var w = 0
        while w < active.count {
            let end = min(active.count, w + win)
            var positive: Bool? = nil
            var crossings = 0
            var first = -1, last = -1
            for idx in w..<end {
                let v = Int32(active[idx])
                if positive != true && v > hyst {
                    if positive == false {
                        crossings += 1
                        if first < 0 { first = idx }
                        last = idx
                    }
                    positive = true
                } else if positive != false && v < -hyst {
                    if positive == true {
                        crossings += 1
                        if first < 0 { first = idx }
                        last = idx
                    }
                    positive = false
                }
            }
            if crossings >= 2 && last > first {
                crossingsTotal += Double(crossings - 1)
                spanTotal += Double(last - first)
            }
            w = end
        }
        // Low tones have < 2 crossings per 10 ms window: fall back to the whole active signal.
        if spanTotal < Double(active.count) * 0.3 {
            crossingsTotal = 0
            spanTotal = 0
            var positive: Bool? = nil
            var crossings = 0
            var first = -1, last = -1
            for (idx, s) in active.enumerated() {
                let v = Int32(s)
                if positive != true && v > hyst {
                    if positive == false { crossings += 1; if first < 0 { first = idx }; last = idx }
                    positive = true
                } else if positive != false && v < -hyst {
                    if positive == true { crossings += 1; if first < 0 { first = idx }; last = idx }
                    positive = false
                }
            }
            if crossings >= 3 && last > first {
                crossingsTotal = Double(crossings - 1)
                spanTotal = Double(last - first)
            }
        }
        let estimate = spanTotal > 0 ? crossingsTotal / 2 / (spanTotal / Double(sampleRate)) : 0
        let nyquist = Double(sampleRate) / 2
        let lo: Double, hi: Double, step: Double
        if estimate > 0 {
            lo = max(20, estimate * 0.75)
            hi = min(nyquist - 1, estimate * 1.25)
            step = 1
        } else {
            lo = 20
            hi = nyquist - 1
            step = 5
        }
        guard hi > lo else { return estimate }
        var gw = active[...]
        let gMax = sampleRate / 4
        if gw.count > gMax {
            let start = gw.startIndex + ((gw.count - gMax) / 2 / win) * win
            gw = gw[start..<start + gMax]
        }
        var bestF = lo, bestP = -1.0
        var powers: [(Double, Double)] = []
        var f = lo
        while f <= hi {
            let p = goertzelPower(gw, frequency: f, sampleRate: sampleRate)
            powers.append((f, p))
            if p > bestP { bestP = p; bestF = f }
            f += step
        }
        if let idx = powers.firstIndex(where: { $0.0 == bestF }), idx > 0, idx < powers.count - 1 {
            let a = powers[idx - 1].1, b = powers[idx].1, c = powers[idx + 1].1
            let denom = a - 2 * b + c
            if denom != 0 {
                let delta = 0.5 * (a - c) / denom
                if abs(delta) <= 1 { return bestF + delta * step }
            }
        }
        return bestF
    }

    /// Converts little-endian PCM16 bytes to samples.
    public static func samplesFromPCM16LE(_ bytes: [UInt8]) -> [Int16] {
        var out = [Int16]()
        out.reserveCapacity(bytes.count / 2)
        var i = 0
        while i + 1 < bytes.count {
            out.append(Int16(bitPattern: UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8))
            i += 2
        }
        return out
    }

    /// Little-endian PCM16 bytes of the samples.
    public static func pcm16LEBytes(_ samples: [Int16]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(samples.count * 2)
        for s in samples {
            let u = UInt16(bitPattern: s)
            out.append(UInt8(u & 0xFF))
            out.append(UInt8(u >> 8))
        }
        return out
    }
}
