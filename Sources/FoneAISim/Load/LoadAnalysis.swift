/// Per-call matching of what the simulator sent, what the AI server received and echoed, and what
/// the caller heard. Pure functions over the recorded timestamps (one CLOCK_MONOTONIC clock).
struct LoadCallAnalysis {
    /// The call's measured window (CLOCK_MONOTONIC ns): media start + edge … hangup − edge.
    var windowStart: UInt64
    var windowEnd: UInt64

    // caller → AI
    var toAIInWindow = 0
    var toAILost = 0
    var toAIDuplicates = 0
    var toAIUnidentified = 0
    var toAILatencyMs: [Double] = []
    /// Send time of each packet in `toAILatencyMs`.
    var toAITimes: [UInt64] = []
    var firstAIFrameNanos: UInt64?

    // AI → caller
    var toCallerInWindow = 0
    var toCallerLost = 0
    var toCallerDuplicates = 0
    var toCallerLatencyMs: [Double] = []
    /// AI send time of each frame in `toCallerLatencyMs`.
    var toCallerTimes: [UInt64] = []
    var packetsHeard = 0
    var silentPackets = 0
    var misalignedPackets = 0
    /// Heard packets whose tag did not fit the sequence (misread).
    var unreadablePackets = 0

    // pacing
    var intervalsMs: [Double] = []
    var talkspurtStarts = 0
    var simSendIntervalsMs: [Double] = []
    /// Intervals between the AI server's consecutive answers: the timing the bridge receives.
    var aiAnswerIntervalsMs: [Double] = []
    /// Kernel arrival → the simulator's read, of each packet heard in the window.
    var simReadDelaysMs: [Double] = []

    var heardAudioInWindow = 0
    /// The first places where a sequence does not advance by one (diagnosis).
    var anomalies: [String] = []
    /// Frames/packets whose order-based number had to be moved back a period (after a long loss burst).
    var renumbered = 0
    var aiFramesInWindow = 0
    /// The answer each heard packet was matched to (-1: silent or unreadable), for `--times`.
    var heardAnswers: [Int] = []

