import FoundationEssentials
import NIOCore
import NIOPosix

extension AsteriskCore {
    /// Handles one authenticated ARI REST request. `path` is below `/ari`.
    func handleREST(method: String, path: String, query: [String: String], body: String?) async -> SimRESTResponse {
        counters.restRequests.increment()
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        switch (method, parts.count, parts.first ?? "") {
        case ("GET", 2, "asterisk") where parts[1] == "ping":
            return .json(200, ["asterisk_id": .string(asteriskID), "ping": "pong", "timestamp": .string(SimTime.asteriskTimestamp())])
        case ("GET", 2, "asterisk") where parts[1] == "info":
            return .json(200, infoJSON())
        case ("GET", 1, "channels"):
            return .json(200, state.withLock { st in
                .array(st.channels.values.sorted { $0.order < $1.order }.map { channelJSON($0) })
            })
        case ("POST", 2, "channels") where parts[1] == "externalMedia":
            return await externalMedia(query: query, body: body)
        case ("POST", 1, "channels"):
            return .message(501, "Originate is not implemented by the simulator")
        case ("POST", 2, "channels") where parts[1] == "create":
            return .message(501, "Originate is not implemented by the simulator")
        case (_, 2, "channels"):
            return channelResource(method: method, id: parts[1], query: query)
        case (_, 3, "channels"):
            return channelAction(method: method, id: parts[1], action: parts[2], query: query, body: body)
        case ("GET", 1, "bridges"):
            return .json(200, state.withLock { st in
                .array(st.bridges.values.sorted { $0.order < $1.order }.map { bridgeJSON($0) })
            })
        case ("POST", 1, "bridges"):
            return createBridge(id: query["bridgeId"], query: query)
        case ("POST", 2, "bridges"):
            return createBridge(id: parts[1], query: query)
        case ("GET", 2, "bridges"):
            return state.withLock { st in
                guard let b = st.bridges[parts[1]] else { return .message(404, "Bridge not found") }
                return .json(200, bridgeJSON(b))
            }
        case ("DELETE", 2, "bridges"):
            return deleteBridge(parts[1])
        case ("POST", 3, "bridges") where parts[2] == "addChannel":
            return addChannels(bridge: parts[1], query: query)
        case ("POST", 3, "bridges") where parts[2] == "removeChannel":
            return removeChannels(bridge: parts[1], query: query)
        case ("GET", 1, "applications"):
            return .json(200, state.withLock { st in
                .array(st.apps.keys.sorted().map { applicationJSON(&st, $0) })
            })
        case ("GET", 2, "applications"):
            return state.withLock { st in
                guard st.apps[parts[1]] != nil else { return .message(404, "Application not found") }
                return .json(200, applicationJSON(&st, parts[1]))
            }
        default:
            counters.unknownRequests.increment()
            return .message(404, "Resource not found")
        }
    }

    func infoJSON() -> SimJSON {
        [
            "build": ["os": "Linux", "kernel": "6.1.0", "machine": "x86_64", "options": "", "date": "2026-01-01 00:00:00 UTC", "user": "sim"],
            "system": [
                "version": .string(config.asteriskVersion), "entity_id": .string(asteriskID),
                "max_channels": 0, "max_open_files": 0, "max_load": 0.0,
            ],
            "config": [
                "name": "", "default_language": "en", "setid": ["user": "", "group": ""],
            ],
            "status": ["startup_time": .string(startTime), "last_reload_time": .string(startTime)],
        ]
    }

    func applicationJSON(_ st: inout CoreState, _ name: String) -> SimJSON {
        let chans = st.channels.values.filter { $0.app == name }.sorted { $0.order < $1.order }.map { SimJSON.string($0.id) }
        let bridges = st.bridges.values.filter { $0.apps.contains(name) }.sorted { $0.order < $1.order }.map { SimJSON.string($0.id) }
        return .object([
            ("name", .string(name)),
            ("channel_ids", .array(chans)),
            ("bridge_ids", .array(bridges)),
            ("endpoint_ids", []),
            ("device_names", []),
            ("events_allowed", []),
            ("events_disallowed", []),
        ])
    }

    // MARK: channels

