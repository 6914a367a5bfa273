import Logging

/// Routes ARI events to calls and admits new callers. All ARI events pass through here in order;
/// per-call work happens in each call's own `CallSession`.
public actor CallRegistry {
    public enum Admission: Sendable, Equatable {
        case accepting
        case draining
    }

    private var byCallId: [String: CallSession] = [:]
    /// Both the caller's channel id and our external channel id point at the call.
    private var byChannel: [String: CallSession] = [:]
    private var admission: Admission = .accepting
    private var maxCalls: Int
    private var environment: CallEnvironment
    private let counters: BridgeCounters

    public init(environment: CallEnvironment, maxCalls: Int) {
        self.environment = environment
        self.maxCalls = maxCalls
        counters = environment.counters
    }

    public var liveCalls: Int { byCallId.count }
    public var isDraining: Bool { admission == .draining }
    public var sessions: [CallSession] { Array(byCallId.values) }

    /// New calls use the new settings; calls in progress keep theirs.
    public func update(environment: CallEnvironment, maxCalls: Int) {
        self.environment = environment
        self.maxCalls = maxCalls
    }

    public func setAdmission(_ admission: Admission) {
        self.admission = admission
    }

    public func session(callId: String) -> CallSession? { byCallId[callId] }

    // MARK: Events

    public func handle(_ event: ARIEvent) {
        counters.add(.ariEvents)
        switch event.type {
        case "StasisStart":
            guard let channel = event.channel else { return malformed(event, "StasisStart without channel") }
            if let session = byChannel[channel.id] {
                if channel.id == session.externalChannelId { session.deliver(.externalEnteredStasis) }
            } else if isMediaChannel(channel) {
                // Not ours (another bridge instance, or one the start-up sweep will remove).
                environment.logger.debug("Ignoring a media channel that belongs to no call", metadata: ["channel_id": "\(channel.id)"])
            } else {
                admit(channel, args: event.args ?? [])
            }
        case "StasisEnd":
            guard let channel = event.channel else { return malformed(event, "StasisEnd without channel") }
            if let session = byChannel[channel.id], channel.id == session.caller.id {
                session.deliver(.callerLeft)
            }
        case "ChannelDtmfReceived":
            if let id = event.channel?.id, let session = byChannel[id], id == session.caller.id, let digit = event.digit {
                session.dtmf(digit: digit, durationMs: event.durationMs ?? 0)
            }
        default:
            // Most event types (ChannelVarset, ChannelEnteredBridge, …) need no action.
            counters.add(.ariEventsUnhandled)
        }
    }

    private func malformed(_ event: ARIEvent, _ what: String) {
        counters.add(.ariEventsMalformed)
        environment.logger.warning("Dropped an ARI event", metadata: ["problem": "\(what)", "type": "\(event.type.prefix(40))"])
    }

    private func isMediaChannel(_ channel: ARIChannel) -> Bool {
        channel.id.hasPrefix(environment.idPrefix + "-em-")
            || (channel.name ?? "").hasPrefix("UnicastRTP/") || (channel.name ?? "").hasPrefix("WebSocket/")
    }

    private func admit(_ caller: ARIChannel, args: [String]) {
        let refusal: CallEndReason? = admission == .draining ? .unavailable : (byCallId.count >= maxCalls ? .busy : nil)
        if let refusal {
            refuse(caller, reason: refusal)
            return
        }
        let session = CallSession(caller: caller, args: args, environment: environment)
        byCallId[session.callId] = session
        byChannel[caller.id] = session
        byChannel[session.externalChannelId] = session
        counters.add(.callsStarted)
        Task {
            let ending = await session.run()
            self.finished(session, ending: ending)
        }
    }

    /// A caller we will not serve goes straight back to the dialplan, with the reason.
    private func refuse(_ caller: ARIChannel, reason: CallEndReason) {
        counters.add(reason == .busy ? .rejectedBusy : .rejectedDraining)
        let ari = environment.ari
        let logger = environment.logger
        logger.warning("Refusing a call", metadata: ["channel_id": "\(caller.id)", "reason": "\(reason.rawValue)"])
        Task {
            do {
                try await ari.setVariable(channel: caller.id, name: "FONEAI_STATUS", value: reason.rawValue)
                try await ari.continueInDialplan(channel: caller.id)
            } catch {
                logger.error("Cannot continue a refused caller", metadata: ["channel_id": "\(caller.id)", "error": "\(error)"])
            }
        }
    }

    private func finished(_ session: CallSession, ending: CallEnding) {
        byCallId[session.callId] = nil
        byChannel[session.caller.id] = nil
        byChannel[session.externalChannelId] = nil
        counters.add(.callsEnded)
        switch ending.reason {
        case .error: counters.add(.callsFailed)
        case .aiError: counters.add(.callsFailed)
        case .aiUnavailable: counters.add(.callsFailed)
        default: break
        }
    }

    // MARK: Reconciling with Asterisk

    /// Everything live calls own in Asterisk, and the calls that began before `instant`.
    public func ownership(startedBefore instant: ContinuousClock.Instant) -> (channels: Set<String>, bridges: Set<String>, sessions: [CallSession]) {
        var channels = Set(byChannel.keys)
        var bridges = Set<String>()
        for session in byCallId.values {
            channels.insert(session.caller.id)
            bridges.insert(session.bridgeId)
        }
        return (channels, bridges, byCallId.values.filter { $0.startedAt < instant })
    }

    // MARK: Ending calls

    /// Ends every live call now (continued in the dialplan with `reason`).
    public func endAll(reason: CallEndReason) {
        for session in byCallId.values { session.deliver(.endRequested(reason)) }
    }

    public func end(callId: String, reason: CallEndReason) -> Bool {
        guard let session = byCallId[callId] else { return false }
        session.deliver(.endRequested(reason))
        return true
    }
}