    /// - Parameters:
    ///   - sent: send time of each packet the simulator sent (index = packet number).
    ///   - aiArrival/aiEcho/aiSlot: per frame at the AI server, in arrival order; the answer to
    ///     frame `j` (sent at `aiEcho[j]`) carries tag `j % tags.count`.
    ///   - heard: packets the caller received, in order; `heardSamples` their decoded samples, concatenated.
    init(windowStart: UInt64, windowEnd: UInt64, indexer: ToneFrameIndexer, tags: EchoTags,
         sent: [UInt64], aiArrival: [UInt64], aiEcho: [UInt64], aiSlot: [Int16],
         heard: [SimHeardPacket], heardSamples: [Int16]) {
        self.windowStart = windowStart
        self.windowEnd = windowEnd
        let period = indexer.period
        // Send times are read just before the write, so nothing arrives before its send time;
        // the slack only keeps renumbering to frames that clearly could not be the ones heard.
        let slack: UInt64 = 10_000_000
        func inWindow(_ t: UInt64) -> Bool { t >= windowStart && t <= windowEnd }
        func ms(_ a: UInt64, _ b: UInt64) -> Double { (Double(a) - Double(b)) / 1e6 }
        /// Between consecutive times, where both lie in the window.
        func intervalsInWindowMs(_ times: [UInt64]) -> [Double] {
            zip(times, times.dropFirst()).compactMap { earlier, later in
                inWindow(earlier) && inWindow(later) ? ms(later, earlier) : nil
            }
        }

        // Caller → AI: number the AI's frames from their tone slot (the first frame is packet
        // `slot`: fewer than `period` packets can have gone missing before it).
        let slots = aiSlot.map(Int.init)
        toAIUnidentified = slots.filter { $0 < 0 }.count
        let (aiNumbers, aiDups, aiBack) = unwrapModulo(slots, period: period, first: { $0 }) { j, slot in
            latestMatching(sent, value: slot, period: period, limit: aiArrival[j] + slack)
        }
        toAIDuplicates = aiDups
        toAIUnidentified += aiBack
        // Where the sequence is not +1 (for diagnosis): "index:prev→slot".
        var last: Int? = nil
        for (j, v) in slots.enumerated() {
            if let l = last, v >= 0, (l + 1) % period != v, anomalies.count < 12 {
                anomalies.append("ai#\(j):\(l)→\(v)")
            } else if v < 0, anomalies.count < 12 {
                anomalies.append("ai#\(j):none")
            }
            if v >= 0 { last = v }
        }
        firstAIFrameNanos = aiArrival.first
        var arrivalOf = [UInt64](repeating: 0, count: max(sent.count, (aiNumbers.max() ?? -1) + 1))
        for (j, n0) in aiNumbers.enumerated() where n0 >= 0 {
            // Causality: a frame cannot arrive before its packet was sent (a long loss burst can
            // make the order-based number a period too high).
            var n = n0
            while n >= period, n >= sent.count || sent[n] > aiArrival[j] + slack { n -= period }
            if n != n0 { renumbered += 1 }
            if arrivalOf[n] == 0 { arrivalOf[n] = aiArrival[j] }
        }
        for (n, s) in sent.enumerated() where inWindow(s) {
            toAIInWindow += 1
            if arrivalOf[n] != 0 {
                toAILatencyMs.append(ms(arrivalOf[n], s))
                toAITimes.append(s)
            } else {
                toAILost += 1
            }
        }
        aiFramesInWindow = aiArrival.filter(inWindow).count

        // AI → caller: the AI's j-th answer carries tag j % tags.count; number the heard packets
        // from their tag (the first one heard is answer `tag`).
        packetsHeard = heard.count
        var heardTags = [Int](repeating: -1, count: heard.count)
        var offset = 0
        var expected: Int? = nil
        for (m, p) in heard.enumerated() {
            let samples = p.payloadType == 0 || p.payloadType == 8 ? p.payloadBytes : p.payloadBytes / 2
            defer { offset += samples }
            guard samples == 160, offset + samples <= heardSamples.count else { continue }
            let (tag, clean) = tags.detect(heardSamples[offset..<(offset + samples)], expected: expected)
            if tag < 0 {
                silentPackets += 1
                continue
            }
            if !clean { misalignedPackets += 1 }
            heardTags[m] = tag
            expected = tag + 1
        }
        let (heardNumbers, heardDups, heardBack) = unwrapModulo(heardTags, period: tags.count, first: { $0 }) { m, tag in
            latestMatching(aiEcho, value: tag, period: tags.count, limit: heard[m].arrivalNanos + slack)
        }
        toCallerDuplicates = heardDups
        unreadablePackets = heardBack
        var heardAt = [UInt64](repeating: 0, count: max(aiEcho.count, (heardNumbers.max() ?? -1) + 1))
        heardAnswers = heardNumbers
        for (m, j0) in heardNumbers.enumerated() where j0 >= 0 {
            // Causality: a packet cannot carry an answer sent after it arrived.
            var j = j0
            while j >= tags.count, j >= aiEcho.count || aiEcho[j] > heard[m].arrivalNanos + slack { j -= tags.count }
            if j != j0 { renumbered += 1 }
            heardAnswers[m] = j
            guard heardAt[j] == 0 else { continue }
            heardAt[j] = heard[m].arrivalNanos
            if inWindow(heard[m].arrivalNanos) { heardAudioInWindow += 1 }
        }
        for (j, e) in aiEcho.enumerated() where inWindow(e) {
            toCallerInWindow += 1
            if heardAt[j] != 0 {
                toCallerLatencyMs.append(ms(heardAt[j], e))
                toCallerTimes.append(e)
            } else {
                toCallerLost += 1
            }
        }

        // Pacing at the caller: consecutive packets inside the window, except talkspurt starts.
        if heard.count > 1 {
            for m in 1..<heard.count where inWindow(heard[m - 1].arrivalNanos) && inWindow(heard[m].arrivalNanos) {
                if heard[m].marker {
                    talkspurtStarts += 1
                    continue
                }
                intervalsMs.append(ms(heard[m].arrivalNanos, heard[m - 1].arrivalNanos))
            }
        }
        for packet in heard where inWindow(packet.arrivalNanos) {
            if let delay = packet.readDelayNanos { simReadDelaysMs.append(Double(delay) / 1e6) }
        }
        simSendIntervalsMs = intervalsInWindowMs(sent)
        aiAnswerIntervalsMs = intervalsInWindowMs(aiEcho)
    }
}
