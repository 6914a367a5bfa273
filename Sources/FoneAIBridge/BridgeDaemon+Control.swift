import FoneAIControl
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// What `foneaictl` sees and may do.
extension BridgeDaemon: ControlHandler {
    public func status() async -> StatusInfo {
        StatusInfo(
            version: Self.version, pid: getpid(), uptimeSeconds: uptime, ariConnected: ariConnectedNow,
            ariURL: ARIEndpoint.redacted(currentConfig.ari.url), appName: currentConfig.ari.appName,
            draining: await registryIfRunning?.isDraining ?? false, liveCalls: await registryIfRunning?.liveCalls ?? 0,
            totals: CallTotals(handled: counterValue(.callsStarted), failed: counterValue(.callsFailed),
                               aiErrors: counterValue(.aiErrors) + counterValue(.aiUnavailable),
                               rejectedBusy: counterValue(.rejectedBusy), rejectedDraining: counterValue(.rejectedDraining)),
            configPath: configFilePath, lastReload: lastReloadInfo)
    }

    public func calls() async -> [CallInfo] {
        guard let registry = registryIfRunning else { return [] }
        var result: [CallInfo] = []
        for session in await registry.sessions {
            let s = await session.snapshot()
            result.append(CallInfo(callId: s.callId, channelId: s.channelId, caller: s.caller, campaign: s.campaign,
                                   state: s.state, ageSeconds: s.age.seconds, packetsIn: s.packetsIn, packetsOut: s.packetsOut,
                                   packetsDropped: s.packetsDropped, playoutBufferMs: s.playoutBufferMs, aiSessionId: s.sessionId))
        }
        return result.sorted { $0.ageSeconds > $1.ageSeconds }
    }

    public func stats() async -> StatsSnapshot {
        var counters = counterSnapshot
        var liveIn: UInt64 = 0
        var liveOut: UInt64 = 0
        var liveDropped: UInt64 = 0
        let sessions = await registryIfRunning?.sessions ?? []
        for session in sessions {
            liveIn &+= session.media.packetsIn
            liveOut &+= session.media.packetsOut
            liveDropped &+= session.media.packetsDropped
        }
        counters["rtp_in_packets"] = (counters["rtp_in_packets_ended_calls"] ?? 0) &+ liveIn
        counters["rtp_out_packets"] = (counters["rtp_out_packets_ended_calls"] ?? 0) &+ liveOut
        counters["rtp_in_dropped_live_calls"] = liveDropped
        if let socket = await rtpCounters() {
            counters["rtp_socket_received"] = socket.received
            counters["rtp_unknown_source"] = socket.unknownSource
            counters["rtp_malformed"] = socket.malformed
            counters["rtp_pacer_late_2ms"] = socket.pacerLate2ms
            counters["rtp_pacer_late_10ms"] = socket.pacerLate10ms
            counters["rtp_pacer_skipped_slots"] = socket.pacerSkippedSlots
        }
        return StatsSnapshot(at: Date().timeIntervalSince1970, uptimeSeconds: uptime, liveCalls: sessions.count, counters: counters)
    }

    public func drain(wait: Bool, timeout: Duration?) async -> DrainResult {
        guard let registry = registryIfRunning else { return DrainResult(remainingCalls: 0, timedOut: false) }
        await registry.setAdmission(.draining)
        await statusChanged()
        guard wait else { return DrainResult(remainingCalls: await registry.liveCalls, timedOut: false) }
        let idle = await waitIdle(registry, timeout: timeout ?? .seconds(86_400))
        return DrainResult(remainingCalls: await registry.liveCalls, timedOut: !idle)
    }

    public func undrain() async {
        await registryIfRunning?.setAdmission(.accepting)
        await statusChanged()
    }

    public func endCall(id: String) async -> Bool {
        await registryIfRunning?.end(callId: id, reason: .operatorEnded) ?? false
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