    func channelResource(method: String, id: String, query: [String: String]) -> SimRESTResponse {
        switch method {
        case "GET":
            return state.withLock { st in
                guard let c = st.channels[id] else { return .message(404, "Channel not found") }
                return .json(200, channelJSON(c))
            }
        case "DELETE":
            let cause = Int(query["reason_code"] ?? "") ?? Self.cause(forReason: query["reason"])
            enum Result { case notFound, ok(ExternalMedia?) }
            let result: Result = state.withLock { st in
                guard let c = st.channels[id] else { return .notFound }
                emitChannel(&st, id, type: "ChannelHangupRequest", extra: [("cause", .int(cause))])
                removeFromBridge(&st, id)
                refreshMedia(&st, leaving: id)
                if c.inStasis { emitChannel(&st, id, type: "StasisEnd") }
                switch c.kind {
                case .caller:
                    let rec = st.channels.removeValue(forKey: id)
                    rec?.call?.finish(.hungUp(byCaller: false), variables: rec?.variables ?? [:])
                    return .ok(nil)
                case .external:
                    emitChannel(&st, id, type: "ChannelDestroyed", extra: [("cause", .int(cause)), ("cause_txt", .string(Self.causeText(cause)))])
                    if let rec = st.channels.removeValue(forKey: id) { releaseWebSocketMedia(&st, rec) }
                    return .ok(c.media)
                }
            }
            switch result {
            case .notFound: return .message(404, "Channel not found")
            case .ok(let media):
                media?.close()
                return .noContent
            }
        default:
            counters.unknownRequests.increment()
            return .message(405, "Method not allowed")
        }
    }

    static func cause(forReason reason: String?) -> Int {
        switch reason {
        case "busy": return 17
        case "congestion": return 34
        case "no_answer": return 19
        case "timeout": return 19
        case "rejected": return 21
        case "unallocated": return 1
        case "normal_unspecified": return 31
        case "answered_elsewhere": return 26
        default: return 16
        }
    }

    static func causeText(_ cause: Int) -> String {
        switch cause {
        case 16: return "Normal Clearing"
        case 17: return "User busy"
        case 19: return "No user responding"
        case 21: return "Call Rejected"
        case 34: return "Circuit/channel congestion"
        default: return "Unknown"
        }
    }

    func channelAction(method: String, id: String, action: String, query: [String: String], body: String?) -> SimRESTResponse {
        switch (method, action) {
        case ("GET", "variable"):
            guard let name = query["variable"], !name.isEmpty else { return .message(400, "Variable name is required") }
            return state.withLock { st in
                guard let c = st.channels[id] else { return .message(404, "Channel not found") }
                guard let v = c.variables[name] else { return .message(404, "Provided variable was not found") }
                return .json(200, ["value": .string(v)])
            }
        case ("POST", "variable"):
            guard let name = query["variable"], !name.isEmpty else { return .message(400, "Variable name is required") }
            var value = query["value"]
            if value == nil, let body, let json = SimJSON.parse(body) { value = json["value"]?.stringValue }
            return state.withLock { st in
                guard st.channels[id] != nil else { return .message(404, "Channel not found") }
                st.channels[id]!.variables[name] = value ?? ""
                emitChannel(&st, id, type: "ChannelVarset", extra: [("variable", .string(name)), ("value", .string(value ?? ""))])
                return .noContent
            }
        case ("POST", "continue"):
            return state.withLock { st in
                guard let c = st.channels[id] else { return .message(404, "Channel not found") }
                guard c.inStasis else { return .message(409, "Channel not in Stasis application") }
                let ctx = (query["context"].flatMap { $0.isEmpty ? nil : $0 }) ?? c.context
                let ext = (query["extension"].flatMap { $0.isEmpty ? nil : $0 }) ?? c.exten
                let prio: Int
                if let p = query["priority"].flatMap({ Int($0) }), p > 0 {
                    prio = p
                } else if ctx == c.context && ext == c.exten {
                    prio = c.priority + 1
                } else {
                    prio = 1
                }
                removeFromBridge(&st, id)
                refreshMedia(&st, leaving: id)
                emitChannel(&st, id, type: "StasisEnd")
                switch c.kind {
                case .caller:
                    var rec = st.channels.removeValue(forKey: id)!
                    rec.variables["STASISSTATUS"] = "SUCCESS"
                    rec.call?.finish(.continued(context: ctx, exten: ext, priority: prio), variables: rec.variables)
                case .external:
                    // No dialplan for UnicastRTP: it hangs up.
                    emitChannel(&st, id, type: "ChannelDestroyed", extra: [("cause", 16), ("cause_txt", "Normal Clearing")])
                    if let rec = st.channels.removeValue(forKey: id) {
                        rec.media?.close()
                        releaseWebSocketMedia(&st, rec)
                    }
                }
                return .noContent
            }
        case ("POST", "answer"), ("POST", "ring"), ("DELETE", "ring"):
            return state.withLock { st in st.channels[id] == nil ? .message(404, "Channel not found") : .noContent }
        case ("GET", "rtp_statistics"):
            return .message(404, "Channel not found")
        default:
            counters.unknownRequests.increment()
            return .message(404, "Resource not found")
        }
    }

