// foneai-sim: a fake Asterisk (ARI + externalMedia RTP) and an AI WebSocket test server, for
// trying foneai-bridge without a PBX or an AI. Thin CLI over the FoneAISim library.
import ArgumentParser
import Dispatch
import FoneAISim

#if canImport(Glibc)
import Glibc
#endif

// MARK: - helpers

/// Unbuffered print (stdout may be a pipe or a file: show lines as they happen).
func print(_ items: Any..., separator: String = " ", terminator: String = "\n") {
    writeAll(1, items.map { "\($0)" }.joined(separator: separator) + terminator)
}

func stderrLine(_ s: String) {
    writeAll(2, s + "\n")
}

private func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return }
        bytes = bytes.dropFirst(n)
    }
}

/// Catches SIGINT and SIGTERM from the moment it is created; `wait()` returns the first one.
final class TerminationSignals: @unchecked Sendable {
    private let stream: AsyncStream<Int32>
    private var sources: [any DispatchSourceSignal] = []

    init() {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let (stream, cont) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        for sig in [SIGINT, SIGTERM] {
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { cont.yield(sig) }
            src.resume()
            sources.append(src)
        }
    }

    func wait() async -> Int32 {
        var it = stream.makeAsyncIterator()
        return await it.next() ?? SIGTERM
    }
}

func fmt(_ v: Double, _ digits: Int = 0) -> String {
    LoadResult.fmt(v, digits)
}

func pad(_ s: String, _ n: Int) -> String {
    s.count >= n ? String(s.prefix(n)) : s + String(repeating: " ", count: n - s.count)
}

func describeVars(_ vars: [String: String]) -> String {
    vars.keys.sorted().map { "\($0)=\(vars[$0]!)" }.joined(separator: " ")
}

// MARK: - root

@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
struct FoneAISimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "foneai-sim",
        abstract: "Fake Asterisk (ARI + externalMedia RTP) and AI WebSocket test server for foneai-bridge.",
        subcommands: [AsteriskCommand.self, AICommand.self, DemoCommand.self, BenchCommand.self, LoadCommand.self]
    )
}

// MARK: - asterisk

struct AsteriskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "asterisk",
        abstract: "Run only the fake Asterisk until SIGINT/SIGTERM, optionally placing calls."
    )

    @Option(help: "Listen address.") var host = "127.0.0.1"
    @Option(name: .customLong("ari-port"), help: "ARI HTTP port (0 = any).") var ariPort = 8088
    @Option(help: "ARI user.") var username = "asterisk"
    @Option(help: "ARI password.") var password = "secret"
    @Option(help: "Stasis application name.") var app = "foneai"
    @Option(help: "Number of calls to place (0 = none).") var calls = 0
    @Option(name: .customLong("call-interval"), help: "Seconds between calls.") var callInterval = 1.0
    @Option(help: "Caller tone frequency in Hz (each call adds --tone-step).") var tone = 440.0
    @Option(name: .customLong("tone-step"), help: "Hz added per call.") var toneStep = 0.0
    @Option(name: .customLong("call-seconds"), help: "The caller hangs up after this many seconds unless the bridge ends the call first.")
    var callSeconds = 10.0
    @Option(help: "Dialled extension (also the campaign variable).") var exten = "100"
    @Option(name: .customLong("api-key"), help: "apiKey channel variable.") var apiKey = "API_KEY"
    @Option(name: .customLong("wait-app"), help: "Seconds to wait for the ARI app to connect before placing calls.")
    var waitApp = 30.0
    @Flag(name: .customLong("exit-after-calls"), help: "Exit once every placed call has ended.") var exitAfterCalls = false

    func run() async throws {
        let signals = TerminationSignals()
        let sim = try await AsteriskSimulator.start(
            .init(host: host, ariPort: ariPort, username: username, password: password, appName: app))
        print("fake Asterisk: ARI \(sim.ariURL) user=\(username) app=\(app)")
        let signalTask = Task { await signals.wait() }
        let callsTask = Task {
            guard calls > 0 else { return }
            if await !sim.waitForAppConnected(timeout: .seconds(waitApp)) {
                print("no ARI application '\(app)' connected after \(waitApp) s: calls will fail Stasis")
            }
            await withTaskGroup(of: Void.self) { group in
                for i in 0..<calls {
                    if Task.isCancelled { break }
                    let hz = tone + Double(i) * toneStep
                    let spec = SimCallSpec.dialplan(
                        exten: exten, apiKey: apiKey, callerNumber: "\(5_550_000 + i)", callerName: "Sim \(i + 1)",
                        audio: .tone(hz: hz, seconds: .infinity), hangupAfter: .milliseconds(Int(callSeconds * 1000)))
                    let call = await sim.placeCall(spec)
                    print("call \(i + 1) \(call.id): placed, tone \(fmt(hz)) Hz")
                    group.addTask {
                        let outcome = await call.waitForEnd(timeout: .seconds(callSeconds + 3600))
                        let heard = await call.heardAudio()
                        let vars = await call.variables()
                        let f = ToneAnalysis.dominantFrequency(heard, sampleRate: 8000)
                        print(
                            "call \(i + 1) \(call.id): \(outcome.map { "\($0)" } ?? "timeout"); sent \(call.rtpPacketsSent) pkts; heard \(fmt(Double(heard.count) / 8000, 2)) s at \(fmt(f)) Hz; vars: \(describeVars(vars))"
                        )
                    }
                    if i < calls - 1 { try? await Task.sleep(for: .milliseconds(Int(callInterval * 1000))) }
                }
            }
            let live = await sim.liveChannelIDs
            let bridges = await sim.liveBridgeIDs
            print("all calls ended; live channels: \(live.count) \(live), live bridges: \(bridges.count) \(bridges)")
        }
        // Ends on a signal, or (with --exit-after-calls) once the calls are done.
        let (done, doneCont) = AsyncStream<Void>.makeStream()
        Task {
            _ = await signalTask.value
            doneCont.yield()
        }
        if exitAfterCalls && calls > 0 {
            Task {
                await callsTask.value
                doneCont.yield()
            }
        }
        var it = done.makeAsyncIterator()
        _ = await it.next()
        callsTask.cancel()
        print("counters: \(await sim.counters)")
        await sim.stop()
    }
}

