import FoundationEssentials
import NIOCore
import NIOPosix
import Synchronization
import CSimSocket

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What one load run does.
public struct LoadOptions: Sendable {
    /// Concurrent calls.
    public var calls: Int
    /// Seconds all calls are up at once.
    public var holdSeconds: Double
    /// New calls (and hangups) per second.
    public var rate: Double
    /// The `foneai-bridge` binary.
    public var bridgePath: String
    /// The callers' tone; an integer number of Hz with a 50-packet period (see `ToneFrameIndexer`).
    public var toneHz: Double = 301
    /// Seconds excluded at the start and the end of each call.
    public var edgeSeconds: Double = 1
    /// Seconds after the last call is bridged before the CPU/RSS window opens.
    public var settleSeconds: Double = 1
    /// The simulator's delay between the externalMedia answer and the channel's StasisStart
    /// (Asterisk's 422 race); small here so setup time measures the bridge, not the simulator.
    public var externalStasisDelayMs: ClosedRange<Double> = 1...5
    public var daemonLogLevel = "warning"
    /// `ai.maxBufferedAudioMs` for the daemon (nil: its default).
    public var maxBufferedAudioMs: Int?
    /// Keep the daemon's temporary directory (config, log, control socket).
    public var keepTemp = false
    /// Run the daemon on this CPU alone (nil: wherever the scheduler puts it).
    public var daemonCPU: Int?
    /// The daemon's `media.realtimePriority` (0: normal scheduling).
    public var daemonRealtimePriority = 0
    /// Run the simulator's event loop threads at this SCHED_FIFO priority (nil: normal
    /// scheduling; needs root or CAP_SYS_NICE). The daemon keeps normal scheduling.
    public var realtimePriority: Int?
    /// Seed of the random call arrival times (the same seed gives the same schedule).
    public var seed: UInt64 = 1
    /// Write each call's raw timestamps here (text, for offline analysis; nil: none).
    public var timesPath: String?

    public init(calls: Int, holdSeconds: Double, rate: Double = 20, bridgePath: String = ".build/release/foneai-bridge") {
        self.calls = calls
        self.holdSeconds = holdSeconds
        self.rate = rate
        self.bridgePath = bridgePath
    }
}

/// The load benchmark (issue 7): N concurrent calls through the real daemon, the fake Asterisk
/// and an echoing AI server in this process, with one monotonic clock for every timestamp.
public enum LoadBenchmark {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The daemon of the run in progress (for cleanup on interruption).
    public static let currentDaemon = Mutex<LoadDaemon?>(nil)

    /// Gives NIO's shared event loop group (the fake Asterisk's RTP and ARI, and the AI echo
    /// server) one thread per CPU this process may use. Under `taskset -c 0` that is one thread
    /// for everything: more threads on one CPU only preempt each other, which shows up as jitter
    /// in what is measured. Call first, before anything uses NIO.
    public static func fitEventLoopsToCPUs() {
        NIOSingletons.groupLoopCountSuggestion = max(1, Int(sim_usable_cpus()))
    }

