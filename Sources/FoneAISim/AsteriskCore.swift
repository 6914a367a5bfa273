import FoundationEssentials
import NIOCore
import NIOPosix
import Synchronization

/// A REST answer: status and optional JSON body.
struct SimRESTResponse: Sendable {
    var status: Int
    var body: String?

    static func json(_ status: Int, _ value: SimJSON) -> SimRESTResponse { .init(status: status, body: value.serialized) }
    static func message(_ status: Int, _ text: String) -> SimRESTResponse { .json(status, ["message": .string(text)]) }
    static let noContent = SimRESTResponse(status: 204, body: nil)
}

struct ChannelRecord {
    enum Kind { case caller, external }
    let id: String
    let kind: Kind
    let order: Int
    var name: String
    var state: String
    var callerName: String
    var callerNumber: String
    var context: String
    var exten: String
    var priority: Int
    var appName: String
    var appData: String
    var variables: [String: String]
    /// The Stasis application subscribed to this channel (events go there).
    var app: String?
    var inStasis: Bool
    var bridgeID: String?
    let creationtime: String
    var args: [String]
    var call: SimCall?
    var media: ExternalMedia?
    /// External channel with `transport=websocket`: its media socket (instead of `media`).
    var wsMedia: MediaWebSocketChannel? = nil
    var localPort: Int = 0
    /// External channel: the caller it is currently streaming with.
    var pairedCaller: String?
}

struct BridgeRecord {
    let id: String
    let order: Int
    var name: String
    var type: String
    var channels: [String]
    let creationtime: String
    var apps: Set<String>
}

struct EventSocketRecord {
    let id: Int
    let apps: [String]
    let continuation: AsyncStream<String>.Continuation
    let channel: any Channel
}

struct AppRecord {
    let name: String
    var activeSocket: Int?
}

struct CoreState {
    var channels: [String: ChannelRecord] = [:]
    var bridges: [String: BridgeRecord] = [:]
    var apps: [String: AppRecord] = [:]
    var sockets: [Int: EventSocketRecord] = [:]
    /// WebSocket media: MEDIA_WEBSOCKET_CONNECTION_ID → channel id, while the channel lives.
    var mediaConnections: [String: String] = [:]
    var nextSocketID = 0
    var counter = 0
    var uniqueBase = SimTime.unixSeconds()
    var localCounter = Int.random(in: 0x10..<0x100)
}

/// The state and behaviour of the fake Asterisk, independent of the HTTP server.
final class AsteriskCore: Sendable {
    let config: AsteriskSimulator.Configuration
    let counters = SimCounterBox()
    let group: any EventLoopGroup
    let state = Mutex(CoreState())
    let startTime = SimTime.asteriskTimestamp()

    init(config: AsteriskSimulator.Configuration, group: any EventLoopGroup) {
        self.config = config
        self.group = group
    }

    var asteriskID: String { config.asteriskID }

    // MARK: auth

    func authorized(authorizationHeader: String?, query: [String: String]) -> Bool {
        let expected = "\(config.username):\(config.password)"
        if let key = query["api_key"], key == expected { return true }
        if let cred = SimAuth.basicCredentials(authorizationHeader), cred == expected { return true }
        return false
    }

    // MARK: JSON

    func channelJSON(_ c: ChannelRecord, includeVars: [String: String]? = nil) -> SimJSON {
        var pairs: [(String, SimJSON)] = [
            ("id", .string(c.id)),
            ("name", .string(c.name)),
            ("state", .string(c.state)),
            ("protocol_id", ""),
            ("caller", ["name": .string(c.callerName), "number": .string(c.callerNumber)]),
            ("connected", ["name": "", "number": ""]),
            ("accountcode", ""),
            (
                "dialplan",
                [
                    "context": .string(c.context), "exten": .string(c.exten), "priority": .int(c.priority),
                    "app_name": .string(c.appName), "app_data": .string(c.appData),
                ]
            ),
            ("creationtime", .string(c.creationtime)),
            ("language", "en"),
        ]
        if let includeVars { pairs.append(("channelvars", .strings(includeVars))) }
        return .object(pairs)
    }

    func bridgeJSON(_ b: BridgeRecord) -> SimJSON {
        .object([
            ("id", .string(b.id)),
            ("technology", "simple_bridge"),
            ("bridge_type", .string(b.type)),
            ("bridge_class", "stasis"),
            ("creator", "Stasis"),
            ("name", .string(b.name)),
            ("channels", .array(b.channels.map { .string($0) })),
            ("creationtime", .string(b.creationtime)),
            ("video_mode", "none"),
        ])
    }

    // MARK: events (call with the lock held)