// MARK: - ai

struct AICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ai",
        abstract: "Run only the AI WebSocket test server until SIGINT/SIGTERM."
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case echo, tone, silent
        case scriptEnd = "script-end"
    }

    @Option(help: "Listen address.") var host = "127.0.0.1"
    @Option(help: "Port (0 = any).") var port = 9000
    @Option(help: "WebSocket path.") var path = "/stream"
    @Option(help: "echo | tone | silent | script-end") var mode: Mode = .echo
    @Option(name: .customLong("tone-hz"), help: "Tone frequency for tone / script-end.") var toneHz = 600.0
    @Option(name: .customLong("sample-rate"), help: "Rate of the AI audio for tone / script-end.") var sampleRate = 16000
    @Option(name: .customLong("seconds"), help: "Tone length (tone: 0 = forever; script-end: before end).") var seconds = 2.0

    func run() async throws {
        let signals = TerminationSignals()
        let aiMode: AITestMode
        switch mode {
        case .echo: aiMode = .echo
        case .silent: aiMode = .silent
        case .tone: aiMode = .tone(hz: toneHz, sampleRate: sampleRate, seconds: seconds > 0 ? seconds : nil)
        case .scriptEnd:
            let (hz, secs, rate) = (toneHz, seconds, sampleRate)
            aiMode = .perCall { start in
                .script([
                    .waitForAudio(minFrames: 1, timeout: .seconds(5)),
                    .sendTone(hz: hz, seconds: secs, sampleRate: rate),
                    .wait(.milliseconds(200)),
                    .end(sessionId: "sim-\(start.callId ?? String(Int.random(in: 1000...9999)))", variables: ["intent": "demo"]),
                ])
            }
        }
        let ai = try await AITestServer.start(host: host, port: port, path: path, mode: aiMode)
        print("AI test server: \(ai.url) mode=\(mode.rawValue)")
        let reporter = SessionReporter()
        let reporterTask = Task {
            while !Task.isCancelled {
                await reporter.report(ai)
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        _ = await signals.wait()
        reporterTask.cancel()
        await reporter.report(ai)
        await ai.stop()
    }
}

/// Prints each AI session once when it starts and once when it closes.
actor SessionReporter {
    var reported = Set<Int>()
    var announced = Set<Int>()

    func report(_ ai: AITestServer) async {
        for s in await ai.sessions() {
            if !announced.contains(s.index), let start = s.start {
                announced.insert(s.index)
                print("session \(s.index): start callId=\(start.callId ?? "-") channel=\(start.channelId ?? "-") caller=\(start.callerNumber ?? "-") campaign=\(start.campaign ?? "null") rate=\(start.sampleRate ?? 0)")
            }
            if s.closed && !reported.contains(s.index) {
                reported.insert(s.index)
                let rate = s.start?.sampleRate ?? 16000
                let f = ToneAnalysis.dominantFrequency(s.receivedAudio, sampleRate: rate)
                print("session \(s.index): closed; stop=\(s.stopReason ?? "-"); caller audio \(fmt(s.receivedAudioSeconds, 2)) s at \(fmt(f)) Hz in \(s.binaryFrameCount) frames; dtmf=\(s.dtmfDigits) marks=\(s.marksEchoed) malformed=\(s.malformedMessages)")
            }
        }
    }
}

// MARK: - bench

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test the simulator alone: N calls streaming to one in-process UDP peer."
    )

    @Option(help: "Concurrent calls (comma-separated list to run several).") var calls = "50,200,500"
    @Option(help: "Seconds of steady state measured per run.") var seconds = 10.0
    @Option(help: "slin16 | slin | ulaw | alaw") var format = "slin16"

    func run() async throws {
        guard let fmt = SimRTPFormat(rawValue: format) else { throw ValidationError("unknown format \(format)") }
        var allOK = true
        for n in calls.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
            let report = try await SimBenchmark.run(calls: n, seconds: seconds, format: fmt)
            print("\(report.ok ? "OK  " : "SLOW") \(report)")
            allOK = allOK && report.ok
        }
        if !allOK { throw ExitCode(1) }
    }
}

