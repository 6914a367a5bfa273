import FoundationEssentials
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One problem in a configuration file. Never contains a secret value (such as the ARI password).
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dotted path of the setting, e.g. `rtpServer.port`; empty for file-level problems
    /// (unreadable file, JSON syntax).
    public let field: String
    public let problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { field.isEmpty ? problem : "\(field): \(problem)" }
}

/// Every problem found in a configuration (not only the first).
public struct ConfigLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    public let errors: [ConfigError]
    /// Warnings found along the way; an unknown key often explains a "missing" one
    /// (`ari.usrname` → `ari.username is required but missing`).
    public let warnings: [String]
    /// The file the configuration came from, when loaded from a file.
    public let path: String?

    public init(errors: [ConfigError], warnings: [String] = [], path: String? = nil) {
        self.errors = errors
        self.warnings = warnings
        self.path = path
    }

    /// All errors, then the warnings (each on its own line, marked "warning:").
    public var description: String {
        let source = path.map { "configuration file \($0)" } ?? "configuration"
        var text: String
        if errors.count == 1 {
            text = "\(source): \(errors[0])"
        } else {
            text = "\(source) has \(errors.count) problems:\n" + errors.map { "  - \($0)" }.joined(separator: "\n")
        }
        for warning in warnings { text += "\n  warning: \(warning)" }
        return text
    }
}

public struct ConfigLoadResult: Sendable, Equatable {
    public let config: BridgeConfig
    /// Things that work but are probably not what the user wants (unknown keys, risky values).
    public let warnings: [String]

    public init(config: BridgeConfig, warnings: [String]) {
        self.config = config
        self.warnings = warnings
    }
}

public enum ConfigLoader {
    /// The shipped default location.
    public static let defaultPath = "/etc/foneai/config.json"

    /// Reads and validates a configuration file. A missing or unreadable file is an error naming the path.
    public static func load(path: String) throws(ConfigLoadError) -> ConfigLoadResult {
        let text: String
        switch readFile(path) {
        case .success(let t): text = t
        case .failure(let failure):
            throw ConfigLoadError(errors: [ConfigError(field: "", problem: "cannot read \(path): \(failure.reason)")], path: path)
        }
        do {
            return try parse(text)
        } catch {
            throw ConfigLoadError(errors: error.errors, warnings: error.warnings, path: path)
        }
    }

    /// Validates configuration text (JSON with `//` and `/* */` comments and trailing commas allowed).
    public static func parse(_ text: String) throws(ConfigLoadError) -> ConfigLoadResult {
        let root: JSONValue
        do {
            root = try JSONValue.parse(text, allowComments: true)
        } catch {
            throw ConfigLoadError(errors: [ConfigError(field: "", problem: "invalid JSON at \(error)")])
        }
        var v = ConfigValidator()
        let config = v.validate(root)
        if let config, v.errors.isEmpty {
            return ConfigLoadResult(config: config, warnings: v.warnings)
        }
        throw ConfigLoadError(errors: v.errors, warnings: v.warnings)
    }

    /// Whether a string looks like a value the user forgot to fill in: `ARI_PASSWORD`, `WS_URL`,
    /// `API_KEY`, `<your password>`, "Replace with …".
    public static func looksLikePlaceholder(_ value: String) -> Bool {
        let s = value.trimmedWhitespace()
        if s.contains("<") && s.contains(">") { return true }
        if s.lowercased().contains("replace with") { return true }
        return isUpperSnakePlaceholder(s)
    }

    /// `^[A-Z][A-Z0-9_]*_(USERNAME|PASSWORD|URL|NAME|KEY|HOST|PORT)$`
    static func isUpperSnakePlaceholder(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard let first = u.first, first >= UInt8(ascii: "A"), first <= UInt8(ascii: "Z") else { return false }
        for b in u {
            let ok = (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == UInt8(ascii: "_")
            if !ok { return false }
        }
        for suffix in ["_USERNAME", "_PASSWORD", "_URL", "_NAME", "_KEY", "_HOST", "_PORT"] where s.hasSuffix(suffix) {
            return s.count > suffix.count
        }
        return false
    }

    struct ReadFailure: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
        static func errno(_ code: Int32) -> ReadFailure { ReadFailure(String(cString: strerror(code))) }
    }

    private static func readFile(_ path: String) -> Result<String, ReadFailure> {
        let fd = open(path, O_RDONLY)
        if fd < 0 { return .failure(.errno(errno)) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(.errno(errno))
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 16 << 20 { return .failure(ReadFailure("file is larger than 16 MiB")) }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return .failure(ReadFailure("not valid UTF-8 text"))
        }
        return .success(text)
    }
}