    func emit(_ st: inout CoreState, app: String?, type: String, _ fields: [(String, SimJSON)]) {
        guard let app, let sid = st.apps[app]?.activeSocket, let sock = st.sockets[sid] else { return }
        var pairs: [(String, SimJSON)] = [("type", .string(type)), ("timestamp", .string(SimTime.asteriskTimestamp()))]
        pairs.append(contentsOf: fields)
        pairs.append(("asterisk_id", .string(asteriskID)))
        pairs.append(("application", .string(app)))
        sock.continuation.yield(SimJSON.object(pairs).serialized)
        counters.eventsSent.increment()
    }

    func emitChannel(_ st: inout CoreState, _ id: String, type: String, extra: [(String, SimJSON)] = []) {
        guard let c = st.channels[id] else { return }
        emit(&st, app: c.app, type: type, extra + [("channel", channelJSON(c))])
    }

    // MARK: event sockets

    func registerSocket(apps: [String], continuation: AsyncStream<String>.Continuation, channel: any Channel) -> Int {
        counters.eventSocketsAccepted.increment()
        return state.withLock { st in
            st.nextSocketID += 1
            let sid = st.nextSocketID
            st.sockets[sid] = EventSocketRecord(id: sid, apps: apps, continuation: continuation, channel: channel)
            for app in apps {
                if let old = st.apps[app]?.activeSocket, old != sid {
                    // The old socket is told and no longer receives this app's events.
                    emit(&st, app: app, type: "ApplicationReplaced", [])
                }
                st.apps[app, default: AppRecord(name: app)].activeSocket = sid
            }
            return sid
        }
    }

    func unregisterSocket(_ sid: Int) {
        state.withLock { st in
            guard let sock = st.sockets.removeValue(forKey: sid) else { return }
            sock.continuation.finish()
            for app in sock.apps where st.apps[app]?.activeSocket == sid {
                st.apps[app]?.activeSocket = nil  // deactivated; channels stay
            }
        }
    }

    /// Closes every event socket abruptly (TCP close, no WebSocket close frame).
    func dropAllEventSockets() {
        let channels: [any Channel] = state.withLock { st in
            let chans = st.sockets.values.map(\.channel)
            for (sid, sock) in st.sockets {
                sock.continuation.finish()
                for app in sock.apps where st.apps[app]?.activeSocket == sid { st.apps[app]?.activeSocket = nil }
            }
            st.sockets = [:]
            return chans
        }
        for ch in channels { ch.close(promise: nil) }
    }

    func sendRaw(_ text: String) {
        state.withLock { st in
            for sock in st.sockets.values { sock.continuation.yield(text) }
        }
    }

    func isAppActive(_ app: String) -> Bool {
        state.withLock { $0.apps[app]?.activeSocket != nil }
    }

    // MARK: calls

    func placeCall(_ spec: SimCallSpec) -> SimCall {
        let app = spec.app ?? config.appName
        let call: SimCall = state.withLock { st in
            st.counter += 1
            st.localCounter += 1
            let id = "\(st.uniqueBase).\(st.counter)"
            let hex = String(st.localCounter, radix: 16)
            let name = "Local/\(spec.exten)@\(spec.context)-\(String(repeating: "0", count: max(0, 8 - hex.count)))\(hex);2"
            let call = SimCall(id: id, name: name, spec: spec)
            call.attach(core: self)
            var vars = spec.variables
            let active = st.apps[app]?.activeSocket != nil
            if !active {
                // Stasis() fails at once; the dialplan goes on. Nothing is queued.
                vars["STASISSTATUS"] = "FAILED"
                call.finish(.stasisFailed, variables: vars)
                return call
            }
            let rec = ChannelRecord(
                id: id, kind: .caller, order: st.counter, name: name, state: "Up",
                callerName: spec.callerName, callerNumber: spec.callerNumber,
                context: spec.context, exten: spec.exten, priority: 5,
                appName: "Stasis", appData: ([app] + spec.stasisArgs).joined(separator: ","),
                variables: vars, app: app, inStasis: true, bridgeID: nil,
                creationtime: SimTime.asteriskTimestamp(), args: spec.stasisArgs, call: call, media: nil)
            st.channels[id] = rec
            emit(&st, app: app, type: "StasisStart", [("args", .array(spec.stasisArgs.map { .string($0) })), ("channel", channelJSON(rec))])
            return call
        }
        if call.outcome == nil, let after = spec.hangupAfter {
            Task { [weak call] in
                try? await Task.sleep(for: after)
                guard let call, call.outcome == nil else { return }
                await call.hangup()
            }
        }
        return call
    }

    func channelVariables(_ id: String) -> [String: String]? {
        state.withLock { $0.channels[id]?.variables }
    }