    public static func run(_ o: LoadOptions, progress: @escaping @Sendable (String) -> Void = { _ in }) async throws -> LoadResult {
        precondition(o.calls > 0 && o.rate > 0 && o.holdSeconds > 0)
        LoadProc.raiseFileLimit()
        // Per call: the external channel's RTP socket, the daemon's AI WebSocket and ARI connections.
        guard sim_reserve_descriptors(Int32(4 * o.calls + 1024)) >= 0 else {
            throw Failure(description: "cannot reserve the file-descriptor table: errno \(errno)")
        }
        let loadBefore = LoadProc.loadAverage() ?? 0
        let indexer = ToneFrameIndexer(frequency: o.toneHz)
        guard indexer.period == 50 else {
            throw Failure(description: "--tone \(o.toneHz): choose an integer frequency not divisible by 2 or 5 (e.g. 301), so each of 50 packets has its own phase")
        }

        if let priority = o.realtimePriority {
            // The simulator is the instrument: its event loop must not wait behind other threads
            // on its CPU, or its own scheduling shows up as the bridge's jitter and latency.
            for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
                try await loop.submit {
                    guard sim_thread_realtime(Int32(priority)) == 0 else {
                        throw Failure(description: "cannot set real-time priority \(priority): errno \(errno) (needs root or CAP_SYS_NICE)")
                    }
                }.get()
            }
        }
        let sim = try await AsteriskSimulator.start(.init(externalStasisDelayMs: o.externalStasisDelayMs, logLevel: .warning))
        let tags = EchoTags()
        let ai = try await LoadEchoServer.start(group: MultiThreadedEventLoopGroup.singleton, tone: indexer, tags: tags)
        let rtpPort = try await SimPorts.freeUDPPort()
        let maxCalls = max(o.calls + 10, 500)
        let daemon: LoadDaemon
        do {
            daemon = try LoadDaemon.launch(binary: o.bridgePath, cpu: o.daemonCPU) { socket in
                """
                {"ari":{"url":"\(sim.ariURL)","username":"\(sim.username)","password":"\(sim.password)","appName":"\(sim.appName)"},
                 "rtpServer":{"port":"\(rtpPort)","format":"slin16","host":"127.0.0.1","swap16":true,"socketType":"udp4"},
                 "asterisk":{"packetTimestampIncrement":160,"rtpPayloadType":11},
                 "ai":{"serverUrl":"\(ai.url)"\(o.maxBufferedAudioMs.map { ",\"maxBufferedAudioMs\":\($0)" } ?? "")},
                 "log":{"logLevel":"\(o.daemonLogLevel)"},
                 "calls":{"maxCalls":\(maxCalls),"drainTimeoutSeconds":10},
                 "control":{"socketPath":"\(socket)"},
                 "media":{"realtimePriority":\(o.daemonRealtimePriority)}}
                """
            }
        } catch {
            await sim.stop()
            await ai.stop()
            throw error
        }
        currentDaemon.withLock { $0 = daemon }
        var cleaned = false
        func cleanup() async {
            guard !cleaned else { return }
            cleaned = true
            daemon.kill9()
            currentDaemon.withLock { $0 = nil }
            await sim.stop()
            await ai.stop()
            if !o.keepTemp { daemon.removeDirectory() }
        }
        do {
            let result = try await drive(o, sim: sim, ai: ai, daemon: daemon, indexer: indexer, tags: tags, loadBefore: loadBefore, progress: progress)
            await cleanup()
            return result
        } catch {
            let log = daemon.logTail()
            await cleanup()
            throw Failure(description: "\(error)\(log.isEmpty ? "" : "\ndaemon log (tail):\n" + log)")
        }
    }

    static func drive(_ o: LoadOptions, sim: AsteriskSimulator, ai: LoadEchoServer, daemon: LoadDaemon,
                      indexer: ToneFrameIndexer, tags: EchoTags, loadBefore: Double,
                      progress: @escaping @Sendable (String) -> Void) async throws -> LoadResult {
        progress("daemon \(o.bridgePath) pid \(daemon.pid); ARI \(sim.ariURL), AI \(ai.url)")
        guard await sim.waitForAppConnected(timeout: .seconds(20)) else {
            throw Failure(description: "the daemon did not connect to ARI within 20 s (exit status \(daemon.exitStatus.map(String.init) ?? "running"))")
        }
        // Idle baseline.
        var controlReady = false
        for _ in 0..<100 where !controlReady {
            controlReady = daemon.stats() != nil
            if !controlReady { try await Task.sleep(for: .milliseconds(50)) }
        }
        try await Task.sleep(for: .seconds(2))
        let idle = daemon.memory() ?? (0, 0)
        let statsBefore = daemon.stats() ?? [:]

        // Calls arrive at random at `rate` per second on average (a Poisson process, as telephone
        // calls do). At fixed spacing every call's 20 ms media would start in step with the
        // others' (50 ms apart at 20/s is 0 or 10 ms into their 20 ms cycle), so all calls would
        // send and receive in two bursts per cycle, which no real traffic does.
        progress("placing \(o.calls) calls at \(LoadResult.fmt(o.rate, 1))/s")
        let clock = ContinuousClock()
        var arrivals = PoissonSchedule(ratePerSecond: o.rate, seed: o.seed)
        var calls: [SimCall] = []
        calls.reserveCapacity(o.calls)
        let t0 = clock.now
        for i in 0..<o.calls {
            try await Task.sleep(until: t0 + arrivals.next(), clock: clock)
            let spec = SimCallSpec.dialplan(
                exten: "100", apiKey: "load", callerNumber: "\(5_550_000 + i)", callerName: "Load \(i)",
                audio: .tone(hz: o.toneHz, seconds: .infinity))
            let call = await sim.placeCall(spec)
            call.reserveRecording(seconds: o.holdSeconds + 2 * Double(o.calls) / o.rate + 10)
            calls.append(call)
        }
        // Every call bridged (or given up on) before the concurrent window.
        let bridgeDeadline = clock.now + .seconds(15)
        while clock.now < bridgeDeadline, calls.contains(where: { $0.mediaStartedAtNanos == nil && $0.outcome == nil }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        let bridged = calls.filter { $0.mediaStartedAtNanos != nil }.count
        // Two external channels on one RTP port would mix two calls' RTP outside the bridge (the
        // simulator once bound them with SO_REUSEADDR, which allows that). Such calls are left
        // out of the media analysis and reported.
        var callsOnPort: [Int: [Int]] = [:]
        for (i, call) in calls.enumerated() {
            if let ext = call.externalChannelID, let port = await sim.rtpPort(ofExternalChannel: ext) {
                callsOnPort[port, default: []].append(i)
            }
        }
        let collided = Set(callsOnPort.values.filter { $0.count > 1 }.flatMap { $0 })
        progress("\(bridged)/\(o.calls) calls bridged; holding \(LoadResult.fmt(o.holdSeconds, 0)) s")
        try await Task.sleep(for: .milliseconds(Int(o.settleSeconds * 1000)))

        // The concurrent window: daemon CPU and RSS, simulator CPU.
        let wStart = simMonotonicNanos()
        let timesStart = daemon.cpuTimes() ?? (0, 0)
        let cpuStart = timesStart.user + timesStart.system
        let simCPUStart = LoadProc.selfCPUSeconds()
        let daemonThreadsStart = LoadProc.threadCPU(pid: "\(daemon.pid)")
        let switchesStart = LoadProc.contextSwitches(pid: "\(daemon.pid)")
        let daemonNice = LoadProc.nice(pid: daemon.pid) ?? 0
        let daemonRealtime = LoadProc.highestRealtimePriority(pid: daemon.pid)
        let daemonCPUs = LoadProc.cpusAllowed(pid: String(daemon.pid))
        let simThreadsStart = LoadProc.threadCPU(pid: "self")
        let lateStart = await sim.counters.rtpLateSends
        var peakRSS = daemon.memory()?.rssKB ?? 0
        let holdEnd = clock.now + .milliseconds(Int(o.holdSeconds * 1000))
        while clock.now < holdEnd {
            try await Task.sleep(until: min(holdEnd, clock.now + .seconds(1)), clock: clock)
            peakRSS = max(peakRSS, daemon.memory()?.rssKB ?? 0)
        }
        let timesEnd = daemon.cpuTimes() ?? timesStart
        let cpuEnd = timesEnd.user + timesEnd.system
        let simCPUEnd = LoadProc.selfCPUSeconds()
        let daemonThreadsEnd = LoadProc.threadCPU(pid: "\(daemon.pid)")
        let switches = LoadProc.switchesBetween(switchesStart, LoadProc.contextSwitches(pid: "\(daemon.pid)"))
        let simThreadsEnd = LoadProc.threadCPU(pid: "self")
        let wEnd = simMonotonicNanos()
        let loaded = daemon.memory() ?? (0, 0)
        peakRSS = max(peakRSS, loaded.rssKB)
        let lateEnd = await sim.counters.rtpLateSends
        let statsHold = daemon.stats() ?? [:]
        let windowSeconds = Double(wEnd - wStart) / 1e9

        // Hang up at the same average rate, in arrival order.
        progress("hanging up")
        var hangupAt = [UInt64](repeating: 0, count: calls.count)
        var hangups = PoissonSchedule(ratePerSecond: o.rate, seed: o.seed &+ 1)
        let t1 = clock.now
        for (i, call) in calls.enumerated() {
            try await Task.sleep(until: t1 + hangups.next(), clock: clock)
            hangupAt[i] = simMonotonicNanos()
            await call.hangup()
        }
        // The daemon finishes its calls (StasisEnd → stop to the AI → delete channel and bridge).
        let endDeadline = clock.now + .seconds(30)
        var statsFinal = daemon.stats() ?? [:]
        while clock.now < endDeadline, (statsFinal["liveCalls"] ?? 0) > 0 {
            try await Task.sleep(for: .milliseconds(200))
            statsFinal = daemon.stats() ?? statsFinal
        }
        try await Task.sleep(for: .milliseconds(500))
        statsFinal = daemon.stats() ?? statsFinal
        let simCounters = await sim.counters
        let leakedChannels = await sim.liveChannelIDs.count
        let leakedBridges = await sim.liveBridgeIDs.count
        progress("stopping the daemon (SIGTERM)")
        let (exitStatus, stopSeconds) = await daemon.terminate()
        let loadAfter = LoadProc.loadAverage() ?? 0

        // Analysis.
        progress("analysing")
        let sessions = ai.sessions()
        var sessionOf: [String: LoadEchoSessionRecord] = [:]
        for s in sessions { if let id = s.channelId { sessionOf[id] = s } }
        let edge = UInt64(o.edgeSeconds * 1e9)

        var toAILatency: [Double] = [], toCallerLatency: [Double] = [], aboveFloor: [Double] = [], floors: [Double] = []
        var intervals: [Double] = [], simIntervals: [Double] = [], answerIntervals: [Double] = [], simReadDelays: [Double] = []
        var bridgedMs: [Double] = [], firstAudioMs: [Double] = []
        var toAIInWindow = 0, toAILost = 0, toAIDup = 0, toAIUnid = 0
        var toCallerInWindow = 0, toCallerLost = 0, toCallerDup = 0, heardTotal = 0, silent = 0, misaligned = 0, unreadable = 0
        var talkspurts = 0
        var renumbered = 0
        let runStart = calls.first?.placedAtNanos ?? 0
        let seconds = Int((Double(simMonotonicNanos() - runStart) / 1e9).rounded(.up)) + 1
        var perSecondIn = [[Double]](repeating: [], count: seconds)
        var perSecondOut = [[Double]](repeating: [], count: seconds)
        func second(_ t: UInt64) -> Int { t > runStart ? min(seconds - 1, Int((t - runStart) / 1_000_000_000)) : 0 }
        var excluded = 0
        var issues: [LoadResult.CallIssue] = []
        var sustained = 0
        var failures: [String] = []
        var windowSum = 0.0
        var aiFramesTotal = 0, aiEchoedTotal = 0
        var times = o.timesPath == nil ? nil : ""

        for (i, call) in calls.enumerated() {
            let session = sessionOf[call.id]
            aiFramesTotal += session?.arrivalNanos.count ?? 0
            aiEchoedTotal += session?.echoNanos.count ?? 0
            var problems: [String] = []
            if collided.contains(i) {
                excluded += 1
                continue
            }
            guard let mediaStart = call.mediaStartedAtNanos else {
                let vars = await call.variables()
                failures.append("call \(i) \(call.id): never bridged; outcome \(call.outcome.map { "\($0)" } ?? "none") FONEAI_STATUS=\(vars["FONEAI_STATUS"] ?? "-")")
                continue
            }
            bridgedMs.append(Double(mediaStart - call.placedAtNanos) / 1e6)
            let wS = mediaStart + edge
            let wE = hangupAt[i] > edge ? hangupAt[i] - edge : 0
            windowSum += wE > wS ? Double(wE - wS) / 1e9 : 0
            let heard = await call.heardPackets()
            let a = LoadCallAnalysis(
                windowStart: wS, windowEnd: wE, indexer: indexer, tags: tags,
                sent: await call.sentPacketNanos(),
                aiArrival: session?.arrivalNanos ?? [], aiEcho: session?.echoNanos ?? [], aiSlot: session?.toneSlot ?? [],
                heard: heard, heardSamples: await call.heardAudio())
            if times != nil {
                // Per call: the AI's echo send times, each echoed frame's latency to the caller, and each
                // caller packet's latency to the AI.
                func rel(_ t: UInt64) -> String { String(Int64(bitPattern: t &- runStart)) }
                times! += "echo \(i) " + (session?.echoNanos ?? []).map(rel).joined(separator: " ") + "\n"
                times! += "heard \(i) " + zip(heard, a.heardAnswers).map { rel($0.arrivalNanos) + ($0.marker ? "m" : "") + "#\($1)@\($0.sequenceNumber)/\($0.ssrc)/\($0.timestamp)" }.joined(separator: " ") + "\n"
                times! += "latency \(i) " + zip(a.toCallerTimes, a.toCallerLatencyMs).map { rel($0) + ":" + String($1) }.joined(separator: " ") + "\n"
                times! += "toai \(i) " + zip(a.toAITimes, a.toAILatencyMs).map { rel($0) + ":" + String($1) }.joined(separator: " ") + "\n"
            }
            if let first = a.firstAIFrameNanos { firstAudioMs.append(Double(first - call.placedAtNanos) / 1e6) }
            toAIInWindow += a.toAIInWindow
            toAILost += a.toAILost
            toAIDup += a.toAIDuplicates
            toAIUnid += a.toAIUnidentified
            toAILatency.append(contentsOf: a.toAILatencyMs)
            for (k, v) in a.toAILatencyMs.enumerated() { perSecondIn[second(a.toAITimes[k])].append(v) }
            for (k, v) in a.toCallerLatencyMs.enumerated() { perSecondOut[second(a.toCallerTimes[k])].append(v) }
            toCallerInWindow += a.toCallerInWindow
            toCallerLost += a.toCallerLost
            toCallerDup += a.toCallerDuplicates
            toCallerLatency.append(contentsOf: a.toCallerLatencyMs)
            if let floor = a.toCallerLatencyMs.min() {
                floors.append(floor)
                aboveFloor.append(contentsOf: a.toCallerLatencyMs.map { $0 - floor })
            }
            heardTotal += a.packetsHeard
            silent += a.silentPackets
            misaligned += a.misalignedPackets
            unreadable += a.unreadablePackets
            intervals.append(contentsOf: a.intervalsMs)
            simIntervals.append(contentsOf: a.simSendIntervalsMs)
            answerIntervals.append(contentsOf: a.aiAnswerIntervalsMs)
            simReadDelays.append(contentsOf: a.simReadDelaysMs)
            talkspurts += a.talkspurtStarts
            renumbered += a.renumbered

            // Sustained: in Stasis until the caller hung up, AI session open until then, audio
            // both ways in the window.
            if call.outcome != .hungUp(byCaller: true) { problems.append("outcome \(call.outcome.map { "\($0)" } ?? "none")") }
            if let ended = call.endedAtNanos, ended < hangupAt[i] { problems.append("left Stasis before the hangup") }
            if session == nil { problems.append("no AI session") }
            if let closed = session?.closedAtNanos, closed < hangupAt[i] { problems.append("AI session closed before the hangup") }
            if a.aiFramesInWindow == 0 { problems.append("no caller audio at the AI in the window") }
            if a.heardAudioInWindow == 0 { problems.append("the caller heard no echo in the window") }
            if !problems.isEmpty || a.toAILost + a.toAIUnidentified + a.toCallerLost + a.renumbered > 0 {
                issues.append(.init(index: i, channelId: call.id, packetsSent: call.rtpPacketsSent, aiFrames: session?.arrivalNanos.count ?? 0,
                                    lostToAI: a.toAILost, unidentifiedAtAI: a.toAIUnidentified, answers: session?.echoNanos.count ?? 0,
                                    packetsHeard: a.packetsHeard, lostToCaller: a.toCallerLost, renumbered: a.renumbered, anomalies: a.anomalies))
            }
            if problems.isEmpty {
                sustained += 1
            } else {
                let vars = await call.variables()
                failures.append("call \(i) \(call.id): \(problems.joined(separator: "; ")); FONEAI_STATUS=\(vars["FONEAI_STATUS"] ?? "-")")
            }
        }

        // The daemon's counters vs what the simulator saw.
        let sentTotal = simCounters.rtpPacketsSent
        var checks: [LoadResult.Check] = []
        func check(_ name: String, _ d: Int, _ s: Int, tolerance: Int = 0, _ note: String = "") {
            checks.append(.init(name: name, daemon: d, simulator: s, agree: abs(d - s) <= tolerance, note: note))
        }
        let fin = statsFinal
        check("calls started", (fin["calls_started"] ?? 0) - (statsBefore["calls_started"] ?? 0), calls.count)
        check("calls ended", (fin["calls_ended"] ?? 0) - (statsBefore["calls_ended"] ?? 0), calls.count)
        check("live calls at the end of the hold", statsHold["liveCalls"] ?? -1, calls.filter { $0.outcome == nil || ($0.endedAtNanos ?? .max) > wEnd }.count)
        check("RTP packets received on the shared socket", fin["rtp_socket_received"] ?? -1, sentTotal,
              "simulator: packets it sent; a difference is packets dropped by the kernel because the daemon's socket buffer was full")
        check("RTP packets routed to calls (+ unknown source)", (fin["rtp_in_packets"] ?? 0) + (fin["rtp_unknown_source"] ?? 0), fin["rtp_socket_received"] ?? -1,
              "daemon: packets handed to calls plus packets from an unknown source (arrived after their call's route was removed)")
        check("caller frames sent to the AI", fin["rtp_in_packets"] ?? -1, aiFramesTotal, tolerance: calls.count * 3,
              "daemon: RTP packets taken in; simulator: frames the AI received (tolerance 3 per call for audio queued when the call ended)")
        check("RTP packets sent to the callers", fin["rtp_out_packets"] ?? -1, simCounters.rtpPacketsReceived,
              "simulator: packets arriving at the external channels' sockets, \(simCounters.packetsAfterClose) of them after their channel was gone (each socket lingers 0.5 s); a difference is loss on the way back")
        check("calls failed", (fin["calls_failed"] ?? 0) - (statsBefore["calls_failed"] ?? 0), 0)
        check("AI errors", (fin["ai_errors"] ?? 0) + (fin["ai_unavailable"] ?? 0), 0)
        check("leaked channels + bridges at the end", leakedChannels + leakedBridges, 0, "simulator: live channels and bridges after all calls")

        if let path = o.timesPath, let times { try LoadFiles.write(path, times) }
        let machine = LoadProc.cpuInfo()
        var result = LoadResult(
            date: LoadBenchmark.utcNow(),
            machine: .init(cpuModel: machine.model, cores: machine.cores, memoryMB: (LoadProc.memTotalKB() ?? 0) / 1024,
                           kernel: LoadProc.kernel(), loadAverageBefore: loadBefore, loadAverageAfter: loadAfter, simulatorSharesMachine: true,
                           niceness: daemonNice, daemonCPUs: daemonCPUs, simulatorCPUs: LoadProc.cpusAllowed(pid: "self"),
                           simulatorRealtimePriority: o.realtimePriority, simulatorNiceness: LoadProc.nice(pid: getpid()),
                           daemonRealtimePriority: daemonRealtime),
            parameters: .init(calls: o.calls, rate: o.rate, holdSeconds: o.holdSeconds, toneHz: o.toneHz, edgeSeconds: o.edgeSeconds,
                              externalStasisDelayMs: [o.externalStasisDelayMs.lowerBound, o.externalStasisDelayMs.upperBound],
                              bridge: o.bridgePath, daemonLogLevel: o.daemonLogLevel, maxBufferedAudioMs: o.maxBufferedAudioMs,
                              seed: o.seed),
            calls: .init(placed: calls.count, bridged: bridged, sustained: sustained, excludedPortCollisions: excluded, aiSessions: sessions.count,
                         failures: Array(failures.prefix(20)), concurrentSeconds: windowSeconds,
                         windowSecondsPerCall: bridged > 0 ? windowSum / Double(bridged) : 0),
            toAI: .init(packetsInWindow: toAIInWindow, lost: toAILost, duplicates: toAIDup, unidentified: toAIUnid,
                        latencyMs: .of(&toAILatency)),
            toCaller: .init(framesInWindow: toCallerInWindow, lost: toCallerLost, duplicates: toCallerDup,
                            latencyMs: .of(&toCallerLatency), latencyAboveCallFloorMs: .of(&aboveFloor), callFloorMs: .of(&floors),
                            packetsHeard: heardTotal, silentPackets: silent, misalignedPackets: misaligned, unreadablePackets: unreadable),
            pacing: .init(intervalMs: .of(&intervals), absDeviationMs: .empty, talkspurtStartsExcluded: talkspurts,
                          intervalsOver22ms: intervals.filter { $0 > 22 }.count, intervalsUnder18ms: intervals.filter { $0 < 18 }.count,
                          simulatorSendIntervalMs: .of(&simIntervals), aiAnswerIntervalMs: .of(&answerIntervals)),
            setup: .init(bridgedMs: .of(&bridgedMs), firstAudioAtAIMs: .of(&firstAudioMs)),
            daemon: .init(windowSeconds: windowSeconds, cpuSeconds: cpuEnd - cpuStart, cores: (cpuEnd - cpuStart) / windowSeconds,
                          userSeconds: timesEnd.user - timesStart.user, systemSeconds: timesEnd.system - timesStart.system,
                          cpuSecondsPerCallMinute: (cpuEnd - cpuStart) / (Double(max(1, bridged)) * windowSeconds / 60),
                          rssIdleKB: idle.rssKB, rssLoadedKB: loaded.rssKB, rssPeakKB: peakRSS,
                          rssPerCallKB: Double(loaded.rssKB - idle.rssKB) / Double(max(1, bridged)), threads: loaded.threads,
                          exitStatus: exitStatus.map(Int.init), stopSeconds: stopSeconds,
                          threadLoad: LoadProc.threadLoad(daemonThreadsStart, daemonThreadsEnd, seconds: windowSeconds),
                          voluntarySwitchesPerSecond: Double(switches.voluntary) / windowSeconds,
                          involuntarySwitchesPerSecond: Double(switches.involuntary) / windowSeconds),
            simulator: .init(cores: (simCPUEnd - simCPUStart) / windowSeconds, lateSends: lateEnd - lateStart,
                             rtpSent: simCounters.rtpPacketsSent, rtpReceived: simCounters.rtpPacketsReceived,
                             sendErrors: simCounters.rtpSendErrors, readDelayMs: .of(&simReadDelays),
                             threadLoad: LoadProc.threadLoad(simThreadsStart, simThreadsEnd, seconds: windowSeconds)),
            timeline: (0..<seconds).compactMap { sec -> LoadResult.Second? in
                guard !perSecondIn[sec].isEmpty || !perSecondOut[sec].isEmpty else { return nil }
                let t = runStart + UInt64(sec) * 1_000_000_000
                let live = calls.indices.filter { calls[$0].placedAtNanos <= t && (hangupAt[$0] == 0 || hangupAt[$0] > t) }.count
                let a = LoadResult.Percentiles.of(&perSecondIn[sec]), b = LoadResult.Percentiles.of(&perSecondOut[sec])
                return .init(t: sec, calls: live, toAIp50: a.p50, toAIp99: a.p99, toAImax: a.max, toCallerP50: b.p50, toCallerP99: b.p99, toCallerMax: b.max)
            },
            callsWithIssues: Array(issues.sorted { ($0.lostToAI + $0.unidentifiedAtAI + $0.lostToCaller + $0.renumbered) > ($1.lostToAI + $1.unidentifiedAtAI + $1.lostToCaller + $1.renumbered) }.prefix(50)),
            daemonCounters: ["beforeCalls": statsBefore, "endOfHold": statsHold, "afterCalls": statsFinal],
            agreement: checks, targets: [], allTargetsMet: false, notes: [])
        var deviations = intervals.map { abs($0 - 20) }
        result.pacing.absDeviationMs = .of(&deviations)
        result.targets = targets(result)
        result.allTargetsMet = result.targets.allSatisfy(\.met)
        if result.simulator.lateSends > 0 {
            result.notes.append("the simulator itself ran late (\(result.simulator.lateSends) send ticks > 40 ms late): its numbers include its own overload")
        }
        if let refused = result.simulator.sendErrors, refused > 0 {
            result.notes.append("the simulator's kernel refused \(refused) of its RTP sends: they count as lost caller → AI, yet never reached the bridge")
        }
        let simulatorPause = result.pacing.simulatorSendIntervalMs.max
        let stalled = simulatorPause > simulatorStallMs
        result.simulatorStalled = stalled
        if stalled {
            result.notes.append("the simulator stalled: its own RTP sends paused \(LoadResult.fmt(simulatorPause, 0)) ms (normally under 70), and the calls up then carry that pause in their audio to the end; this run measures the instrument, not the bridge")
        }
        if excluded > 0 {
            result.notes.append("\(excluded) calls left out of the media figures: the simulator gave their external channels the same RTP port, which mixes their audio outside the bridge")
        }
        if renumbered > 0 {
            result.notes.append("\(renumbered) frames/packets were renumbered by causality after long loss bursts: loss and latency figures are approximate")
        }
        if exitStatus != 0 { result.notes.append("the daemon did not exit 0 after SIGTERM") }
        return result
    }

    /// A pause in the simulator's own RTP sends longer than this is the instrument stalling (its
    /// event loop did not run), not anything the bridge did; `make bench` runs such a row again.
    public static let simulatorStallMs = 200.0

    static func targets(_ r: LoadResult) -> [LoadResult.Target] {
        let f = LoadResult.fmt
        let lost = r.toAI.lost + r.toCaller.lost
        return [
            .init(name: "calls sustained", target: "all",
                  value: "\(r.calls.sustained)/\(r.parameters.calls - r.calls.excludedPortCollisions)",
                  met: r.calls.sustained == r.parameters.calls - r.calls.excludedPortCollisions),
            .init(name: "packets lost in the bridge", target: "0", value: "\(r.toAI.lost) + \(r.toCaller.lost)", met: lost == 0 && r.toAI.packetsInWindow > 0),
            .init(name: "pacing p1/p99 interval", target: "18–22 ms", value: "\(f(r.pacing.intervalMs.p1, 2))/\(f(r.pacing.intervalMs.p99, 2)) ms",
                  met: r.pacing.intervalMs.count > 0 && r.pacing.intervalMs.p1 >= 18 && r.pacing.intervalMs.p99 <= 22),
            .init(name: "latency RTP in → AI p99", target: "< 5 ms", value: "\(f(r.toAI.latencyMs.p99, 2)) ms", met: r.toAI.latencyMs.count > 0 && r.toAI.latencyMs.p99 < 5),
            .init(name: "latency AI → RTP out p99", target: "< 5 ms", value: "\(f(r.toCaller.latencyMs.p99, 2)) ms", met: r.toCaller.latencyMs.count > 0 && r.toCaller.latencyMs.p99 < 5),
            .init(name: "setup p99 (→ bridged)", target: "< 50 ms", value: "\(f(r.setup.bridgedMs.p99, 1)) ms", met: r.setup.bridgedMs.count > 0 && r.setup.bridgedMs.p99 < 50),
            .init(name: "RSS per call", target: "< 200 KB", value: "\(f(r.daemon.rssPerCallKB, 1)) KB", met: r.daemon.rssPerCallKB < 200),
            .init(name: "daemon CPU", target: "≤ 1 core", value: "\(f(r.daemon.cores, 2)) cores", met: r.daemon.cores <= 1),
        ]
    }

    /// "2026-11-27T06:40:12Z"
    static func utcNow() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let secs = Int64(ts.tv_sec)
        let (y, m, d) = SimTime.civilFromDays(secs / 86400)
        let rem = Int(secs % 86400)
        return "\(SimTime.pad(y, 4))-\(SimTime.pad(m, 2))-\(SimTime.pad(d, 2))T\(SimTime.pad(rem / 3600, 2)):\(SimTime.pad(rem % 3600 / 60, 2)):\(SimTime.pad(rem % 60, 2))Z"
    }
}

/// The times of a Poisson process: exponentially distributed gaps with mean 1/rate, from a seeded
/// generator (SplitMix64) so a run's schedule can be repeated. The first event is at zero.
struct PoissonSchedule {
    let meanGapNanos: Double
    var state: UInt64
    var elapsed: Duration = .zero
    var started = false

    init(ratePerSecond: Double, seed: UInt64) {
        meanGapNanos = 1e9 / ratePerSecond
        state = seed
    }

    /// The next event's time from the start.
    mutating func next() -> Duration {
        if started {
            elapsed += .nanoseconds(Int64(-meanGapNanos * log(1 - uniform())))
        }
        started = true
        return elapsed
    }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1p-53
    }
}
