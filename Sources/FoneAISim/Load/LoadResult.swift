import FoundationEssentials

/// Everything one load run measured; written as JSON by `foneai-sim load --json` and read back by
/// `foneai-sim load report`. Times in milliseconds unless the name says otherwise.
public struct LoadResult: Codable, Sendable {
    public struct Percentiles: Codable, Sendable {
        public var count: Int
        public var min: Double
        public var p1: Double
        public var p50: Double
        public var p99: Double
        public var max: Double

        public static let empty = Percentiles(count: 0, min: 0, p1: 0, p50: 0, p99: 0, max: 0)

        /// Nearest-rank percentiles of `values` (sorted in place).
        public static func of(_ values: inout [Double]) -> Percentiles {
            guard !values.isEmpty else { return .empty }
            values.sort()
            func rank(_ q: Double) -> Double {
                let i = Int((q * Double(values.count)).rounded(.up)) - 1
                return values[Swift.max(0, Swift.min(values.count - 1, i))]
            }
            return Percentiles(count: values.count, min: values[0], p1: rank(0.01), p50: rank(0.5), p99: rank(0.99), max: values[values.count - 1])
        }
    }

    public struct Machine: Codable, Sendable {
        public var cpuModel: String
        public var cores: Int
        public var memoryMB: Int
        public var kernel: String
        public var loadAverageBefore: Double
        public var loadAverageAfter: Double
        /// The simulator (fake Asterisk + AI server) runs on the same machine as the daemon.
        public var simulatorSharesMachine: Bool
        /// The daemon's nice value (the simulator starts it; their threads' niceness can differ).
        public var niceness: Int
        /// The CPUs the daemon and the simulator could run on, as the kernel listed them ("0-1").
        public var daemonCPUs: String?
        public var simulatorCPUs: String?
        /// SCHED_FIFO priority of the simulator's event loop threads (nil: normal scheduling).
        public var simulatorRealtimePriority: Int?
        /// The simulator's nice value (nil: a run from before it was recorded).
        public var simulatorNiceness: Int?
        /// The highest real-time priority among the daemon's threads while all calls were up
        /// (0: normal scheduling; nil: a run from before it was recorded).
        public var daemonRealtimePriority: Int?
    }

    public struct Parameters: Codable, Sendable {
        public var calls: Int
        public var rate: Double
        public var holdSeconds: Double
        public var toneHz: Double
        public var edgeSeconds: Double
        public var externalStasisDelayMs: [Double]
        public var bridge: String
        public var daemonLogLevel: String
        /// `ai.maxBufferedAudioMs` given to the daemon (nil: its default, 10000).
        public var maxBufferedAudioMs: Int?
        /// Seed of the Poisson call arrivals (nil: a run from before arrivals were random).
        public var seed: UInt64?
    }

    public struct Calls: Codable, Sendable {
        public var placed: Int
        /// Caller bridged with an external media channel (media flowing from the simulator).
        public var bridged: Int
        /// Bridged, audio both ways for the whole call, still in Stasis when the caller hung up,
        /// AI session open until then.
        public var sustained: Int
        /// Calls left out of the media figures because the simulator gave two external channels the
        /// same RTP port (see notes).
        public var excludedPortCollisions: Int
        public var aiSessions: Int
        /// Why calls were not sustained (first 20).
        public var failures: [String]
        /// Seconds during which all calls were up at once (the CPU/RSS window).
        public var concurrentSeconds: Double
        /// Measured media seconds per call after excluding the edges (mean).
        public var windowSecondsPerCall: Double
    }

    /// Caller → AI: RTP packets the simulator sent vs binary frames the AI server received.
    public struct ToAI: Codable, Sendable {
        public var packetsInWindow: Int
        public var lost: Int
        public var duplicates: Int
        /// Frames at the AI that did not carry the caller's tone.
        public var unidentified: Int
        /// Simulator send → AI server receive, per packet.
        public var latencyMs: Percentiles
    }