// MARK: - demo

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run foneai-bridge between the fake Asterisk and the AI test server, place calls, check the results."
    )

    @Option(help: "Path of the foneai-bridge binary.") var bridge: String
    @Option(help: "Number of calls.") var calls = 5
    @Option(name: .customLong("call-seconds"), help: "Longest a caller stays before hanging up.") var callSeconds = 8.0
    @Option(name: .customLong("call-interval"), help: "Seconds between calls.") var callInterval = 0.3
    @Option(name: .customLong("log-level"), help: "Daemon log level.") var logLevel = "info"
    @Flag(name: .customLong("quiet-bridge"), help: "Do not show the daemon's output.") var quietBridge = false
    @Flag(name: .customLong("keep-temp"), help: "Keep the temporary directory.") var keepTemp = false

    /// What happens in a demo call.
    enum Plan: String, CaseIterable {
        case end  // AI talks, then end(sessionId)
        case callerHangup = "caller-hangup"  // caller hangs up while the AI talks
        case transfer  // AI talks, then transfer(jump)
        case echoEnd = "echo-end"  // AI echoes the caller for a while, then end
        case aiHangup = "ai-hangup"  // AI talks, then hangup
    }

    struct DemoCall {
        let index: Int
        let plan: Plan
        let callerHz: Double
        let aiHz: Double
        let callerNumber: String
        let call: SimCall
    }

    static func plan(for index: Int) -> Plan { Plan.allCases[index % Plan.allCases.count] }
    static let callerTones: [Double] = [300, 440, 600, 750, 900, 1100, 350, 500, 650, 800]
    /// The AI answers with its own tone, so what the caller hears can be told apart from an echo.
    static func aiTone(for index: Int) -> Double { 1500 + Double(index % 7) * 100 }

    func run() async throws {
        guard access(bridge, X_OK) == 0 else {
            stderrLine("foneai-sim demo: \(bridge) is not an executable file")
            throw ExitCode(2)
        }
        let username = "asterisk", password = "secret", app = "foneai"
        let sim = try await AsteriskSimulator.start(.init(username: username, password: password, appName: app))

        // The AI behaves according to the caller number "10<index>".
        let ai = try await AITestServer.start(mode: .perCall { start in
            let idx = Int((start.callerNumber ?? "").dropFirst(2)) ?? 0
            let aiHz = DemoCommand.aiTone(for: idx)
            switch DemoCommand.plan(for: idx) {
            case .end:
                return .script([
                    .waitForAudio(minFrames: 5),
                    .sendTone(hz: aiHz, seconds: 1.5, sampleRate: 16000),
                    .sendMark("done"),
                    .waitForMark("done", timeout: .seconds(5)),
                    .end(sessionId: "s-\(idx)", variables: ["intent": "demo"]),
                ])
            case .callerHangup:
                return .tone(hz: aiHz, sampleRate: 24000, seconds: nil)
            case .transfer:
                return .script([
                    .waitForAudio(minFrames: 5),
                    .sendTone(hz: aiHz, seconds: 1.0, sampleRate: 8000, chunkMs: 100, paced: true),
                    .transfer(context: "support", extension: "200", priority: 1, jump: true, sessionId: "t-\(idx)"),
                ])
            case .echoEnd:
                return .script([
                    .echo(true),
                    .waitForAudio(minFrames: 50, timeout: .seconds(5)),
                    .wait(.milliseconds(500)),
                    .echo(false),
                    .wait(.milliseconds(300)),
                    .end(sessionId: "e-\(idx)"),
                ])
            case .aiHangup:
                return .script([
                    .waitForAudio(minFrames: 5),
                    .sendTone(hz: aiHz, seconds: 1.0, sampleRate: 16000),
                    .hangup(sessionId: "h-\(idx)"),
                ])
            }
        })

        // Config for the daemon, and the daemon (its output in a log file, followed below).
        let rtpPort = try await SimPorts.freeUDPPort()
        let daemonConfig: (String) -> String = { controlSocket in
            """
            {"ari":{"url":"\(sim.ariURL)","username":"\(username)","password":"\(password)","appName":"\(app)"},
             "rtpServer":{"port":"\(rtpPort)","format":"slin16","host":"127.0.0.1","swap16":true,"socketType":"udp4"},
             "asterisk":{"packetTimestampIncrement":160,"rtpPayloadType":11},
             "ai":{"serverUrl":"\(ai.url)"},
             "log":{"logLevel":"\(logLevel)"},
             "control":{"socketPath":"\(controlSocket)"}}
            """
        }
        let daemon = try LoadDaemon.launch(binary: bridge, config: daemonConfig)
        print("fake Asterisk \(sim.ariURL), AI \(ai.url), RTP port \(rtpPort), config \(daemon.configPath)")
        print("started \(bridge) (pid \(daemon.pid))")
        let follower = Task { [quietBridge] in
            var offset = 0
            while true {
                let (text, end) = daemon.log(from: offset)
                offset = end
                if !quietBridge {
                    for line in text.split(separator: "\n") { stderrLine("  bridge| " + line) }
                }
                if Task.isCancelled { return }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }

        var failures: [String] = []
        var demoCalls: [DemoCall] = []

        if await !sim.waitForAppConnected(timeout: .seconds(20)) {
            failures.append("the daemon did not connect to ARI within 20 s")
        } else {
            // Place the calls.
            for i in 0..<calls {
                let plan = Self.plan(for: i)
                let callerHz = Self.callerTones[i % Self.callerTones.count]
                let aiHz = plan == .echoEnd ? callerHz : Self.aiTone(for: i)
                let number = "10\(i)"
                let hangupAfter: Duration = .milliseconds(Int(callSeconds * 1000))
                let audio: SimAudio = plan == .echoEnd ? .tone(hz: callerHz, seconds: 2) : .tone(hz: callerHz, seconds: .infinity)
                let spec = SimCallSpec(
                    exten: "100", callerNumber: number, callerName: "Demo \(i)",
                    variables: ["campaign": "100", "apiKey": "k-demo", "custom": #"{"plan":"\#(plan.rawValue)"}"#],
                    audio: audio, hangupAfter: hangupAfter,
                    hangupAfterMedia: plan == .callerHangup ? .seconds(2) : nil)
                let call = await sim.placeCall(spec)
                demoCalls.append(DemoCall(index: i, plan: plan, callerHz: callerHz, aiHz: aiHz, callerNumber: number, call: call))
                try? await Task.sleep(for: .milliseconds(Int(callInterval * 1000)))
            }
            // Live table until every call has ended (or a deadline).
            let deadline = ContinuousClock.now + .seconds(callSeconds + 20)
            while ContinuousClock.now < deadline {
                let sessions = await ai.sessions()
                await printTable(demoCalls, sessions: sessions, sim: sim)
                if demoCalls.allSatisfy({ $0.call.outcome != nil }) { break }
                try? await Task.sleep(for: .seconds(1))
            }
            // Give the daemon a moment to clean up what it created.
            let cleanDeadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < cleanDeadline {
                let chans = await sim.liveChannelIDs
                let bridges = await sim.liveBridgeIDs
                if chans.isEmpty && bridges.isEmpty { break }
                try? await Task.sleep(for: .milliseconds(200))
            }
            failures += await verify(demoCalls, ai: ai, sim: sim)
        }

        // Stop the daemon with SIGTERM.
        if let early = daemon.exitStatus {
            failures.append("the daemon exited early with status \(early)")
        } else {
            let status = await daemon.terminate(timeout: .seconds(15)).status
            if status == nil {
                failures.append("the daemon did not exit within 15 s of SIGTERM (killed)")
            } else if status != 0 {
                failures.append("the daemon exited with status \(status ?? -1) after SIGTERM")
            } else {
                print("daemon exited 0 after SIGTERM")
            }
        }
        follower.cancel()
        await follower.value

        print("counters: \(await sim.counters)")
        for s in await sim.strictRTPDropSources.prefix(5) { print("strict RTP drop: \(s)") }
        await sim.stop()
        await ai.stop()
        if !keepTemp { daemon.removeDirectory() }

        if failures.isEmpty {
            print("DEMO PASSED: \(demoCalls.count) calls ended as expected, nothing leaked.")
        } else {
            print("DEMO FAILED:")
            for f in failures { print("  - \(f)") }
            throw ExitCode(1)
        }
    }

    func sessionFor(_ c: DemoCall, _ sessions: [AISessionRecord]) -> AISessionRecord? {
        sessions.first { $0.start?.channelId == c.call.id }
    }

    func printTable(_ calls: [DemoCall], sessions: [AISessionRecord], sim: AsteriskSimulator) async {
        print("")
        print("\(pad("call", 5)) \(pad("plan", 14)) \(pad("state", 9)) \(pad("to bridge", 9)) \(pad("heard", 7)) \(pad("AI session", 22)) outcome")
        for c in calls {
            let outcome = c.call.outcome
            let state: String
            if outcome != nil {
                state = "ended"
            } else if c.call.mediaStartedAtNanos != nil {
                state = "bridged"
            } else {
                state = "stasis"
            }
            var aiText = "-"
            if let s = sessionFor(c, sessions) {
                aiText = "#\(s.index) \(s.closed ? "closed" : "open")\(s.stopReason.map { " " + $0 } ?? "")"
            }
            print(
                "\(pad(String(c.index + 1), 5)) \(pad(c.plan.rawValue, 14)) \(pad(state, 9)) \(pad(String(c.call.rtpPacketsSent), 9)) \(pad(String(c.call.rtpPacketsHeard), 7)) \(pad(aiText, 22)) \(outcome.map { "\($0)" } ?? "")"
            )
        }
        let chans = await sim.liveChannelIDs.count
        let bridges = await sim.liveBridgeIDs.count
        print("live channels: \(chans), live bridges: \(bridges)")
    }

    func verify(_ calls: [DemoCall], ai: AITestServer, sim: AsteriskSimulator) async -> [String] {
        var failures: [String] = []
        let sessions = await ai.sessions()
        print("")
        print("SUMMARY")
        for c in calls {
            var problems: [String] = []
            let outcome = c.call.outcome
            let vars = await c.call.variables()
            let heard = await c.call.heardAudio()
            let heardHz = ToneAnalysis.dominantFrequency(heard, sampleRate: 8000)
            let session = sessionFor(c, sessions)
            let aiRate = session?.start?.sampleRate ?? 16000
            let aiHeardHz = ToneAnalysis.dominantFrequency(session?.receivedAudio ?? [], sampleRate: aiRate)

            switch c.plan {
            case .end, .echoEnd:
                if outcome != .continued(context: "foneai-in", exten: "100", priority: 6) { problems.append("outcome \(outcome.map { "\($0)" } ?? "none"), expected continued(foneai-in,100,6)") }
                let sid = c.plan == .end ? "s-\(c.index)" : "e-\(c.index)"
                if vars["sessionId"] != sid { problems.append("sessionId=\(vars["sessionId"] ?? "unset"), expected \(sid)") }
                if vars["FONEAI_STATUS"] != "completed" { problems.append("FONEAI_STATUS=\(vars["FONEAI_STATUS"] ?? "unset"), expected completed") }
            case .transfer:
                if outcome != .continued(context: "support", exten: "200", priority: 1) { problems.append("outcome \(outcome.map { "\($0)" } ?? "none"), expected continued(support,200,1)") }
                if vars["FONEAI_STATUS"] != "transfer" { problems.append("FONEAI_STATUS=\(vars["FONEAI_STATUS"] ?? "unset"), expected transfer") }
                if vars["transferContext"] != "support" { problems.append("transferContext=\(vars["transferContext"] ?? "unset")") }
                if vars["sessionId"] != "t-\(c.index)" { problems.append("sessionId=\(vars["sessionId"] ?? "unset"), expected t-\(c.index)") }
            case .callerHangup:
                if outcome != .hungUp(byCaller: true) { problems.append("outcome \(outcome.map { "\($0)" } ?? "none"), expected hungUp(caller)") }
                if session?.stopReason != "caller_hangup" { problems.append("AI stop reason \(session?.stopReason ?? "none"), expected caller_hangup") }
            case .aiHangup:
                if outcome != .hungUp(byCaller: false) { problems.append("outcome \(outcome.map { "\($0)" } ?? "none"), expected hungUp(ari)") }
                if vars["sessionId"] != "h-\(c.index)" { problems.append("sessionId=\(vars["sessionId"] ?? "unset"), expected h-\(c.index)") }
            }
            if session == nil { problems.append("no AI session") }
            if session?.start?.apiKey != "k-demo" { problems.append("AI start apiKey \(session?.start?.apiKey ?? "null")") }
            if abs(aiHeardHz - c.callerHz) > 10 { problems.append("AI heard \(fmt(aiHeardHz)) Hz, caller sent \(fmt(c.callerHz)) Hz") }
            if abs(heardHz - c.aiHz) > 10 { problems.append("caller heard \(fmt(heardHz)) Hz, AI sent \(fmt(c.aiHz)) Hz") }
            let status = problems.isEmpty ? "OK  " : "FAIL"
            print(
                "\(status) call \(c.index + 1) \(pad(c.plan.rawValue, 14)) \(outcome.map { "\($0)" } ?? "no outcome"); sent \(c.call.rtpPacketsSent) pkts at \(fmt(c.callerHz)) Hz, AI heard \(fmt(session?.receivedAudioSeconds ?? 0, 2)) s at \(fmt(aiHeardHz)) Hz; caller heard \(fmt(Double(heard.count) / 8000, 2)) s at \(fmt(heardHz)) Hz; vars: \(describeVars(vars))"
            )
            if !problems.isEmpty {
                let hp = await c.call.heardPackets()
                var sizes: [String: Int] = [:]
                for p in hp { sizes["PT\(p.payloadType)/\(p.payloadBytes)B", default: 0] += 1 }
                let arrivals = hp.map(\.arrivalNanos)
                let spanS = arrivals.count > 1 ? Double(arrivals.last! - arrivals.first!) / 1e9 : 0
                print("       heard packets: \(sizes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")) over \(fmt(spanS, 2)) s")
            }
            for p in problems {
                print("       \(p)")
                failures.append("call \(c.index + 1) (\(c.plan.rawValue)): \(p)")
            }
        }
        let chans = await sim.liveChannelIDs
        let bridges = await sim.liveBridgeIDs
        if !chans.isEmpty { failures.append("leaked channels: \(chans)") }
        if !bridges.isEmpty { failures.append("leaked bridges: \(bridges)") }
        print("live channels after the calls: \(chans.count), live bridges: \(bridges.count)")
        let c = await sim.counters
        if c.droppedDynamicPayloadPackets > 0 { failures.append("\(c.droppedDynamicPayloadPackets) RTP packets with a dynamic payload type were sent to Asterisk (dropped)") }
        return failures
    }
}

/// In main.swift the synchronous `main()` would be chosen; an async generic context picks the async one.
func runAsyncCommand<C: AsyncParsableCommand>(_ command: C.Type) async {
    await command.main()
}

await runAsyncCommand(FoneAISimCommand.self)