    /// Caller-side hangup: ChannelHangupRequest (16), ChannelLeftBridge, StasisEnd.
    func callerHangup(_ id: String) {
        state.withLock { st in
            guard let c = st.channels[id], c.kind == .caller, c.inStasis else { return }
            emitChannel(&st, id, type: "ChannelHangupRequest", extra: [("cause", 16)])
            removeFromBridge(&st, id)
            emitChannel(&st, id, type: "StasisEnd")
            let rec = st.channels.removeValue(forKey: id)
            rec?.call?.finish(.hungUp(byCaller: true), variables: rec?.variables ?? [:])
        }
    }

    func dtmf(_ id: String, digit: String, durationMs: Int) {
        state.withLock { st in
            guard st.channels[id] != nil else { return }
            emitChannel(&st, id, type: "ChannelDtmfReceived", extra: [("digit", .string(digit)), ("duration_ms", .int(durationMs))])
            // The bridge passes the digit on: a WebSocket media channel tells its application.
            for (eid, e) in st.channels where e.kind == .external && e.pairedCaller == id {
                e.wsMedia?.sendEvent("DTMF_END digit:\(digit) channel_id:\(eid)")
            }
        }
    }

    // MARK: bridging helpers (lock held)

    func removeFromBridge(_ st: inout CoreState, _ id: String, emitEvent: Bool = true) {
        guard let bid = st.channels[id]?.bridgeID, var b = st.bridges[bid] else { return }
        b.channels.removeAll { $0 == id }
        st.bridges[bid] = b
        st.channels[id]?.bridgeID = nil
        if emitEvent, let c = st.channels[id] {
            emit(&st, app: c.app, type: "ChannelLeftBridge", [("bridge", bridgeJSON(b)), ("channel", channelJSON(c))])
        }
        refreshMedia(&st, leaving: id)
    }

    /// Stops streams involving `id` (a channel that left its bridge or the system).
    func refreshMedia(_ st: inout CoreState, leaving id: String) {
        guard let c = st.channels[id] else { return }
        switch c.kind {
        case .external:
            if c.pairedCaller != nil {
                c.media?.stopSending()
                c.media?.setListener(nil)
                c.wsMedia?.stopSending()
                c.wsMedia?.setListener(nil)
                st.channels[id]?.pairedCaller = nil
            }
        case .caller:
            for (eid, e) in st.channels where e.kind == .external && e.pairedCaller == id {
                e.media?.stopSending()
                e.media?.setListener(nil)
                e.wsMedia?.stopSending()
                e.wsMedia?.setListener(nil)
                st.channels[eid]?.pairedCaller = nil
            }
        }
    }

    /// Starts a stream when a bridge holds a caller and an external media channel.
    func startMediaIfPossible(_ st: inout CoreState, bridge bid: String) {
        guard let b = st.bridges[bid] else { return }
        let members = b.channels.compactMap { st.channels[$0] }
        guard let caller = members.first(where: { $0.kind == .caller && $0.call != nil }),
            let ext = members.first(where: { $0.kind == .external && ($0.media != nil || $0.wsMedia != nil) })
        else { return }
        if ext.pairedCaller == caller.id { return }
        if ext.pairedCaller != nil {
            ext.media?.stopSending()
            ext.wsMedia?.stopSending()
        }
        st.channels[ext.id]?.pairedCaller = caller.id
        let call = caller.call!
        let firstStart = call.mediaStartedAtNanos == nil
        call.noteMediaStarted(externalChannelID: ext.id, bridgeID: bid)
        if firstStart, let after = call.spec.hangupAfterMedia {
            Task { [weak call] in
                try? await Task.sleep(for: after)
                guard let call, call.outcome == nil else { return }
                await call.hangup()
            }
        }
        if let ws = ext.wsMedia {
            call.noteMediaSocket(ws)
            ws.setListener(call)
            ws.startSending(for: call)
        } else {
            ext.media!.setListener(call)
            ext.media!.startSending(for: call)
        }
    }

    // MARK: external media

    func externalEntersStasis(_ id: String) {
        state.withLock { st in
            guard var c = st.channels[id], !c.inStasis else { return }
            c.inStasis = true
            c.state = "Up"
            st.channels[id] = c
            emit(&st, app: c.app, type: "StasisStart", [("args", []), ("channel", channelJSON(c))])
        }
    }

    func allocateExternalChannelID() -> (String, Int) {
        state.withLock { st in
            st.counter += 1
            return ("\(st.uniqueBase).\(st.counter)", st.counter)
        }
    }

    // MARK: stop

    func shutdown() {
        let (medias, sockets): ([ExternalMedia], [EventSocketRecord]) = state.withLock { st in
            let m = st.channels.values.compactMap(\.media)
            for ws in st.channels.values.compactMap(\.wsMedia) { ws.close() }
            let s = Array(st.sockets.values)
            st.sockets = [:]
            for k in st.apps.keys { st.apps[k]?.activeSocket = nil }
            return (m, s)
        }
        for m in medias { m.close() }
        for s in sockets {
            s.continuation.finish()
            s.channel.close(promise: nil)
        }
    }
}