    /// AI → caller: frames the AI echoed vs RTP packets the caller received.
    public struct ToCaller: Codable, Sendable {
        public var framesInWindow: Int
        public var lost: Int
        public var duplicates: Int
        /// AI server send → simulator (caller) receive, per frame.
        public var latencyMs: Percentiles
        /// The same minus each call's own lowest latency: what varies from packet to packet.
        public var latencyAboveCallFloorMs: Percentiles
        /// Per-call lowest latency (the part set by the call's slot grid and the resampler), across calls.
        public var callFloorMs: Percentiles
        public var packetsHeard: Int
        /// Packets of silence (the 2-frame tail after a talkspurt, or padding).
        public var silentPackets: Int
        /// Audio packets whose content is not aligned to a 20 ms frame (zeros inserted earlier).
        public var misalignedPackets: Int
        /// Audio packets whose tag did not fit the sequence (not counted as delivered).
        public var unreadablePackets: Int
    }

    public struct Pacing: Codable, Sendable {
        /// Inter-arrival intervals of consecutive packets at the caller (simulator).
        public var intervalMs: Percentiles
        /// |interval − 20 ms|.
        public var absDeviationMs: Percentiles
        public var talkspurtStartsExcluded: Int
        public var intervalsOver22ms: Int
        public var intervalsUnder18ms: Int
        /// The simulator's own send intervals over the same windows: the machine's scheduling
        /// noise as seen from the simulator process (a floor for the numbers above).
        public var simulatorSendIntervalMs: Percentiles
        /// Intervals between the AI server's consecutive answers to a call, as it sent them: the
        /// echo answers each caller frame at once, so these carry the jitter of the caller's
        /// sends, of the bridge's way to the AI and of the simulator's reads, all of which the
        /// bridge's 2 ms hold must absorb to keep its own output 20 ms apart. nil in results
        /// written before it was measured.
        public var aiAnswerIntervalMs: Percentiles?
    }

    public struct Setup: Codable, Sendable {
        /// StasisStart of the caller → caller bridged with the external channel (RTP starts).
        public var bridgedMs: Percentiles
        /// StasisStart → first caller audio frame at the AI server.
        public var firstAudioAtAIMs: Percentiles
    }

    public struct Daemon: Codable, Sendable {
        public var windowSeconds: Double
        public var cpuSeconds: Double
        /// CPU time / wall time in the window: 1.0 = one core.
        public var cores: Double
        public var userSeconds: Double
        public var systemSeconds: Double
        public var cpuSecondsPerCallMinute: Double
        public var rssIdleKB: Int
        public var rssLoadedKB: Int
        public var rssPeakKB: Int
        public var rssPerCallKB: Double
        public var threads: Int
        public var exitStatus: Int?
        public var stopSeconds: Double
        /// Busiest threads in the window.
        public var threadLoad: [ThreadLoad]
        /// Context switches of all the daemon's threads per second in the window.
        public var voluntarySwitchesPerSecond: Double?
        public var involuntarySwitchesPerSecond: Double?
    }

    public struct Simulator: Codable, Sendable {
        /// CPU of the simulator process (fake Asterisk + AI server + this driver) in the window, in cores.
        public var cores: Double
        /// Send ticks that ran > 40 ms late (the simulator itself was overloaded).
        public var lateSends: Int
        public var rtpSent: Int
        public var rtpReceived: Int
        /// RTP sends the simulator's kernel refused (nil in results from before it was counted).
        public var sendErrors: Int?
        /// How long after the kernel queued each RTP packet heard in the window the simulator's
        /// event loop read it. The AI server's receive times (the end of RTP in → AI) are taken
        /// on the same loop, so they include a delay of this kind; nil in older results.
        public var readDelayMs: Percentiles?
        /// Busiest threads of the simulator process in the window.
        public var threadLoad: [ThreadLoad]
    }

    public struct ThreadLoad: Codable, Sendable {
        public var thread: String
        /// CPU time / wall time in the window.
        public var cores: Double
    }

    public struct Second: Codable, Sendable {
        /// Seconds since the first call was placed.
        public var t: Int
        /// Calls in Stasis at that second (placed and not yet hung up).
        public var calls: Int
        public var toAIp50: Double
        public var toAIp99: Double
        public var toAImax: Double
        public var toCallerP50: Double
        public var toCallerP99: Double
        public var toCallerMax: Double
    }

    public struct CallIssue: Codable, Sendable {
        public var index: Int
        public var channelId: String
        public var packetsSent: Int
        public var aiFrames: Int
        public var lostToAI: Int
        public var unidentifiedAtAI: Int
        public var answers: Int
        public var packetsHeard: Int
        public var lostToCaller: Int
        public var renumbered: Int
        public var anomalies: [String]
    }