    // MARK: externalMedia

    func externalMedia(query: [String: String], body: String?) async -> SimRESTResponse {
        guard let app = query["app"], !app.isEmpty else { return .message(400, "app cannot be empty") }
        let transport = query["transport"] ?? "udp"
        if transport == "websocket" { return webSocketExternalMedia(app: app, query: query, body: body) }
        let encapsulation = query["encapsulation"] ?? "rtp"
        guard transport == "udp", encapsulation == "rtp" else {
            return .message(501, "Only transport=udp encapsulation=rtp is implemented by the simulator")
        }
        guard let host = query["external_host"], !host.isEmpty else { return .message(400, "external_host is required") }
        guard let formatName = query["format"], !formatName.isEmpty else { return .message(400, "format is required") }
        guard let format = SimRTPFormat(rawValue: formatName) else { return .message(422, "Invalid format") }
        guard let colon = host.lastIndex(of: ":"), let port = Int(host[host.index(after: colon)...]), port > 0, port < 65536 else {
            return .message(400, "external_host must be host:port")
        }
        let hostPart = String(host[..<colon])
        let remote: SocketAddress
        do {
            remote = try SocketAddress(ipAddress: hostPart, port: port)
        } catch {
            do { remote = try SocketAddress.makeAddressResolvingHost(hostPart, port: port) } catch {
                return .message(400, "external_host could not be resolved")
            }
        }
        var extraVars: [String: String] = [:]
        if let body, let json = SimJSON.parse(body), let vars = json["variables"]?.stringDictionary { extraVars = vars }
        if let q = query["variables"], let json = SimJSON.parse(q), let vars = json.stringDictionary { extraVars.merge(vars) { $1 } }

        let (generatedID, order) = allocateExternalChannelID()
        let id = (query["channelId"].flatMap { $0.isEmpty ? nil : $0 }) ?? generatedID
        if state.withLock({ $0.channels[id] != nil }) { return .message(409, "Channel with given unique ID already exists") }

        let media: ExternalMedia
        let localPort: Int
        do {
            (media, localPort) = try await ExternalMedia.bind(
                channelID: id, host: config.rtpHost, remote: remote, format: format, counters: counters,
                learnPackets: config.strictRTPLearnPackets, group: group)
        } catch {
            return .message(500, "Could not bind RTP socket: \(error)")
        }
        let name = "UnicastRTP/\(host)-0x7f\(randomHex(10))"
        var vars = extraVars
        vars["UNICASTRTP_LOCAL_ADDRESS"] = config.rtpHost
        vars["UNICASTRTP_LOCAL_PORT"] = String(localPort)
        let rec = ChannelRecord(
            id: id, kind: .external, order: order, name: name, state: "Down",
            callerName: "", callerNumber: "", context: "default", exten: "s", priority: 1,
            appName: "Stasis", appData: app, variables: vars, app: app, inStasis: false, bridgeID: nil,
            creationtime: SimTime.asteriskTimestamp(), args: [], call: nil, media: media, localPort: localPort)
        let ok: Bool = state.withLock { st in
            if st.channels[id] != nil { return false }
            st.channels[id] = rec
            return true
        }
        guard ok else {
            media.close()
            return .message(409, "Channel with given unique ID already exists")
        }
        // THE RACE: the channel enters Stasis a little after the POST returns.
        let delayMs = Double.random(in: config.externalStasisDelayMs)
        Task {
            try? await Task.sleep(for: .microseconds(Int(delayMs * 1000)))
            self.externalEntersStasis(id)
        }
        return .json(200, channelJSON(rec, includeVars: ["UNICASTRTP_LOCAL_ADDRESS": config.rtpHost, "UNICASTRTP_LOCAL_PORT": String(localPort)]))
    }

