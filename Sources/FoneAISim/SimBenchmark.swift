#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Load benchmark of the simulator alone: N calls, each bridged to an external media channel whose
/// `external_host` is one shared in-process UDP peer (like the daemon's single RTP port); measures a
/// steady-state window.
public enum SimBenchmark {
    public struct Report: Sendable, CustomStringConvertible {
        public var calls: Int
        public var seconds: Double
        public var packetsReceived: Int
        public var packetsExpected: Int
        public var setupSeconds: Double
        /// CPU of the whole process (simulator + receiving peer) in the window, in % of one core.
        public var cpuPercent: Double
        public var gapP50Ms: Double
        public var gapP99Ms: Double
        public var gapMaxMs: Double
        public var gapsOver30Ms: Int
        public var lateSends: Int

        public var ok: Bool { packetsReceived >= packetsExpected * 95 / 100 && gapP99Ms < 30 }

        public var description: String {
            "calls=\(calls) packets=\(packetsReceived)/\(packetsExpected) setup=\(fmt(setupSeconds))s cpu=\(fmt(cpuPercent))% of a core (sim + peer) gap p50=\(fmt(gapP50Ms))ms p99=\(fmt(gapP99Ms))ms max=\(fmt(gapMaxMs))ms gaps>30ms=\(gapsOver30Ms) lateSends=\(lateSends)"
        }

        func fmt(_ v: Double) -> String { String((v * 10).rounded() / 10) }
    }

    /// CPU seconds (user + system) of this process.
    public static func processCPUSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    public static func run(calls n: Int, seconds: Double = 10, format: SimRTPFormat = .slin16) async throws -> Report {
        let sim = try await AsteriskSimulator.start(.init(externalStasisDelayMs: 1...5))
        let user = sim.username, pass = sim.password
        let ari = try await SimARIEventClient.connect(ariURL: sim.ariURL, app: sim.appName, username: user, password: pass)
        let peer = try await SimRTPPeer.bind(recordPayloads: false)
        let setupStart = simMonotonicNanos()
        for i in 0..<n {
            let call = await sim.placeCall(SimCallSpec(audio: .tone(hz: 300 + Double(i % 20) * 50, seconds: .infinity)))
            let br = try await SimHTTPClient.request("POST", sim.ariURL + "/ari/bridges?type=mixing", username: user, password: pass)
            guard let bid = br.json?["id"]?.stringValue else { throw SimHTTPClient.ClientError(description: "bridge: \(br.status)") }
            _ = try await SimHTTPClient.request(
                "POST",
                sim.ariURL + "/ari/channels/externalMedia?app=\(sim.appName)&external_host=127.0.0.1:\(peer.port)&format=\(format.rawValue)&channelId=bench-\(i)",
                username: user, password: pass)
            _ = await ari.waitForEvent("StasisStart", channel: "bench-\(i)")
            _ = try await SimHTTPClient.request(
                "POST", sim.ariURL + "/ari/bridges/\(bid)/addChannel?channel=\(call.id),bench-\(i)", username: user, password: pass)
        }
        let setupSeconds = Double(simMonotonicNanos() - setupStart) / 1e9
        try await Task.sleep(for: .seconds(1))
        let cpu0 = processCPUSeconds()
        let late0 = await sim.counters.rtpLateSends
        let t0 = simMonotonicNanos()
        try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        let t1 = simMonotonicNanos()
        let cpu = processCPUSeconds() - cpu0
        let late = await sim.counters.rtpLateSends - late0
        let pkts = peer.packets.filter { $0.arrivalNanos >= t0 && $0.arrivalNanos < t1 }
        let window = Double(t1 - t0) / 1e9
        var bySSRC: [UInt32: [UInt64]] = [:]
        for p in pkts { bySSRC[p.ssrc, default: []].append(p.arrivalNanos) }
        var gaps: [Double] = []
        for (_, times) in bySSRC {
            for (a, b) in zip(times, times.dropFirst()) { gaps.append(Double(b - a) / 1e6) }
        }
        gaps.sort()
        func pct(_ q: Double) -> Double { gaps.isEmpty ? 0 : gaps[min(gaps.count - 1, Int(Double(gaps.count) * q))] }
        await peer.close()
        await ari.close()
        await sim.stop()
        return Report(
            calls: n, seconds: window, packetsReceived: pkts.count, packetsExpected: Int(Double(n) * window * 50),
            setupSeconds: setupSeconds, cpuPercent: cpu / window * 100, gapP50Ms: pct(0.5), gapP99Ms: pct(0.99),
            gapMaxMs: gaps.last ?? 0, gapsOver30Ms: gaps.filter { $0 > 30 }.count, lateSends: late)
    }
}