    public struct Check: Codable, Sendable {
        public var name: String
        public var daemon: Int
        public var simulator: Int
        public var agree: Bool
        public var note: String
    }

    public struct Target: Codable, Sendable {
        public var name: String
        public var target: String
        public var value: String
        public var met: Bool
    }

    public var version = 1
    public var date: String
    public var machine: Machine
    public var parameters: Parameters
    public var calls: Calls
    public var toAI: ToAI
    public var toCaller: ToCaller
    public var pacing: Pacing
    public var setup: Setup
    public var daemon: Daemon
    public var simulator: Simulator
    /// Per second of the run (from the first call): latency both ways, to see when it moved.
    public var timeline: [Second]
    /// Calls with anything unusual (loss, unidentified frames, not sustained), at most 50.
    public var callsWithIssues: [CallIssue]
    public var daemonCounters: [String: [String: Int]]

    /// The daemon's pacer counters over the run (`rtp_pacer_*`, from before the calls to after):
    /// how late the daemon itself wrote packets, which tells its stalls from the simulator's.
    public var daemonPacer: (sent: Int, late2ms: Int, late10ms: Int, skippedSlots: Int)? {
        guard let before = daemonCounters["beforeCalls"], let after = daemonCounters["afterCalls"],
              let late2 = after["rtp_pacer_late_2ms"] else { return nil }
        func delta(_ name: String) -> Int { (after[name] ?? 0) - (before[name] ?? 0) }
        return (delta("rtp_out_packets"), late2 - (before["rtp_pacer_late_2ms"] ?? 0), delta("rtp_pacer_late_10ms"), delta("rtp_pacer_skipped_slots"))
    }
    public var agreement: [Check]
    public var targets: [Target]
    public var allTargetsMet: Bool
    /// The simulator's own RTP sends paused longer than `LoadBenchmark.simulatorStallMs`: the run
    /// measured the instrument, not the bridge (nil in runs from before this was recorded).
    public var simulatorStalled: Bool?
    public var notes: [String]
}

extension LoadResult {
    public static func fmt(_ v: Double, _ digits: Int = 1) -> String {
        guard v.isFinite else { return "\(v)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (v * scale).rounded() / scale
        var s = "\(r)"
        if digits == 0, s.hasSuffix(".0") { s.removeLast(2) }
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
        }
        return s
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s : s + String(repeating: " ", count: n - s.count)
    }

