import FoundationEssentials
import Logging
import NIOCore
import Synchronization

/// Performs one call's `CallStateMachine`: the machine decides, this actor acts and feeds back
/// what happened. Events from ARI and the AI arrive through one ordered mailbox.
public actor CallSession {
    public nonisolated let callId: String
    public nonisolated let caller: ARIChannel
    public nonisolated let bridgeId: String
    public nonisolated let externalChannelId: String
    public nonisolated let startedAt: ContinuousClock.Instant
    nonisolated let args: [String]
    nonisolated let environment: CallEnvironment
    nonisolated let media: any MediaLeg
    /// Exactly one of these is set, by `environment.transport`.
    nonisolated let rtpMedia: CallMedia?
    nonisolated let webSocketMedia: WebSocketMediaLeg?
    nonisolated let aiOutbound: AIOutbound
    nonisolated let aiAudioRate: AudioRateBox

    private var machine = CallStateMachine()
    private let mailbox: AsyncStream<CallStateMachine.Event>
    private let post: AsyncStream<CallStateMachine.Event>.Continuation
    private var logger: Logger
    private var aiTask: Task<Void, Never>?
    private var mediaSocketTask: Task<Void, Never>?
    private var aiMalformed = 0
    /// What the AI told us so far (sessionId, setVariables); applied when the call ends.
    private var sessionId: String?
    private var campaign: String?

    public init(caller: ARIChannel, args: [String], environment: CallEnvironment) {
        let suffix = Self.randomSuffix()
        callId = "\(environment.idPrefix)-\(suffix)"
        bridgeId = "\(environment.idPrefix)-br-\(suffix)"
        externalChannelId = "\(environment.idPrefix)-em-\(suffix)"
        self.caller = caller
        self.args = args
        self.environment = environment
        startedAt = .now
        (mailbox, post) = AsyncStream.makeStream(of: CallStateMachine.Event.self)
        let aiOutbound = AIOutbound(eventLoop: environment.ai.eventLoopGroup.next(), maxQueuedAudioFrames: 50)
        self.aiOutbound = aiOutbound
        let rate = environment.callerSampleRate
        aiAudioRate = AudioRateBox(rate)
        let onMark: @Sendable (String) -> Void = { aiOutbound.send(.mark($0)) }
        switch environment.transport {
        case .rtp:
            let leg = CallMedia(settings: environment.media, aiSampleRate: rate, toAI: aiOutbound, onMarkReached: onMark)
            (media, rtpMedia, webSocketMedia) = (leg, leg, nil)
        case .websocket:
            let leg = WebSocketMediaLeg(maxBufferedAudioMs: environment.media.maxBufferedAudioMs, aiSampleRate: rate,
                                        toAI: aiOutbound, onMarkReached: onMark)
            (media, rtpMedia, webSocketMedia) = (leg, nil, leg)
        }
        var logger = environment.logger
        logger[metadataKey: "call_id"] = "\(callId)"
        logger[metadataKey: "channel_id"] = "\(caller.id)"
        self.logger = logger
    }

    // MARK: Inputs (any thread, never block)

    public nonisolated func deliver(_ event: CallStateMachine.Event) {
        post.yield(event)
    }

    public nonisolated func dtmf(digit: String, durationMs: Int) {
        aiOutbound.send(.dtmf(digit: digit, durationMs: durationMs))
    }

    // MARK: Status

    public struct Snapshot: Sendable {
        public var callId: String
        public var channelId: String
        public var caller: String
        public var campaign: String?
        public var state: String
        public var age: Duration
        public var packetsIn: UInt64
        public var packetsOut: UInt64
        public var packetsDropped: UInt64
        public var playoutBufferMs: Int
        public var sessionId: String?
    }

    public func snapshot() -> Snapshot {
        let number = caller.caller?.number ?? ""
        let name = caller.caller?.name ?? ""
        return Snapshot(callId: callId, channelId: caller.id,
                        caller: name.isEmpty ? number : (number.isEmpty ? name : "\(name) <\(number)>"),
                        campaign: campaign, state: machine.stateName, age: ContinuousClock.now - startedAt,
                        packetsIn: media.packetsIn, packetsOut: media.packetsOut, packetsDropped: media.packetsDropped,
                        playoutBufferMs: media.playout.depthMs, sessionId: sessionId)
    }

    // MARK: The call

    /// Runs the call to its end; returns how it ended.
    public func run() async -> CallEnding {
        logger.info("Call arrived", metadata: ["caller": "\(caller.caller?.number ?? "")", "exten": "\(caller.dialplan?.exten ?? "")"])
        let variables = await readCallerVariables()
        campaign = variables.campaign
        if let campaign { logger[metadataKey: "campaign"] = "\(campaign)" }
        let info = AICallInfo(
            callId: callId, channelId: caller.id, callerNumber: caller.caller?.number ?? "",
            callerName: caller.caller?.name ?? "", exten: caller.dialplan?.exten ?? "",
            context: caller.dialplan?.context ?? "", campaign: variables.campaign, apiKey: variables.apiKey,
            custom: AICallInfo.parseCustom(variables.custom), args: args,
            sampleRate: environment.callerSampleRate)
        post.yield(.variablesLoaded)

        for await event in mailbox {
            let actions = machine.handle(event)
            for action in actions { await perform(action, info: info) }
            if machine.isDone { break }
        }
        post.finish()
        return machine.ending ?? CallEnding(reason: .error, disposition: .continueNext)
    }

    private func readCallerVariables() async -> (campaign: String?, apiKey: String?, custom: String?) {
        async let campaign = variable("campaign")
        async let apiKey = variable("apiKey")
        async let custom = variable("custom")
        return await (campaign, apiKey, custom)
    }

    private nonisolated func variable(_ name: String) async -> String? {
        do {
            return try await environment.ari.getVariable(channel: caller.id, name: name)
        } catch {
            environment.logger.debug("Cannot read channel variable", metadata: ["variable": "\(name)", "error": "\(error)"])
            return nil
        }
    }

    private func perform(_ action: CallStateMachine.Action, info: AICallInfo) async {
        switch action {
        case .connectAI:
            startAISession(info)
        case .createMedia:
            Task { await self.createMedia() }
        case .addToBridge:
            Task { await self.addToBridge() }
        case .startStreaming:
            if let rtpMedia { environment.rtp.startPlayout(rtpMedia) }
            webSocketMedia?.beginPlayout()
            logger.info("Call bridged to the AI", metadata: ["bridge_id": "\(bridgeId)"])
        case .awaitPlayout:
            Task { await self.awaitPlayout() }
        case .cleanUp(let ending):
            await cleanUp(ending)
            post.yield(.cleanupFinished)
        }
    }

    private func startAISession(_ info: AICallInfo) {
        let client = AISessionClient(settings: environment.ai, logger: logger)
        let media = self.media
        let rate = aiAudioRate
        let outbound = aiOutbound
        // Detached so a graceful shutdown of the daemon does not close the AI socket: draining
        // calls keep talking to the AI until they end.
        aiTask = Task.detached {
            await client.run(call: info, outbound: outbound,
                             onAudio: { media.enqueueAudio($0, sampleRate: $1 ?? rate.value) },
                             onEvent: { await self.handleAI($0) })
        }
    }

    private func createMedia() async {
        do {
            try await environment.ari.createBridge(id: bridgeId)
            if let rtpMedia {
                let channel = try await environment.ari.createExternalMedia(
                    channelId: externalChannelId, externalHost: environment.externalHost,
                    format: environment.media.inboundFormat.rawValue)
                guard let host = channel.channelvars?["UNICASTRTP_LOCAL_ADDRESS"],
                      let portText = channel.channelvars?["UNICASTRTP_LOCAL_PORT"], let port = Int(portText),
                      let remote = try? SocketAddress(ipAddress: host, port: port)
                else {
                    throw ARIError.badResponse("externalMedia channel without UNICASTRTP_LOCAL_ADDRESS/PORT")
                }
                await environment.rtp.attach(rtpMedia, remote: remote)
                deliver(.mediaCreated)
            } else if let webSocketMedia {
                let channel = try await environment.ari.createWebSocketMedia(channelId: externalChannelId)
                guard let connectionId = channel.channelvars?["MEDIA_WEBSOCKET_CONNECTION_ID"] else {
                    throw ARIError.badResponse("WebSocket externalMedia channel without MEDIA_WEBSOCKET_CONNECTION_ID (Asterisk too old?)")
                }
                connectMediaSocket(webSocketMedia, connectionId: connectionId)
            }
        } catch {
            logger.error("Cannot set up the call's media", metadata: ["error": "\(error)"])
            deliver(.setupFailed)
        }
    }

    /// The WebSocket media channel enters Stasis only once this socket is open; losing it
    /// mid-call leaves the caller with nothing, so the call ends.
    private func connectMediaSocket(_ leg: WebSocketMediaLeg, connectionId: String) {
        let endpoint = environment.ari.endpoint
        let (tls, logger) = (environment.ariTLS, logger)
        mediaSocketTask = Task.detached {
            do {
                try await leg.run(url: endpoint.mediaURL(connectionId: connectionId), authorization: endpoint.authorizationHeader,
                                  tls: tls, logger: logger, onConnected: { self.deliver(.mediaCreated) })
            } catch {
                logger.error("Media WebSocket failed", metadata: ["error": "\(error)"])
            }
            self.deliver(.setupFailed)
            self.deliver(.endRequested(.error))
        }
    }

    /// The external channel may not be in Stasis yet when we ask (the 422 race): its StasisStart
    /// normally gates this, and a late 422 is retried briefly.
    private func addToBridge() async {
        for attempt in 1...10 {
            do {
                try await environment.ari.addChannels(bridge: bridgeId, channels: [caller.id, externalChannelId])
                deliver(.bridged)
                return
            } catch let error as ARIError where error.statusCode == 422 && attempt < 10 {
                try? await Task.sleep(for: .milliseconds(30))
            } catch {
                logger.error("Cannot add the call to its bridge", metadata: ["error": "\(error)"])
                deliver(.setupFailed)
                return
            }
        }
    }

    private func awaitPlayout() async {
        let deadline = ContinuousClock.now + environment.playoutOnEnd
        while media.isPacing && !media.playout.isIdle && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        deliver(.playoutFinished)
    }

    private func handleAI(_ event: AISessionEvent) {
        switch event {
        case .connected:
            logger.debug("AI session connected")
            deliver(.aiConnected)
        case .connectFailed(let reason):
            logger.warning("AI server unreachable", metadata: ["reason": "\(reason)"])
            environment.counters.add(.aiUnavailable)
            deliver(.aiConnectFailed)
        case .closed(let reason):
            if case .streaming = machine.state {
                logger.warning("AI session closed without ending the call", metadata: ["reason": "\(reason)"])
                environment.counters.add(.aiErrors)
            }
            deliver(.aiLost)
        case .malformed(let reason):
            aiMalformed += 1
            environment.counters.add(.aiMalformed)
            if aiMalformed <= 3 { logger.warning("Dropped a malformed AI message", metadata: ["reason": "\(reason)"]) }
        case .message(let message):
            handleAIMessage(message)
        }
    }

    private func handleAIMessage(_ message: AIInboundMessage) {
        switch message {
        case .format(let sampleRate):
            aiAudioRate.value = sampleRate
        case .clear:
            for mark in media.playout.clear() { aiOutbound.send(.mark(mark)) }
            webSocketMedia?.flushAsterisk()
        case .mark(let name):
            media.addMark(name)
        case .setVariables(let variables):
            let ari = environment.ari
            let channel = caller.id
            Task { for (name, value) in variables.sorted(by: { $0.key < $1.key }) { try? await ari.setVariable(channel: channel, name: name, value: value) } }
        case .end(let sessionId, let variables):
            noteSession(sessionId)
            deliver(.aiFinished(CallEnding(reason: .completed, disposition: .continueNext,
                                           variables: sessionVariables(sessionId, variables), playOut: true)))
        case .transfer(let context, let exten, let priority, let jump, let sessionId, let variables):
            noteSession(sessionId)
            let vars = sessionVariables(sessionId, variables) + [("transferContext", context), ("transferExtension", exten)]
            deliver(.aiFinished(CallEnding(reason: .transfer,
                                           disposition: jump ? .jump(context: context, extension: exten, priority: priority) : .continueNext,
                                           variables: vars, playOut: true)))
        case .hangup(let sessionId, let variables):
            noteSession(sessionId)
            deliver(.aiFinished(CallEnding(reason: .aiHangup, disposition: .hangup,
                                           variables: sessionVariables(sessionId, variables), playOut: true)))
        }
    }

    private func noteSession(_ id: String?) {
        guard let id else { return }
        sessionId = id
        logger[metadataKey: "session_id"] = "\(id)"
    }

    private func sessionVariables(_ sessionId: String?, _ variables: [String: String]) -> [(String, String)] {
        (sessionId.map { [("sessionId", $0)] } ?? []) + variables.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Every call ends here, whatever happened: the AI is told, media released, the caller
    /// continued or hung up, and the external channel and bridge deleted. Each step is tried even
    /// if an earlier one failed.
    private func cleanUp(_ ending: CallEnding) async {
        let stopReason: String = switch ending.reason {
        case .callerHangup: "caller_hangup"
        case .unavailable: "drain"
        case .operatorEnded: "operator"
        default: "ended"
        }
        aiOutbound.finish(with: .stop(reason: stopReason))
        rtpMedia?.stopPacer()
        webSocketMedia?.close()

        let ari = environment.ari
        if ending.disposition != .alreadyGone {
            for (name, value) in [("FONEAI_STATUS", ending.reason.rawValue)] + ending.variables {
                await attempt("set \(name)") { try await ari.setVariable(channel: self.caller.id, name: name, value: value) }
            }
        }
        switch ending.disposition {
        case .continueNext:
            await attempt("continue the caller") { try await ari.continueInDialplan(channel: self.caller.id) }
        case .jump(let context, let exten, let priority):
            await attempt("continue the caller") {
                try await ari.continueInDialplan(channel: self.caller.id, context: context, extension: exten, priority: priority)
            }
        case .hangup:
            await attempt("hang up the caller") { try await ari.hangup(channel: self.caller.id) }
        case .alreadyGone:
            break
        }
        await attempt("delete the external channel") { try await ari.hangup(channel: self.externalChannelId) }
        // Only now: until the external channel is gone Asterisk may still send its RTP, which
        // would otherwise be logged as coming from an unknown source.
        if let rtpMedia { await environment.rtp.detach(rtpMedia) }
        await attempt("delete the bridge") { try await ari.deleteBridge(id: self.bridgeId) }

        // Give the AI a moment to receive `stop` and close cleanly, then stop waiting.
        if let aiTask {
            let closer = Task { try? await Task.sleep(for: .seconds(2)); aiTask.cancel() }
            await aiTask.value
            closer.cancel()
        }
        environment.counters.add(.rtpInPacketsEnded, media.packetsIn)
        environment.counters.add(.rtpOutPacketsEnded, media.packetsOut)
        logger.info("Call ended", metadata: [
            "reason": "\(ending.reason.rawValue)", "disposition": "\(ending.disposition)",
            "packets_in": "\(media.packetsIn)", "packets_out": "\(media.packetsOut)",
            "duration_s": "\((ContinuousClock.now - startedAt).components.seconds)",
        ])
    }

    /// A 404 during clean-up means the thing is already gone (caller hung up, or someone else
    /// deleted it): that is success.
    private func attempt(_ what: String, _ body: () async throws -> Void) async {
        do {
            try await body()
        } catch let error as ARIError where error.statusCode == 404 {
            return
        } catch {
            environment.counters.add(.ariErrors)
            logger.warning("Clean-up step failed", metadata: ["step": "\(what)", "error": "\(error)"])
        }
    }

    private static func randomSuffix() -> String {
        let alphabet = Array("0123456789abcdef")
        return String((0..<12).map { _ in alphabet[Int.random(in: 0..<16)] })
    }
}

/// The AI's declared audio rate, read on every AI audio frame off the actor.
final class AudioRateBox: Sendable {
    private let rate: Atomic<Int>
    init(_ value: Int) { rate = Atomic(value) }
    var value: Int {
        get { rate.load(ordering: .relaxed) }
        set { rate.store(newValue, ordering: .relaxed) }
    }
}
