import NIOCore

/// `SimAudio` compiled into 20 ms RTP payloads for one format. Tone payloads are precomputed
/// (a tone of integer Hz repeats every ≤ 50 packets), so sending costs a copy, not `sin()`.
struct AudioTimeline: Sendable {
    enum Segment: Sendable {
        case silence(packets: Int)
        /// `payloads` repeat cyclically; when nil, samples are computed per packet.
        case tone(hz: Double, packets: Int, payloads: [ByteBuffer]?)
        case samples16k([Int16], packets: Int)

        var packets: Int {
            switch self {
            case .silence(let p), .tone(_, let p, _), .samples16k(_, let p): return p
            }
        }
    }

    enum Packet {
        case payload(ByteBuffer)
        case silent
        case ended
    }

    let format: SimRTPFormat
    let segments: [Segment]
    let starts: [Int]
    let total: Int

    init(_ audio: SimAudio, format: SimRTPFormat) {
        self.format = format
        var segs: [Segment] = []
        AudioTimeline.flatten(audio, format: format, into: &segs)
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

    static func flatten(_ audio: SimAudio, format: SimRTPFormat, into segs: inout [Segment]) {
        switch audio {
        case .silence:
            break  // never speaks: no packets at all
        case .tone(let hz, let seconds):
            let n = packetCount(seconds: seconds)
            segs.append(.tone(hz: hz, packets: n, payloads: tonePayloads(hz: hz, format: format, maxPackets: n)))
        case .samples16k(let samples):
            segs.append(.samples16k(samples, packets: (samples.count + 319) / 320))
        case .silenceThenTone(let silence, let hz, let seconds):
            segs.append(.silence(packets: packetCount(seconds: silence)))
            let n = packetCount(seconds: seconds)
            segs.append(.tone(hz: hz, packets: n, payloads: tonePayloads(hz: hz, format: format, maxPackets: n)))
        case .pause(let seconds):
            segs.append(.silence(packets: packetCount(seconds: seconds)))
        case .sequence(let parts):
            for p in parts { flatten(p, format: format, into: &segs) }
        }
    }

    /// Payloads of one period of the tone (nil when it does not repeat within 50 packets).
    static func tonePayloads(hz: Double, format: SimRTPFormat, maxPackets: Int) -> [ByteBuffer]? {
        var period: Int? = nil
        for p in 1...50 {
            let cycles = hz * Double(p) / 50
            if abs(cycles - cycles.rounded()) < 1e-9 {
                period = p
                break
            }
        }
        guard let period else { return nil }
        let count = min(period, max(1, maxPackets))
        let spp = format.samplesPerPacket
        return (0..<count).map { k in
            var samples = [Int16]()
            samples.reserveCapacity(spp)
            for i in 0..<spp {
                samples.append(ToneGenerator.sample(index: k * spp + i, frequency: hz, sampleRate: format.sampleRate))
            }
            return encode(samples, format: format)
        }
    }

    static func encode(_ samples: [Int16], format: SimRTPFormat) -> ByteBuffer {
        var buf = ByteBufferAllocator().buffer(capacity: format.payloadBytes)
        switch format {
        case .slin16, .slin:
            for s in samples { buf.writeInteger(s, endianness: .big) }
        case .ulaw:
            for s in samples { buf.writeInteger(G711.ulawEncode(s)) }
        case .alaw:
            for s in samples { buf.writeInteger(G711.alawEncode(s)) }
        }
        return buf
    }

    /// Payload of packet `n` (0-based, 20 ms each).
    func packet(_ n: Int) -> Packet {
        guard n < total else { return .ended }
        var idx = segments.count - 1
        for i in 0..<segments.count where n < starts[i] + segments[i].packets {
            idx = i
            break
        }
        let k = n - starts[idx]
        let spp = format.samplesPerPacket
        switch segments[idx] {
        case .silence:
            return .silent
        case .tone(let hz, _, let payloads):
            if let payloads { return .payload(payloads[k % payloads.count]) }
            var out = [Int16]()
            out.reserveCapacity(spp)
            for i in 0..<spp {
                out.append(ToneGenerator.sample(index: k * spp + i, frequency: hz, sampleRate: format.sampleRate))
            }
            return .payload(Self.encode(out, format: format))
        case .samples16k(let samples, _):
            let start = k * 320
            var chunk = [Int16](repeating: 0, count: 320)
            let end = min(samples.count, start + 320)
            if start < end {
                for i in start..<end { chunk[i - start] = samples[i] }
            }
            if format.sampleRate == 16000 { return .payload(Self.encode(chunk, format: format)) }
            var out = [Int16]()
            out.reserveCapacity(160)
            var i = 0
            while i + 1 < chunk.count {
                out.append(Int16((Int32(chunk[i]) + Int32(chunk[i + 1])) / 2))
                i += 2
            }
            return .payload(Self.encode(out, format: format))
        }
    }
}
