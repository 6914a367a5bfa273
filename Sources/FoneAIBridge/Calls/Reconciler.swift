import Logging

/// Brings the bridge's view and Asterisk's back in line after a (re)connect of the events socket:
/// at start-up it removes what a crashed or killed previous run left behind; after a reconnect
/// it also closes calls whose caller disappeared while events were not arriving.
struct Reconciler {
    let ari: ARIClient
    let registry: CallRegistry
    let idPrefix: String
    let logger: Logger
    /// Events queued behind the reconnect need a moment to reach the registry, so a caller whose
    /// StasisStart is still in flight is not mistaken for an orphan.
    var settleTime: Duration = .milliseconds(500)

    struct Result: Equatable {
        var deletedChannels = 0
        var deletedBridges = 0
        var continuedOrphans = 0
        var closedCalls = 0
    }

    func run() async throws -> Result {
        let snapshotTaken = ContinuousClock.now
        let application = try await ari.getApplication()
        let channels = try await ari.listChannels()
        let bridges = try await ari.listBridges()
        try await Task.sleep(for: settleTime)
        let owned = await registry.ownership(startedBefore: snapshotTaken)
        var result = Result()

        let liveChannelIds = Set(channels.map(\.id))
        for session in owned.sessions where !liveChannelIds.contains(session.caller.id) {
            session.deliver(.callerLeft)
            result.closedCalls += 1
        }
        for channel in channels where channel.id.hasPrefix(idPrefix + "-em-") && !owned.channels.contains(channel.id) {
            if await attempt({ try await ari.hangup(channel: channel.id) }) { result.deletedChannels += 1 }
        }
        for bridge in bridges where bridge.id.hasPrefix(idPrefix + "-br-") && !owned.bridges.contains(bridge.id) {
            if await attempt({ try await ari.deleteBridge(id: bridge.id) }) { result.deletedBridges += 1 }
        }
        // Callers still in our Stasis app that no call owns were left by a previous run: they
        // hear nothing until someone continues them.
        for id in application.channelIds where !id.hasPrefix(idPrefix + "-em-") && !owned.channels.contains(id) && liveChannelIds.contains(id) {
            let continued = await attempt {
                try await ari.setVariable(channel: id, name: "FONEAI_STATUS", value: CallEndReason.error.rawValue)
                try await ari.continueInDialplan(channel: id)
            }
            if continued { result.continuedOrphans += 1 }
        }
        if result != Result() {
            logger.warning("Cleaned up after a previous run or an ARI outage", metadata: [
                "deleted_channels": "\(result.deletedChannels)", "deleted_bridges": "\(result.deletedBridges)",
                "continued_callers": "\(result.continuedOrphans)", "closed_calls": "\(result.closedCalls)",
            ])
        }
        return result
    }

    /// A 404 means it went away by itself meanwhile: nothing left to do.
    private func attempt(_ body: () async throws -> Void) async -> Bool {
        do {
            try await body()
            return true
        } catch let error as ARIError where error.statusCode == 404 {
            return false
        } catch {
            logger.warning("Clean-up of a leftover failed", metadata: ["error": "\(error)"])
            return false
        }
    }
}