// MARK: - Validation

struct ConfigValidator {
    var errors: [ConfigError] = []
    var warnings: [String] = []

    static let sectionKeys: [String: [String]] = [
        "ari": ["url", "username", "password", "appName", "caFile", "reconnectMaxSeconds"],
        "rtpServer": ["port", "format", "host", "swap16", "socketType"],
        "asterisk": ["packetTimestampIncrement", "rtpPayloadType"],
        "ai": ["serverUrl", "caFile", "connectTimeoutMs", "connectAttempts", "maxBufferedAudioMs", "playoutOnEndMs", "protocol"],
        "log": ["logLevel"],
        "calls": ["maxCalls", "drainTimeoutSeconds", "idPrefix"],
        "control": ["socketPath"],
        "media": ["transport", "realtimePriority"],
    ]
    static let sectionOrder = ["ari", "rtpServer", "asterisk", "ai", "log", "calls", "control", "media"]
    static let requiredFields: [String: [String]] = [
        "ari": ["url", "username", "password", "appName"],
        "rtpServer": ["port", "host"],
        "ai": ["serverUrl"],
    ]
    static let secretFields: Set<String> = ["ari.password"]

    mutating func error(_ field: String, _ problem: String) {
        errors.append(ConfigError(field: field, problem: problem))
    }

    mutating func warn(_ field: String, _ text: String) {
        warnings.append("\(field): \(text)")
    }

    /// A short, quoted rendering of a non-secret value for messages.
    static func show(_ s: String) -> String {
        let clipped = s.count > 40 ? String(s.prefix(40)) + "…" : s
        return BridgeConfig.quoted(clipped)
    }

