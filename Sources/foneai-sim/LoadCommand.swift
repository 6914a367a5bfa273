// `foneai-sim load`: the load benchmark (issue 7) — N concurrent calls through the real daemon —
// and `foneai-sim load report`, which turns the JSON of several runs into docs/benchmarks.md.
import ArgumentParser
import Dispatch
import FoneAISim
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load benchmark: N concurrent calls through the real foneai-bridge, the fake Asterisk and an echoing AI server.",
        subcommands: [LoadRunCommand.self, LoadReportCommand.self],
        defaultSubcommand: LoadRunCommand.self
    )
}

struct LoadRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "One run (the default): place --calls calls at --rate per second, keep them all up for --duration seconds, hang up, stop the daemon, print the results."
    )

    @Option(help: "Concurrent calls.") var calls: Int
    @Option(help: "Seconds all calls are up at once.") var duration: Double
    @Option(help: "New calls (and hangups) per second.") var rate = 20.0
    @Option(help: "Path of the foneai-bridge binary.") var bridge = ".build/release/foneai-bridge"
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Option(help: "Caller tone in Hz (an integer not divisible by 2 or 5).") var tone = 301.0
    @Option(name: .customLong("edge-seconds"), help: "Seconds left out at the start and end of each call.") var edgeSeconds = 1.0
    @Option(name: .customLong("log-level"), help: "Daemon log level.") var logLevel = "warning"
    @Option(name: .customLong("max-buffered-audio-ms"), help: "ai.maxBufferedAudioMs for the daemon (default: the daemon's).")
    var maxBufferedAudioMs: Int?
    @Option(name: .customLong("daemon-cpu"), help: "Run the daemon on this CPU alone (start foneai-sim under taskset to keep the simulator off it).")
    var daemonCPU: Int?
    @Option(name: .customLong("daemon-realtime-priority"), help: "media.realtimePriority for the daemon: SCHED_RR priority of its threads (0: normal scheduling).")
    var daemonRealtimePriority = 0
    @Option(name: .customLong("realtime"), help: "Run the simulator's event loop at this SCHED_FIFO priority (needs root; the daemon keeps normal scheduling). A real-time loop that cannot keep up is throttled by the kernel for 50 ms of every second.")
    var realtimePriority: Int?
    @Option(help: "Seed of the random (Poisson) call arrival times.") var seed: UInt64 = 1
    @Option(name: .customLong("times"), help: "Write each call's raw timestamps to this text file: AI echo sends; caller arrivals, each with the answer it was matched to and its RTP sequence/SSRC/timestamp; latencies.")
    var timesPath: String?
    @Flag(name: .customLong("keep-temp"), help: "Keep the daemon's temporary directory (config, log).") var keepTemp = false
    @Flag(name: .customLong("fail-on-targets"), help: "Exit 1 when a target of issue 7 is not met.") var failOnTargets = false

    func validate() throws {
        guard calls > 0 else { throw ValidationError("--calls must be at least 1") }
        guard duration > 2 * edgeSeconds else { throw ValidationError("--duration must be longer than twice --edge-seconds") }
        guard rate > 0 else { throw ValidationError("--rate must be positive") }
        guard (0...99).contains(daemonRealtimePriority) else { throw ValidationError("--daemon-realtime-priority must be 0–99") }
    }

    func run() async throws {
        LoadBenchmark.fitEventLoopsToCPUs()
        // Ctrl-C / SIGTERM: take the daemon down with us.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler {
                LoadBenchmark.currentDaemon.withLock { $0?.kill9() }
                stderrLine("foneai-sim load: interrupted")
                Glibc.exit(130)
            }
            src.resume()
            sources.append(src)
        }
        defer { sources.forEach { $0.cancel() } }

        var options = LoadOptions(calls: calls, holdSeconds: duration, rate: rate, bridgePath: bridge)
        options.toneHz = tone
        options.edgeSeconds = edgeSeconds
        options.daemonLogLevel = logLevel
        options.keepTemp = keepTemp
        options.daemonCPU = daemonCPU
        options.daemonRealtimePriority = daemonRealtimePriority
        options.maxBufferedAudioMs = maxBufferedAudioMs
        options.timesPath = timesPath
        options.seed = seed
        options.realtimePriority = realtimePriority
        let result: LoadResult
        do {
            result = try await LoadBenchmark.run(options) { stderrLine("load: \($0)") }
        } catch {
            stderrLine("foneai-sim load: \(error)")
            throw ExitCode(2)
        }
        print(result.summary)
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json))
            stderrLine("load: results written to \(json)")
        }
        if failOnTargets && !result.allTargetsMet { throw ExitCode(1) }
    }
}

struct LoadReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Combine the JSON of several runs into a Markdown table and one JSON file.",
        discussion: "The Markdown file is rewritten up to the line '\(LoadReport.marker)'; what follows that line (hand-written analysis) is kept."
    )

    @Option(help: "Markdown file to write.") var markdown = "docs/benchmarks.md"
    @Option(name: .customLong("json"), help: "Combined JSON file to write.") var jsonOut = "docs/benchmarks.json"
    @Option(help: "The command that produced the runs (shown in the report).") var command = "make bench"
    @Argument(help: "JSON files written by `foneai-sim load --json`.") var files: [String]

    func run() async throws {
        var results: [LoadResult] = []
        for f in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: f))
            results.append(try JSONDecoder().decode(LoadResult.self, from: data))
        }
        guard !results.isEmpty else { throw ValidationError("no runs given") }
        results.sort { ($0.parameters.calls, $0.parameters.seed ?? 0) < ($1.parameters.calls, $1.parameters.seed ?? 0) }
        var kept = ""
        if let old = try? String(contentsOfFile: markdown, encoding: .utf8), let r = old.range(of: LoadReport.marker) {
            kept = String(old[r.upperBound...])
        }
        let md = LoadReport.markdown(results, command: command) + LoadReport.marker + kept
        try md.write(toFile: markdown, atomically: true, encoding: .utf8)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(LoadReport.Combined(command: command, runs: results)).write(to: URL(fileURLWithPath: jsonOut))
        stderrLine("load report: \(results.count) runs → \(markdown), \(jsonOut)")
    }
}
