/// `SimAudio` compiled into 20 ms packets for one RTP format.
struct AudioTimeline: Sendable {
    enum Segment: Sendable {
        case silence(packets: Int)
        case tone(hz: Double, packets: Int)
        case samples16k([Int16], packets: Int)

        var packets: Int {
            switch self {
            case .silence(let p), .tone(_, let p), .samples16k(_, let p): return p
            }
        }
    }

    enum Packet {
        case audio([Int16])
        case silent
        case ended
    }

    let segments: [Segment]
    let starts: [Int]
    let total: Int

    init(_ audio: SimAudio) {
        var segs: [Segment] = []
        AudioTimeline.flatten(audio, into: &segs)
        segments = segs
        var s: [Int] = []
        var acc = 0
        for seg in segs {
            s.append(acc)
            let (sum, overflow) = acc.addingReportingOverflow(seg.packets)
            acc = overflow ? Int.max : sum
        }
        starts = s
        total = acc
    }

    static func packetCount(seconds: Double) -> Int {
        if !seconds.isFinite { return Int.max / 4 }
        return max(0, Int((seconds / 0.02).rounded()))
    }

    static func flatten(_ audio: SimAudio, into segs: inout [Segment]) {
        switch audio {
        case .silence:
            break  // never speaks: no packets at all
        case .tone(let hz, let seconds):
            segs.append(.tone(hz: hz, packets: packetCount(seconds: seconds)))
        case .samples16k(let samples):
            segs.append(.samples16k(samples, packets: (samples.count + 319) / 320))
        case .silenceThenTone(let silence, let hz, let seconds):
            segs.append(.silence(packets: packetCount(seconds: silence)))
            segs.append(.tone(hz: hz, packets: packetCount(seconds: seconds)))
        case .pause(let seconds):
            segs.append(.silence(packets: packetCount(seconds: seconds)))
        case .sequence(let parts):
            for p in parts { flatten(p, into: &segs) }
        }
    }

    /// Content of packet `n` (0-based, 20 ms each) at `sampleRate`.
    func packet(_ n: Int, sampleRate: Int) -> Packet {
        guard n < total else { return .ended }
        // find segment (segments are few: linear scan)
        var idx = segments.count - 1
        for i in 0..<segments.count where n < starts[i] + segments[i].packets {
            idx = i
            break
        }
        let k = n - starts[idx]
        let spp = sampleRate / 50
        switch segments[idx] {
        case .silence:
            return .silent
        case .tone(let hz, _):
            var out = [Int16]()
            out.reserveCapacity(spp)
            let base = k * spp
            for i in 0..<spp {
                out.append(ToneGenerator.sample(index: base + i, frequency: hz, sampleRate: sampleRate))
            }
            return .audio(out)
        case .samples16k(let samples, _):
            let start = k * 320
            var chunk = [Int16](repeating: 0, count: 320)
            let end = min(samples.count, start + 320)
            if start < end {
                for i in start..<end { chunk[i - start] = samples[i] }
            }
            if sampleRate == 16000 { return .audio(chunk) }
            // 8 kHz: average pairs
            var out = [Int16]()
            out.reserveCapacity(160)
            var i = 0
            while i + 1 < chunk.count {
                out.append(Int16((Int32(chunk[i]) + Int32(chunk[i + 1])) / 2))
                i += 2
            }
            return .audio(out)
        }
    }
}