    mutating func validate(_ root: JSONValue) -> BridgeConfig? {
        guard case .object(let top) = root else {
            error("", "the configuration must be a JSON object ({ … }), got \(root.typeDescription)")
            return nil
        }
        checkUnknownKeys(top, known: Self.sectionOrder, prefix: "")

        // Sections are checked in file order so errors come out in the order a user reads them.
        // ari
        let ariObj = section(top, "ari")
        let ariURL = string(ariObj, "ari", "url")
        let username = string(ariObj, "ari", "username")
        let password = string(ariObj, "ari", "password")
        let appName = string(ariObj, "ari", "appName")
        let ariCA = optionalPath(ariObj, "ari", "caFile")
        let reconnectMax = double(ariObj, "ari", "reconnectMaxSeconds", default: 10, range: 0.1...3600)
        if let ariURL { checkURL(ariURL, field: "ari.url", schemes: ["http", "https"]) }
        if let appName, !appName.isEmpty {
            let ok = appName.utf8.allSatisfy { b in
                (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                    || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
                    || b == UInt8(ascii: ".")
            }
            if !ok { error("ari.appName", "may contain only letters, digits, '-', '_' and '.', got \(Self.show(appName))") }
        }
        if ariCA != nil, let ariURL, ariURL.lowercased().hasPrefix("http://") {
            warn("ari.caFile", "is ignored because ari.url is http://, not https://")
        }

        // rtpServer
        let rtpObj = section(top, "rtpServer")
        let rtpHost = string(rtpObj, "rtpServer", "host")
        let rtpPort = integer(rtpObj, "rtpServer", "port", default: nil, range: 1...65535, allowNumericString: true)
        let format = enumeration(rtpObj, "rtpServer", "format", default: InboundAudioFormat.slin16)
        let swap16 = bool(rtpObj, "rtpServer", "swap16", default: true)
        let socketType = enumeration(rtpObj, "rtpServer", "socketType", default: SocketType.udp4)
        if let rtpHost, !rtpHost.isEmpty, let socketType { checkHost(rtpHost, socketType: socketType) }
        if let format, let swap16, format.isLinear, !swap16 {
            warn("rtpServer.swap16", "is false: the caller's audio goes to the AI big-endian, as Asterisk sends it, "
                + "although the AI protocol specifies little-endian PCM")
        }

        // asterisk
        let asteriskObj = section(top, "asterisk")
        let tsIncrement = integer(asteriskObj, "asterisk", "packetTimestampIncrement", default: 160, range: 1...65535)
        let payloadType = integer(asteriskObj, "asterisk", "rtpPayloadType", default: 11, range: 0...127)
        if let payloadType {
            if payloadType >= 35 {
                warn("asterisk.rtpPayloadType", "Asterisk silently drops dynamic payload types on the way back; "
                    + "use 11 (8 kHz L16), 0 (μ-law) or 8 (A-law)")
            }
            if !AsteriskSettings.supportedPayloadTypes.contains(payloadType) {
                error("asterisk.rtpPayloadType", "payload type \(payloadType) is not supported; use 11 (8 kHz L16, big-endian), "
                    + "10 (the same), 0 (μ-law) or 8 (A-law)")
            }
        }
        if let tsIncrement, tsIncrement != 160 {
            warn("asterisk.packetTimestampIncrement", "is \(tsIncrement), but 20 ms packets at 8 kHz "
                + "(payload types 0, 8, 10, 11) advance the timestamp by 160")
        }

        // ai
        let aiObj = section(top, "ai")
        let serverURL = string(aiObj, "ai", "serverUrl")
        let aiCA = optionalPath(aiObj, "ai", "caFile")
        let connectTimeout = integer(aiObj, "ai", "connectTimeoutMs", default: 3000, range: 1...120_000)
        let connectAttempts = integer(aiObj, "ai", "connectAttempts", default: 2, range: 1...20)
        let maxBuffered = integer(aiObj, "ai", "maxBufferedAudioMs", default: 10000, range: 20...600_000)
        let playoutOnEnd = integer(aiObj, "ai", "playoutOnEndMs", default: 5000, range: 0...600_000)
        var proto = string(aiObj, "ai", "protocol", required: false) ?? "native"
        if !AISettings.supportedProtocols.contains(proto) {
            error("ai.protocol", "unknown protocol \(Self.show(proto)); supported: \(AISettings.supportedProtocols.joined(separator: ", "))")
            proto = "native"
        }
        if let serverURL { checkURL(serverURL, field: "ai.serverUrl", schemes: ["ws", "wss"]) }
        if aiCA != nil, let serverURL, serverURL.lowercased().hasPrefix("ws://") {
            warn("ai.caFile", "is ignored because ai.serverUrl is ws://, not wss://")
        }

        // log
        let logObj = section(top, "log")
        var logLevel: Logger.Level? = .info
        if let raw = string(logObj, "log", "logLevel", required: false) {
            let lowered = raw.lowercased()
            if let level = Logger.Level(rawValue: lowered) {
                logLevel = level
            } else if lowered == "warn" {
                logLevel = .warning
            } else {
                let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
                error("log.logLevel", "unknown level \(Self.show(raw)); use one of \(names)")
                logLevel = nil
            }
        }

        // calls
        let callsObj = section(top, "calls")
        let maxCalls = integer(callsObj, "calls", "maxCalls", default: 500, range: 1...100_000)
        let drainTimeout = integer(callsObj, "calls", "drainTimeoutSeconds", default: 30, range: 0...86_400)
        let idPrefix = string(callsObj, "calls", "idPrefix", required: false) ?? "foneai"
        let prefixOK = !idPrefix.isEmpty && idPrefix.utf8.count <= 16 && idPrefix.utf8.allSatisfy { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == UInt8(ascii: "-")
        }
        if !prefixOK {
            error("calls.idPrefix", "must be 1–16 characters of lowercase letters, digits and '-', got \(Self.show(idPrefix))")
        }

        // control
        let controlObj = section(top, "control")
        let socketPath = string(controlObj, "control", "socketPath", required: false) ?? "/run/foneai/control.sock"
        if !socketPath.hasPrefix("/") {
            error("control.socketPath", "must be an absolute path, got \(Self.show(socketPath))")
        } else if socketPath.utf8.count > 107 {
            error("control.socketPath", "is \(socketPath.utf8.count) bytes long; a Unix socket path can have at most 107")
        }

        // media
        let mediaObj = section(top, "media")
        let transportName = string(mediaObj, "media", "transport", required: false) ?? MediaTransport.rtp.rawValue
        let transport = MediaTransport(rawValue: transportName)
        if transport == nil {
            error("media.transport", "unknown transport \(Self.show(transportName)); supported: rtp, websocket")
        }
        let realtimePriority = integer(mediaObj, "media", "realtimePriority", default: 0, range: 0...99)

        guard errors.isEmpty,
              let transport,
              let ariURL, let username, let password, let appName, let reconnectMax,
              let rtpHost, let rtpPort, let format, let swap16, let socketType,
              let tsIncrement, let payloadType,
              let serverURL, let connectTimeout, let connectAttempts, let maxBuffered, let playoutOnEnd,
              let logLevel, let maxCalls, let drainTimeout, let realtimePriority
        else { return nil }

        return BridgeConfig(
            ari: ARISettings(url: ariURL, username: username, password: password, appName: appName,
                             caFile: ariCA, reconnectMaxSeconds: reconnectMax),
            rtpServer: RTPServerSettings(host: rtpHost, port: rtpPort, format: format, swap16: swap16, socketType: socketType),
            asterisk: AsteriskSettings(packetTimestampIncrement: tsIncrement, rtpPayloadType: payloadType),
            ai: AISettings(serverUrl: serverURL, caFile: aiCA, connectTimeoutMs: connectTimeout,
                           connectAttempts: connectAttempts, maxBufferedAudioMs: maxBuffered,
                           playoutOnEndMs: playoutOnEnd, protocol: proto),
            log: LogSettings(logLevel: logLevel),
            calls: CallSettings(maxCalls: maxCalls, drainTimeoutSeconds: drainTimeout, idPrefix: idPrefix),
            control: ControlSettings(socketPath: socketPath),
            media: MediaSettings(transport: transport, realtimePriority: realtimePriority)
        )
    }

    // MARK: sections and keys

    /// The section object; `[:]` when absent (an error when it has required fields), `nil` when of
    /// the wrong type (already reported).
    mutating func section(_ top: [String: JSONValue], _ name: String) -> [String: JSONValue]? {
        guard let value = top[name], !value.isNull else {
            if let required = Self.requiredFields[name] {
                error(name, "missing section (it needs \(required.joined(separator: ", ")))")
                return nil
            }
            return [:]
        }
        guard case .object(let obj) = value else {
            error(name, "expected an object ({ … }), got \(value.typeDescription)")
            return nil
        }
        checkUnknownKeys(obj, known: Self.sectionKeys[name] ?? [], prefix: name + ".")
        return obj
    }

    mutating func checkUnknownKeys(_ obj: [String: JSONValue], known: [String], prefix: String) {
        for key in obj.keys.sorted() where !known.contains(key) {
            let keyText = Self.show(key)
            let what = prefix.isEmpty ? "unknown section \(keyText)" : "unknown setting \(keyText)"
            var text = "\(what) is ignored"
            if let suggestion = Self.closest(key, in: known) { text += "; did you mean \"\(suggestion)\"?" }
            let field = prefix.isEmpty ? key : prefix + key
            warnings.append("\(field): \(text)")
        }
    }

    static func closest(_ key: String, in candidates: [String]) -> String? {
        let lower = key.lowercased()
        var best: (String, Int)?
        for c in candidates {
            let d = editDistance(lower, c.lowercased())
            if d <= max(1, min(3, c.count / 3)), best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var prev = Array(0...y.count)
        var cur = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            cur[0] = i
            for j in 1...y.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[y.count]
    }

    // MARK: typed values

    /// Looks up a value; `nil` (with an error if required) when missing or null.
    mutating func lookup(_ obj: [String: JSONValue]?, _ sectionName: String, _ key: String, required: Bool) -> JSONValue?? {
        guard let obj else { return .some(nil) }  // section missing or wrong type: already reported
        guard let value = obj[key], !value.isNull else {
            if required {
                if obj[key] != nil {
                    error("\(sectionName).\(key)", "is required, got null")
                } else {
                    error("\(sectionName).\(key)", "is required but missing")
                }
                return .some(nil)
            }
            return nil  // absent: use the default
        }
        return .some(value)
    }

    /// A string; required ones must be non-empty. Placeholders are rejected.
    mutating func string(_ obj: [String: JSONValue]?, _ sectionName: String, _ key: String, required: Bool = true) -> String? {
        let field = "\(sectionName).\(key)"
        guard let found = lookup(obj, sectionName, key, required: required) else { return nil }
        guard let value = found else { return nil }
        guard case .string(let s) = value else {
            error(field, "expected a string, got \(value.typeDescription)")
            return nil
        }
        if s.trimmedWhitespace().isEmpty {
            error(field, "must not be empty")
            return nil
        }
        if ConfigLoader.looksLikePlaceholder(s) {
            error(field, "looks like a placeholder; set the real value")
            return nil
        }
        if s != s.trimmedWhitespace(), !Self.secretFields.contains(field) {
            warn(field, "has leading or trailing spaces")
        }
        return s
    }

    /// An optional file path (a CA bundle); `nil` when absent.
    mutating func optionalPath(_ obj: [String: JSONValue]?, _ sectionName: String, _ key: String) -> String? {
        string(obj, sectionName, key, required: false)
    }

    /// An integer. A numeric string ("7777") is accepted when `allowNumericString`.
    /// Returns `nil` on error or when required and missing.
    mutating func integer(_ obj: [String: JSONValue]?, _ sectionName: String, _ key: String, default def: Int?,
                          range: ClosedRange<Int>, allowNumericString: Bool = false) -> Int? {
        let field = "\(sectionName).\(key)"
        guard let found = lookup(obj, sectionName, key, required: def == nil) else { return def }
        guard let value = found else { return nil }
        let number: Double
        switch value {
        case .number(let d):
            number = d
        case .string(let s) where allowNumericString:
            let t = s.trimmedWhitespace()
            guard !t.isEmpty, t.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let d = Double(t) else {
                if ConfigLoader.looksLikePlaceholder(s) {
                    error(field, "looks like a placeholder; set the real value")
                } else {
                    error(field, "expected a whole number, got \(Self.show(s))")
                }
                return nil
            }
            number = d
        default:
            error(field, "expected a \(allowNumericString ? "whole number (or a string of digits)" : "whole number"), got \(value.typeDescription)")
            return nil
        }
        guard number.isFinite, number.rounded(.towardZero) == number else {
            error(field, "must be a whole number, got \(number)")
            return nil
        }
        guard number >= Double(range.lowerBound), number <= Double(range.upperBound) else {
            error(field, "must be \(range.lowerBound)–\(range.upperBound), got \(JSONValue.number(number).jsonString())")
            return nil
        }
        return Int(number)
    }

    mutating func double(_ obj: [String: JSONValue]?, _ sectionName: String, _ key: String, default def: Double,
                         range: ClosedRange<Double>) -> Double? {
        let field = "\(sectionName).\(key)"
        guard let found = lookup(obj, sectionName, key, required: false) else { return def }
        guard let value = found else { return nil }
        guard case .number(let d) = value else {
            error(field, "expected a number, got \(value.typeDescription)")
            return nil
        }
        guard range.contains(d) else {
            error(field, "must be \(JSONValue.number(range.lowerBound).jsonString())–\(JSONValue.number(range.upperBound).jsonString()), got \(JSONValue.number(d).jsonString())")
            return nil
        }
        return d
    }

    mutating func bool(_ obj: [String: JSONValue]?, _ sectionName: String, _ key: String, default def: Bool) -> Bool? {
        let field = "\(sectionName).\(key)"
        guard let found = lookup(obj, sectionName, key, required: false) else { return def }
        guard let value = found else { return nil }
        guard case .bool(let b) = value else {
            var text = "expected true or false, got \(value.typeDescription)"
            if case .string(let s) = value, s == "true" || s == "false" { text += " (write \(s) without quotes)" }
            error(field, text)
            return nil
        }
        return b
    }

    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ obj: [String: JSONValue]?, _ sectionName: String,
                                                                  _ key: String, default def: E) -> E? where E.RawValue == String {
        let field = "\(sectionName).\(key)"
        guard let found = lookup(obj, sectionName, key, required: false) else { return def }
        guard let value = found else { return nil }
        let names = E.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .string(let s) = value else {
            error(field, "expected a string (one of \(names)), got \(value.typeDescription)")
            return nil
        }
        guard let e = E(rawValue: s) ?? E(rawValue: s.lowercased()) else {
            error(field, "unknown value \(Self.show(s)); use one of \(names)")
            return nil
        }
        return e
    }

    // MARK: URLs and addresses

    mutating func checkURL(_ url: String, field: String, schemes: [String]) {
        let expected = schemes.map { "\($0)://" }.joined(separator: " or ")
        guard let parsed = SimpleURL(url) else {
            error(field, "is not a valid URL; expected \(expected)host[:port][/path]")
            return
        }
        guard schemes.contains(parsed.scheme) else {
            error(field, "must start with \(expected), got scheme \(Self.show(parsed.scheme))")
            return
        }
        if parsed.hasUserInfo {
            error(field, field == "ari.url"
                ? "must not contain credentials; use ari.username and ari.password"
                : "must not contain credentials (user:password@)")
            return
        }
        if ConfigLoader.looksLikePlaceholder(parsed.host) {
            error(field, "looks like a placeholder; set the real value")
        }
        if parsed.isSecure, IPAddressText.isIPv4(parsed.host) || IPAddressText.isIPv6(parsed.host) {
            // The WebSocket client sends the host as TLS SNI, which must not be an IP address,
            // and verifies the certificate against it: a host name is needed.
            error(field, "\(parsed.scheme):// needs the host name the server's certificate is issued for, not an IP address")
        }
    }

    mutating func checkHost(_ host: String, socketType: SocketType) {
        let field = "rtpServer.host"
        if host == "localhost" { return }
        switch socketType {
        case .udp4:
            if IPAddressText.isIPv4(host) {
                if host == "0.0.0.0" {
                    warn(field, "0.0.0.0 is also given to Asterisk as external_host (where to send RTP); "
                        + "use an address Asterisk can reach")
                }
                return
            }
            if IPAddressText.isIPv6(host) {
                error(field, "\(Self.show(host)) is an IPv6 address but rtpServer.socketType is udp4; set socketType to udp6")
            } else {
                error(field, "must be an IPv4 address such as 127.0.0.1 (socketType udp4), got \(Self.show(host))")
            }
        case .udp6:
            var h = host
            if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
            if IPAddressText.isIPv6(h) {
                if h != host { error(field, "write the IPv6 address without brackets") }
                return
            }
            if IPAddressText.isIPv4(host) {
                error(field, "\(Self.show(host)) is an IPv4 address but rtpServer.socketType is udp6; set socketType to udp4")
            } else {
                error(field, "must be an IPv6 address such as ::1 (socketType udp6), got \(Self.show(host))")
            }
        }
    }
}

/// A minimal URL split, enough to validate `scheme://host[:port][/path][?query]`.
public struct SimpleURL: Sendable, Equatable {
    /// Lowercased scheme, e.g. "ws".
    public let scheme: String
    /// Host without brackets (an IPv6 literal is returned without `[` `]`).
    public let host: String
    public let port: Int?
    /// Path plus query and fragment, "" or starting with "/" or "?".
    public let pathAndQuery: String
    public let hasUserInfo: Bool