    // MARK: bridges

    func createBridge(id: String?, query: [String: String]) -> SimRESTResponse {
        let types = (query["type"] ?? "mixing").split(separator: ",").map(String.init)
        for t in types where !["mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single"].contains(t) {
            return .message(400, "Invalid bridge type")
        }
        return state.withLock { st in
            st.counter += 1
            let bid = (id.flatMap { $0.isEmpty ? nil : $0 }) ?? Self.uuid()
            if let existing = st.bridges[bid] {
                // createWithId on an existing bridge updates it; POST /bridges?bridgeId= also answers with it.
                return .json(200, bridgeJSON(existing))
            }
            let b = BridgeRecord(
                id: bid, order: st.counter, name: query["name"] ?? "", type: types.first ?? "mixing", channels: [],
                creationtime: SimTime.asteriskTimestamp(), apps: [])
            st.bridges[bid] = b
            return .json(200, bridgeJSON(b))
        }
    }

    static func uuid() -> String {
        "\(randomHex(8))-\(randomHex(4))-4\(randomHex(3))-a\(randomHex(3))-\(randomHex(12))"
    }

    func deleteBridge(_ bid: String) -> SimRESTResponse {
        state.withLock { st in
            guard let b = st.bridges[bid] else { return .message(404, "Bridge not found") }
            for cid in b.channels { removeFromBridge(&st, cid) }
            let final = st.bridges.removeValue(forKey: bid) ?? b
            for app in final.apps.sorted() {
                emit(&st, app: app, type: "BridgeDestroyed", [("bridge", bridgeJSON(final))])
            }
            return .noContent
        }
    }

    func addChannels(bridge bid: String, query: [String: String]) -> SimRESTResponse {
        guard let list = query["channel"], !list.isEmpty else { return .message(400, "channel is required") }
        let ids = list.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        return state.withLock { st in
            guard st.bridges[bid] != nil else { return .message(404, "Bridge not found") }
            for id in ids {
                guard let c = st.channels[id] else { return .message(400, "Channel not found") }
                guard c.inStasis else { return .message(422, "Channel not in Stasis application") }
            }
            for id in ids {
                if st.channels[id]?.bridgeID == bid { continue }
                if st.channels[id]?.bridgeID != nil { removeFromBridge(&st, id) }
                st.bridges[bid]!.channels.append(id)
                if let app = st.channels[id]?.app { st.bridges[bid]!.apps.insert(app) }
                st.channels[id]!.bridgeID = bid
                let c = st.channels[id]!
                emit(&st, app: c.app, type: "ChannelEnteredBridge", [("bridge", bridgeJSON(st.bridges[bid]!)), ("channel", channelJSON(c))])
            }
            startMediaIfPossible(&st, bridge: bid)
            return .noContent
        }
    }

    func removeChannels(bridge bid: String, query: [String: String]) -> SimRESTResponse {
        guard let list = query["channel"], !list.isEmpty else { return .message(400, "channel is required") }
        let ids = list.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        return state.withLock { st in
            guard st.bridges[bid] != nil else { return .message(404, "Bridge not found") }
            for id in ids {
                guard let c = st.channels[id] else { return .message(400, "Channel not found") }
                guard c.inStasis else { return .message(422, "Channel not in Stasis application") }
                guard c.bridgeID == bid else { return .message(422, "Channel not in this bridge") }
            }
            for id in ids { removeFromBridge(&st, id) }
            return .noContent
        }
    }
}
