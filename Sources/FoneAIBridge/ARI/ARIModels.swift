import FoundationEssentials

/// The parts of ARI's JSON the bridge uses. Every field is optional so that a new Asterisk
/// version adding or dropping a field never makes an event undecodable.
public struct ARIChannel: Sendable, Decodable, Equatable {
    public var id: String
    public var name: String?
    public var state: String?
    public var caller: ARICallerID?
    public var dialplan: ARIDialplan?
    /// Only string values are kept; Asterisk sends every channel variable as a string.
    public var channelvars: [String: String]?

    public init(id: String, name: String? = nil, state: String? = nil, caller: ARICallerID? = nil,
                dialplan: ARIDialplan? = nil, channelvars: [String: String]? = nil) {
        self.id = id
        self.name = name
        self.state = state
        self.caller = caller
        self.dialplan = dialplan
        self.channelvars = channelvars
    }

    enum CodingKeys: String, CodingKey { case id, name, state, caller, dialplan, channelvars }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        state = try c.decodeIfPresent(String.self, forKey: .state)
        caller = try? c.decodeIfPresent(ARICallerID.self, forKey: .caller)
        dialplan = try? c.decodeIfPresent(ARIDialplan.self, forKey: .dialplan)
        channelvars = try? c.decodeIfPresent([String: String].self, forKey: .channelvars)
    }
}

public struct ARICallerID: Sendable, Decodable, Equatable {
    public var name: String?
    public var number: String?
}

public struct ARIDialplan: Sendable, Decodable, Equatable {
    public var context: String?
    public var exten: String?
    public var priority: Int?
}

public struct ARIBridge: Sendable, Decodable, Equatable {
    public var id: String
    public var channels: [String]?
}

public struct ARIApplication: Sendable, Decodable, Equatable {
    public var name: String?
    public var channelIds: [String]
    public var bridgeIds: [String]

    enum CodingKeys: String, CodingKey {
        case name
        case channelIds = "channel_ids"
        case bridgeIds = "bridge_ids"
    }
}

/// One message from the ARI events socket.
public struct ARIEvent: Sendable, Decodable {
    public var type: String
    public var application: String?
    public var channel: ARIChannel?
    public var bridge: ARIBridge?
    public var args: [String]?
    public var digit: String?
    public var durationMs: Int?
    public var cause: Int?

    enum CodingKeys: String, CodingKey {
        case type, application, channel, bridge, args, digit, cause
        case durationMs = "duration_ms"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        application = try? c.decodeIfPresent(String.self, forKey: .application)
        channel = try c.decodeIfPresent(ARIChannel.self, forKey: .channel)
        bridge = try? c.decodeIfPresent(ARIBridge.self, forKey: .bridge)
        args = try? c.decodeIfPresent([String].self, forKey: .args)
        digit = try? c.decodeIfPresent(String.self, forKey: .digit)
        durationMs = try? c.decodeIfPresent(Int.self, forKey: .durationMs)
        cause = try? c.decodeIfPresent(Int.self, forKey: .cause)
    }

    public static func decode(_ text: String) throws -> ARIEvent {
        try JSONDecoder().decode(ARIEvent.self, from: Data(text.utf8))
    }
}