    /// A human-readable summary (what `foneai-sim load` prints).
    public var summary: String {
        let f = Self.fmt
        var lines: [String] = []
        lines.append("foneai-sim load: \(parameters.calls) calls at \(f(parameters.rate, 1))/s, all up for \(f(calls.concurrentSeconds, 1)) s; \(machine.cores) cores (\(machine.cpuModel)), load \(f(machine.loadAverageBefore, 2)) → \(f(machine.loadAverageAfter, 2)); CPUs: daemon \(machine.daemonCPUs ?? "?"), simulator \(machine.simulatorCPUs ?? "?")\(machine.simulatorRealtimePriority.map { " (real-time priority \($0))" } ?? machine.simulatorNiceness.map { " (nice \($0))" } ?? ""); \(date)")
        lines.append("")
        func row(_ a: String, _ b: String) { lines.append(Self.pad(a, 34) + b) }
        func spread(_ p: Percentiles) -> String { "p1 \(f(p.p1, 2)) p50 \(f(p.p50, 2)) p99 \(f(p.p99, 2)) max \(f(p.max, 2)) ms" }
        row("calls sustained", "\(calls.sustained)/\(calls.placed) (bridged \(calls.bridged), AI sessions \(calls.aiSessions)\(calls.excludedPortCollisions > 0 ? ", \(calls.excludedPortCollisions) not measured: simulator port collision" : ""))")
        row("lost caller → AI", "\(toAI.lost) of \(toAI.packetsInWindow) packets (dup \(toAI.duplicates), unidentified \(toAI.unidentified))")
        row("lost AI → caller", "\(toCaller.lost) of \(toCaller.framesInWindow) frames (dup \(toCaller.duplicates), silent \(toCaller.silentPackets), misaligned \(toCaller.misalignedPackets), unreadable \(toCaller.unreadablePackets) of \(toCaller.packetsHeard) heard)")
        row("pacing interval", "\(spread(pacing.intervalMs)); |dev| p99 \(f(pacing.absDeviationMs.p99, 2)) max \(f(pacing.absDeviationMs.max, 2)) ms")
        row("  (simulator's own sends)", spread(pacing.simulatorSendIntervalMs))
        if let answers = pacing.aiAnswerIntervalMs {
            row("  (the AI's answers, as sent)", spread(answers))
        }
        row("latency RTP in → AI", "p50 \(f(toAI.latencyMs.p50, 2)) p99 \(f(toAI.latencyMs.p99, 2)) max \(f(toAI.latencyMs.max, 2)) ms")
        row("latency AI → RTP out", "p50 \(f(toCaller.latencyMs.p50, 2)) p99 \(f(toCaller.latencyMs.p99, 2)) max \(f(toCaller.latencyMs.max, 2)) ms")
        row("  above each call's floor", "p50 \(f(toCaller.latencyAboveCallFloorMs.p50, 2)) p99 \(f(toCaller.latencyAboveCallFloorMs.p99, 2)) ms (floor p50 \(f(toCaller.callFloorMs.p50, 2)), range \(f(toCaller.callFloorMs.min, 2))–\(f(toCaller.callFloorMs.max, 2)) ms)")
        row("setup StasisStart → bridged", "p50 \(f(setup.bridgedMs.p50, 1)) p99 \(f(setup.bridgedMs.p99, 1)) max \(f(setup.bridgedMs.max, 1)) ms")
        row("setup StasisStart → audio at AI", "p50 \(f(setup.firstAudioAtAIMs.p50, 1)) p99 \(f(setup.firstAudioAtAIMs.p99, 1)) ms")
        row("daemon CPU", "\(f(daemon.cores * 100, 1)) % of one core (user \(f(daemon.userSeconds, 1)) s, system \(f(daemon.systemSeconds, 1)) s); \(f(daemon.cpuSecondsPerCallMinute, 3)) s per call-minute")
        row("daemon RSS", "idle \(daemon.rssIdleKB) KB, loaded \(daemon.rssLoadedKB) KB (peak \(daemon.rssPeakKB)); \(f(daemon.rssPerCallKB, 1)) KB per call; \(daemon.threads) threads")
        row("daemon context switches", "\(f(daemon.voluntarySwitchesPerSecond ?? 0, 0))/s voluntary, \(f(daemon.involuntarySwitchesPerSecond ?? 0, 0))/s involuntary")
        if let pacer = daemonPacer {
            row("daemon pacer (its own clock)", "\(pacer.late2ms) of \(pacer.sent) packets sent ≥ 2 ms after their slot, \(pacer.late10ms) ≥ 10 ms; \(pacer.skippedSlots) slots skipped after stalls")
        }
        row("daemon stop (SIGTERM)", "exit \(daemon.exitStatus.map(String.init) ?? "killed") after \(f(daemon.stopSeconds, 2)) s")
        row("  busiest daemon threads", daemon.threadLoad.prefix(4).map { "\($0.thread) \(f($0.cores * 100, 0)) %" }.joined(separator: ", "))
        row("simulator CPU", "\(f(simulator.cores * 100, 1)) % of one core; late send ticks \(simulator.lateSends); refused sends \(simulator.sendErrors.map(String.init) ?? "not counted")")
        if let delay = simulator.readDelayMs {
            row("  its own read delay", "p50 \(f(delay.p50, 2)) p99 \(f(delay.p99, 2)) max \(f(delay.max, 2)) ms (kernel arrival → its event loop; RTP in → AI includes such a delay)")
        }
        row("  busiest simulator threads", simulator.threadLoad.prefix(4).map { "\($0.thread) \(f($0.cores * 100, 0)) %" }.joined(separator: ", "))
        lines.append("")
        lines.append("daemon counters vs simulator:")
        for c in agreement {
            lines.append("  \(c.agree ? "agree   " : "DISAGREE") \(c.name): daemon \(c.daemon), simulator \(c.simulator)\(c.note.isEmpty ? "" : " — " + c.note)")
        }
        lines.append("")
        lines.append("targets (issue 7):")
        for t in targets {
            lines.append("  \(t.met ? "met    " : "NOT MET") \(Self.pad(t.name, 28)) \(t.value) (target \(t.target))")
        }
        if !calls.failures.isEmpty {
            lines.append("")
            lines.append("calls not sustained:")
            for f in calls.failures { lines.append("  \(f)") }
        }
        for n in notes { lines.append("note: \(n)") }
        return lines.joined(separator: "\n")
    }
}