    /// `nil` when the text is not of the form `scheme://host[:port]…` (or contains spaces).
    public init?(_ text: String) {
        guard !text.contains(where: { $0.isWhitespace }), let sep = text.firstRange(of: "://") else { return nil }
        let scheme = text[..<sep.lowerBound]
        guard let first = scheme.first, first.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == ".") })
        else { return nil }
        let rest = text[sep.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        var userInfo = false
        if let at = authority.lastIndex(of: "@") {
            userInfo = true
            authority = authority[authority.index(after: at)...]
        }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
            guard IPAddressText.isIPv6(String(host)) else { return nil }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                host = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                host = authority
            }
            guard !host.contains(":"), !host.contains("["), !host.contains("]") else { return nil }
        }
        guard !host.isEmpty else { return nil }
        var port: Int?
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let p = Int(portText), (1...65535).contains(p) else { return nil }
            port = p
        }
        self.scheme = scheme.lowercased()
        self.host = String(host)
        self.port = port
        self.pathAndQuery = String(rest[authorityEnd...])
        self.hasUserInfo = userInfo
    }

    /// The explicit port, or the scheme's default (80 for http/ws, 443 for https/wss).
    public var effectivePort: Int? {
        if let port { return port }
        switch scheme {
        case "http", "ws": return 80
        case "https", "wss": return 443
        default: return nil
        }
    }

    public var isSecure: Bool { scheme == "https" || scheme == "wss" }
}

/// Textual IP address checks.
public enum IPAddressText {
    /// Dotted-quad IPv4, e.g. "127.0.0.1" (no leading zeros beyond a single "0").
    public static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(p), v <= 255 else { return false }
            if p.count > 1 && p.hasPrefix("0") { return false }
        }
        return true
    }

    /// An IPv6 literal such as "::1" or "fe80::1" (zone ids like "%eth0" are accepted).
    public static func isIPv6(_ s: String) -> Bool {
        var text = Substring(s)
        if let percent = text.firstIndex(of: "%") {
            let zone = text[text.index(after: percent)...]
            guard !zone.isEmpty else { return false }
            text = text[..<percent]
        }
        guard text.contains(":") else { return false }
        var addr = in6_addr()
        return String(text).withCString { inet_pton(AF_INET6, $0, &addr) } == 1
    }
}

extension String {
    /// The string without leading and trailing whitespace (spaces, tabs, newlines).
    func trimmedWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let last = lastIndex(where: { !$0.isWhitespace })!
        return String(self[first...last])
    }
}
