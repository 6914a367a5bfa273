import FoundationEssentials

/// What the bridge tells the AI in `start` (docs/ai-protocol.md).
public struct AICallInfo: Sendable {
    public var callId: String
    public var channelId: String
    public var callerNumber: String
    public var callerName: String
    public var exten: String
    public var context: String
    public var campaign: String?
    public var apiKey: String?
    /// The `custom` channel variable: parsed as JSON when it is JSON, else kept as a string.
    public var custom: JSONValue
    public var args: [String]
    public var sampleRate: Int

    public init(callId: String, channelId: String, callerNumber: String, callerName: String, exten: String,
                context: String, campaign: String?, apiKey: String?, custom: JSONValue, args: [String], sampleRate: Int) {
        self.callId = callId
        self.channelId = channelId
        self.callerNumber = callerNumber
        self.callerName = callerName
        self.exten = exten
        self.context = context
        self.campaign = campaign
        self.apiKey = apiKey
        self.custom = custom
        self.args = args
        self.sampleRate = sampleRate
    }

    /// Reads the `custom` variable the way the protocol promises.
    public static func parseCustom(_ raw: String?) -> JSONValue {
        guard let raw else { return .null }
        return (try? JSONValue.parse(raw)) ?? .string(raw)
    }
}

/// Text messages the bridge sends to the AI.
public enum AIOutboundMessage: Sendable {
    case start(AICallInfo)
    case dtmf(digit: String, durationMs: Int)
    case mark(String)
    case stop(reason: String)

    public func json() -> String {
        let object: [String: JSONValue]
        switch self {
        case .start(let info):
            object = [
                "type": .string("start"), "version": .number(1),
                "callId": .string(info.callId), "channelId": .string(info.channelId),
                "caller": .object(["number": .string(info.callerNumber), "name": .string(info.callerName)]),
                "exten": .string(info.exten), "context": .string(info.context),
                "campaign": info.campaign.map(JSONValue.string) ?? .null,
                "apiKey": info.apiKey.map(JSONValue.string) ?? .null,
                "custom": info.custom,
                "args": .array(info.args.map(JSONValue.string)),
                "media": .object([
                    "encoding": .string("pcm16le"), "sampleRate": .number(Double(info.sampleRate)),
                    "channels": .number(1), "frameMs": .number(20),
                ]),
            ]
        case .dtmf(let digit, let durationMs):
            object = ["type": .string("dtmf"), "digit": .string(digit), "durationMs": .number(Double(durationMs))]
        case .mark(let name):
            object = ["type": .string("mark"), "name": .string(name)]
        case .stop(let reason):
            object = ["type": .string("stop"), "reason": .string(reason)]
        }
        return JSONValue.object(object).jsonString()
    }
}

/// Text messages the AI sends to the bridge.
public enum AIInboundMessage: Sendable, Equatable {
    case format(sampleRate: Int)
    case clear
    case mark(String)
    case setVariables([String: String])
    case end(sessionId: String?, variables: [String: String])
    case transfer(context: String, extension: String, priority: Int, jump: Bool, sessionId: String?, variables: [String: String])
    case hangup(sessionId: String?, variables: [String: String])

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case notJSON
        case noType
        case unknownType(String)
        case badField(String)

        public var description: String {
            switch self {
            case .notJSON: "not a JSON object"
            case .noType: "no \"type\""
            case .unknownType(let type): "unknown type \"\(type.prefix(40))\""
            case .badField(let field): "missing or invalid \"\(field)\""
            }
        }
    }

    public static func decode(_ text: String) throws(DecodeError) -> AIInboundMessage {
        guard let value = try? JSONValue.parse(text), case .object(let object) = value else { throw .notJSON }
        guard case .string(let type)? = object["type"] else { throw .noType }
        let variables = Self.variables(object["variables"])
        let sessionId = object["sessionId"].flatMap(Self.scalarString)
        switch type {
        case "format":
            guard let rate = object["sampleRate"]?.intValue, (8000...48000).contains(rate) else { throw .badField("sampleRate") }
            return .format(sampleRate: rate)
        case "clear":
            return .clear
        case "mark":
            guard let name = object["name"].flatMap(Self.scalarString) else { throw .badField("name") }
            return .mark(name)
        case "setVariables":
            return .setVariables(variables)
        case "end":
            return .end(sessionId: sessionId, variables: variables)
        case "transfer":
            guard let context = object["context"].flatMap(Self.scalarString), !context.isEmpty else { throw .badField("context") }
            guard let exten = object["extension"].flatMap(Self.scalarString), !exten.isEmpty else { throw .badField("extension") }
            let priority = object["priority"]?.intValue ?? 1
            return .transfer(context: context, extension: exten, priority: priority,
                             jump: object["jump"]?.boolValue ?? false, sessionId: sessionId, variables: variables)
        case "hangup":
            return .hangup(sessionId: sessionId, variables: variables)
        default:
            throw .unknownType(type)
        }
    }

    /// Variable values may arrive as numbers or booleans; Asterisk wants strings.
    private static func variables(_ value: JSONValue?) -> [String: String] {
        guard case .object(let object)? = value else { return [:] }
        var out: [String: String] = [:]
        for (name, value) in object where Self.isValidVariableName(name) {
            if let text = scalarString(value) { out[name] = text }
        }
        return out
    }

    private static func scalarString(_ value: JSONValue) -> String? {
        switch value {
        case .string(let s): s
        case .number(let n): n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .bool(let b): b ? "true" : "false"
        default: nil
        }
    }

    /// Dialplan variable names: letters, digits, underscore; at most 80 characters.
    static func isValidVariableName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 80
            && name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) }
    }
}
