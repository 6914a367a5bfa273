import FoundationEssentials
import Logging
import Testing

@testable import FoneAIBridge

/// The vendor's sample configuration, byte for byte (comments, port as a string).
let vendorSample = """
    {
    "ari": {
    "url": "http://127.0.0.1:8088", // <-- Replace with an available HTTP port (e.g., 8088)
    "username": "asterisk", // <-- Replace with ARI Username
    "password": "secret", // <-- Replace with ARI Password
    "appName": "foneai" // <-- Replace with App name (e.g., foneai)
    },
    "rtpServer": {
    "port": "7777",
    "format": "slin16",
    "host": "127.0.0.1",
    "swap16": true,
    "socketType": "udp4"
    },
    "asterisk": {
    "packetTimestampIncrement": 160,
    "rtpPayloadType": 11
    },
    "ai": {
    "serverUrl": "ws://127.0.0.1:9000/stream" // <-- Replace with Websocket URL
    },
    "log": {
    "logLevel": "info"
    }
    }

    """

/// A valid configuration as a JSON object, to be modified by each test.
func baseConfig(password: String = "S3cr3t-Pa55") -> [String: JSONValue] {
    [
        "ari": ["url": "http://127.0.0.1:8088", "username": "asterisk", "password": .string(password), "appName": "foneai"],
        "rtpServer": ["port": 7777, "format": "slin16", "host": "127.0.0.1", "swap16": true, "socketType": "udp4"],
        "asterisk": ["packetTimestampIncrement": 160, "rtpPayloadType": 11],
        "ai": ["serverUrl": "ws://127.0.0.1:9000/stream"],
        "log": ["logLevel": "info"],
    ]
}

extension Dictionary where Key == String, Value == JSONValue {
    /// Sets `section.key` (or removes it with `nil`).
    func with(_ section: String, _ key: String, _ value: JSONValue?) -> [String: JSONValue] {
        var copy = self
        var obj = copy[section]?.objectValue ?? [:]
        obj[key] = value
        copy[section] = .object(obj)
        return copy
    }

    var text: String { JSONValue.object(self).jsonString() }
}

/// Parses and returns the errors (empty when it loaded).
func configErrors(_ text: String) -> [ConfigError] {
    do {
        _ = try ConfigLoader.parse(text)
        return []
    } catch {
        return error.errors
    }
}

func configErrors(_ object: [String: JSONValue]) -> [ConfigError] { configErrors(object.text) }

@Suite struct ConfigTests {
    @Test func vendorSampleLoadsUnchanged() throws {
        let result = try ConfigLoader.parse(vendorSample)
        let c = result.config
        #expect(c.ari == ARISettings(url: "http://127.0.0.1:8088", username: "asterisk", password: "secret", appName: "foneai"))
        #expect(c.rtpServer == RTPServerSettings(host: "127.0.0.1", port: 7777, format: .slin16, swap16: true, socketType: .udp4))
        #expect(c.asterisk == AsteriskSettings(packetTimestampIncrement: 160, rtpPayloadType: 11))
        #expect(c.ai == AISettings(serverUrl: "ws://127.0.0.1:9000/stream"))
        #expect(c.log.logLevel == .info)
        #expect(c.calls == CallSettings())
        #expect(c.control == ControlSettings())
        #expect(result.warnings.isEmpty)
        #expect(c.ai.connectTimeoutMs == 3000 && c.ai.connectAttempts == 2 && c.ai.maxBufferedAudioMs == 10000)
        #expect(c.ai.playoutOnEndMs == 5000 && c.ai.protocol == "native")
        #expect(c.ari.reconnectMaxSeconds == 10 && c.ari.caFile == nil)
        #expect(c.calls.maxCalls == 500 && c.calls.drainTimeoutSeconds == 30 && c.calls.idPrefix == "foneai")
        #expect(c.control.socketPath == "/run/foneai/control.sock")
        #expect(c.rtpServer.hostAndPort == "127.0.0.1:7777")
    }

    @Test func shippedDefaultFileIsTheVendorSample() throws {
        // Tests run from the package root.
        let path = "etc/foneai/config.json"
        let result = try ConfigLoader.load(path: path)
        #expect(result.config.ari.appName == "foneai")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(String(decoding: bytes, as: UTF8.self) == vendorSample)
    }

    @Test func loadsEveryOptionalSetting() throws {
        let text = """
            {
              "ari": {"url": "https://pbx.example.com:8089/", "username": "u", "password": "p", "appName": "my-app_1.x",
                      "caFile": "/etc/ssl/ca.pem", "reconnectMaxSeconds": 2.5},
              "rtpServer": {"port": 40000, "format": "ulaw", "host": "::1", "swap16": false, "socketType": "udp6"},
              "asterisk": {"packetTimestampIncrement": 160, "rtpPayloadType": 0},
              "ai": {"serverUrl": "wss://ai.example.com/stream?x=1", "caFile": "/etc/ssl/ai.pem", "connectTimeoutMs": 500,
                     "connectAttempts": 3, "maxBufferedAudioMs": 2000, "playoutOnEndMs": 0, "protocol": "native"},
              "log": {"logLevel": "debug"},
              "calls": {"maxCalls": 10, "drainTimeoutSeconds": 5, "idPrefix": "pbx-1"},
              "control": {"socketPath": "/tmp/foneai.sock"},
            }
            """
        let result = try ConfigLoader.parse(text)
        let c = result.config
        #expect(c.ari.caFile == "/etc/ssl/ca.pem" && c.ari.reconnectMaxSeconds == 2.5)
        #expect(c.rtpServer == RTPServerSettings(host: "::1", port: 40000, format: .ulaw, swap16: false, socketType: .udp6))
        #expect(c.rtpServer.hostAndPort == "[::1]:40000")
        #expect(c.asterisk.rtpPayloadType == 0)
        #expect(c.ai == AISettings(serverUrl: "wss://ai.example.com/stream?x=1", caFile: "/etc/ssl/ai.pem", connectTimeoutMs: 500,
                                   connectAttempts: 3, maxBufferedAudioMs: 2000, playoutOnEndMs: 0))
        #expect(c.log.logLevel == .debug)
        #expect(c.calls == CallSettings(maxCalls: 10, drainTimeoutSeconds: 5, idPrefix: "pbx-1"))
        #expect(c.control.socketPath == "/tmp/foneai.sock")
        // swap16 false only matters for linear formats.
        #expect(result.warnings.isEmpty)
    }

    @Test(arguments: ["trace", "debug", "info", "notice", "warning", "error", "critical", "INFO", "warn"])
    func acceptsEveryLogLevel(_ level: String) throws {
        let c = try ConfigLoader.parse(baseConfig().with("log", "logLevel", .string(level)).text).config
        let expected: Logger.Level = level == "warn" ? .warning : Logger.Level(rawValue: level.lowercased())!
        #expect(c.log.logLevel == expected)
    }

    @Test func optionalSectionsMayBeAbsent() throws {
        var o = baseConfig()
        o["asterisk"] = nil
        o["log"] = nil
        let c = try ConfigLoader.parse(o.text).config
        #expect(c.asterisk == AsteriskSettings())
        #expect(c.log.logLevel == .info)
    }

    // MARK: wrong types

    @Test(arguments: [
        ("ari", "url", JSONValue.number(1), "expected a string, got a number"),
        ("ari", "username", JSONValue.bool(true), "expected a string, got a boolean"),
        ("ari", "password", JSONValue.number(1234), "expected a string, got a number"),
        ("ari", "appName", JSONValue.array([]), "expected a string, got an array"),
        ("ari", "caFile", JSONValue.object([:]), "expected a string, got an object"),
        ("ari", "reconnectMaxSeconds", JSONValue.string("10"), "expected a number, got a string"),
        ("rtpServer", "port", JSONValue.bool(true), "expected a whole number (or a string of digits), got a boolean"),
        ("rtpServer", "host", JSONValue.number(127), "expected a string, got a number"),
        ("rtpServer", "format", JSONValue.number(16), "expected a string (one of slin16, slin, ulaw, alaw), got a number"),
        ("rtpServer", "swap16", JSONValue.string("true"), "expected true or false, got a string (write true without quotes)"),
        ("rtpServer", "swap16", JSONValue.number(1), "expected true or false, got a number"),
        ("rtpServer", "socketType", JSONValue.bool(false), "expected a string (one of udp4, udp6), got a boolean"),
        ("asterisk", "packetTimestampIncrement", JSONValue.string("160"), "expected a whole number, got a string"),
        ("asterisk", "rtpPayloadType", JSONValue.string("11"), "expected a whole number, got a string"),
        ("ai", "serverUrl", JSONValue.null, "is required, got null"),
        ("ai", "connectTimeoutMs", JSONValue.string("3000"), "expected a whole number, got a string"),
        ("ai", "connectAttempts", JSONValue.bool(true), "expected a whole number, got a boolean"),
        ("ai", "maxBufferedAudioMs", JSONValue.array([1]), "expected a whole number, got an array"),
        ("ai", "playoutOnEndMs", JSONValue.object([:]), "expected a whole number, got an object"),
        ("ai", "protocol", JSONValue.number(1), "expected a string, got a number"),
        ("log", "logLevel", JSONValue.number(3), "expected a string, got a number"),
        ("calls", "maxCalls", JSONValue.string("x"), "expected a whole number, got a string"),
        ("calls", "drainTimeoutSeconds", JSONValue.bool(true), "expected a whole number, got a boolean"),
        ("calls", "idPrefix", JSONValue.number(1), "expected a string, got a number"),
        ("control", "socketPath", JSONValue.array([]), "expected a string, got an array"),
    ])
    func wrongTypeIsNamed(_ section: String, _ key: String, _ value: JSONValue, _ problem: String) {
        let errors = configErrors(baseConfig().with(section, key, value))
        #expect(errors == [ConfigError(field: "\(section).\(key)", problem: problem)])
    }

    @Test func wrongSectionType() {
        var o = baseConfig()
        o["rtpServer"] = "udp"
        o["log"] = [1]
        let errors = configErrors(o)
        #expect(errors.contains(ConfigError(field: "rtpServer", problem: "expected an object ({ … }), got a string")))
        #expect(errors.contains(ConfigError(field: "log", problem: "expected an object ({ … }), got an array")))
        #expect(errors.count == 2)
    }

    @Test func topLevelMustBeAnObject() {
        #expect(configErrors("[1]").map(\.problem) == ["the configuration must be a JSON object ({ … }), got an array"])
    }

    // MARK: ranges and values

    @Test(arguments: [
        ("rtpServer", "port", JSONValue.number(70000), "must be 1–65535, got 70000"),
        ("rtpServer", "port", JSONValue.number(0), "must be 1–65535, got 0"),
        ("rtpServer", "port", JSONValue.string("70000"), "must be 1–65535, got 70000"),
        ("rtpServer", "port", JSONValue.number(77.5), "must be a whole number, got 77.5"),
        ("rtpServer", "port", JSONValue.string("77a"), "expected a whole number, got \"77a\""),
        ("rtpServer", "port", JSONValue.string(""), "expected a whole number, got \"\""),
        ("asterisk", "packetTimestampIncrement", JSONValue.number(0), "must be 1–65535, got 0"),
        ("asterisk", "rtpPayloadType", JSONValue.number(128), "must be 0–127, got 128"),
        ("asterisk", "rtpPayloadType", JSONValue.number(-1), "must be 0–127, got -1"),
        ("ai", "connectTimeoutMs", JSONValue.number(0), "must be 1–120000, got 0"),
        ("ai", "connectAttempts", JSONValue.number(0), "must be 1–20, got 0"),
        ("ai", "maxBufferedAudioMs", JSONValue.number(10), "must be 20–600000, got 10"),
        ("ai", "playoutOnEndMs", JSONValue.number(-5), "must be 0–600000, got -5"),
        ("ari", "reconnectMaxSeconds", JSONValue.number(0), "must be 0.1–3600, got 0"),
        ("calls", "maxCalls", JSONValue.number(0), "must be 1–100000, got 0"),
        ("calls", "drainTimeoutSeconds", JSONValue.number(-1), "must be 0–86400, got -1"),
        ("media", "realtimePriority", JSONValue.number(100), "must be 0–99, got 100"),
        ("media", "realtimePriority", JSONValue.number(-1), "must be 0–99, got -1"),
    ])
    func outOfRangeIsNamed(_ section: String, _ key: String, _ value: JSONValue, _ problem: String) {
        #expect(configErrors(baseConfig().with(section, key, value)) == [ConfigError(field: "\(section).\(key)", problem: problem)])
    }

    @Test func portErrorDescription() {
        let errors = configErrors(baseConfig().with("rtpServer", "port", 70000))
        #expect(errors.map(\.description) == ["rtpServer.port: must be 1–65535, got 70000"])
    }

    @Test func unknownFormatSocketTypeLevelProtocol() {
        let o = baseConfig()
            .with("rtpServer", "format", "opus")
            .with("rtpServer", "socketType", "tcp")
            .with("log", "logLevel", "verbose")
            .with("ai", "protocol", "sip")
            .with("media", "transport", "carrier-pigeon")
        let errors = configErrors(o)
        #expect(errors.contains(ConfigError(field: "rtpServer.format", problem: "unknown value \"opus\"; use one of slin16, slin, ulaw, alaw")))
        #expect(errors.contains(ConfigError(field: "rtpServer.socketType", problem: "unknown value \"tcp\"; use one of udp4, udp6")))
        #expect(errors.contains(ConfigError(field: "log.logLevel",
                                            problem: "unknown level \"verbose\"; use one of trace, debug, info, notice, warning, error, critical")))
        #expect(errors.contains(ConfigError(field: "ai.protocol", problem: "unknown protocol \"sip\"; supported: native, twilio")))
        #expect(errors.contains(ConfigError(field: "media.transport", problem: "unknown transport \"carrier-pigeon\"; supported: rtp, websocket")))
        #expect(errors.count == 5)
    }

    @Test func realtimePriorityIsOffUnlessSet() throws {
        #expect(try ConfigLoader.parse(baseConfig().text).config.media.realtimePriority == 0)
        let set = try ConfigLoader.parse(baseConfig().with("media", "realtimePriority", .number(10)).text)
        #expect(set.config.media.realtimePriority == 10)
        #expect(set.config.redactedDescription.contains("media.realtimePriority = 10"))
    }

    @Test(arguments: [11, 10, 0, 8])
    func supportedPayloadTypes(_ pt: Int) throws {
        let result = try ConfigLoader.parse(baseConfig().with("asterisk", "rtpPayloadType", .number(Double(pt))).text)
        #expect(result.config.asterisk.rtpPayloadType == pt)
        #expect(result.warnings.isEmpty)
    }

    @Test func unsupportedStaticPayloadTypeIsAnErrorWithoutTheDynamicWarning() {
        do {
            _ = try ConfigLoader.parse(baseConfig().with("asterisk", "rtpPayloadType", 3).text)
            Issue.record("expected an error")
        } catch {
            #expect(error.errors.count == 1)
            #expect(error.errors[0].field == "asterisk.rtpPayloadType")
            #expect(error.errors[0].problem.contains("not supported"))
            for pt in ["11", "10", "0", "8"] { #expect(error.errors[0].problem.contains(pt)) }
        }
    }

    @Test func dynamicPayloadTypeIsAnErrorAndExplainsWhy() {
        var v = ConfigValidator()
        guard case .object(let root) = try! JSONValue.parse(baseConfig().with("asterisk", "rtpPayloadType", 118).text) else { return }
        _ = v.validate(.object(root))
        #expect(v.errors.map(\.field) == ["asterisk.rtpPayloadType"])
        #expect(v.warnings == ["asterisk.rtpPayloadType: Asterisk silently drops dynamic payload types on the way back; use 11 (8 kHz L16), 0 (μ-law) or 8 (A-law)"])
    }

    @Test func unusualTimestampIncrementIsAWarning() throws {
        let result = try ConfigLoader.parse(baseConfig().with("asterisk", "packetTimestampIncrement", 320).text)
        #expect(result.config.asterisk.packetTimestampIncrement == 320)
        #expect(result.warnings.count == 1)
        #expect(result.warnings[0].hasPrefix("asterisk.packetTimestampIncrement: is 320"))
        #expect(result.warnings[0].contains("160"))
    }

    @Test func swap16FalseWithLinearFormatWarns() throws {
        let result = try ConfigLoader.parse(baseConfig().with("rtpServer", "swap16", false).text)
        #expect(result.config.rtpServer.swap16 == false)
        #expect(result.warnings.count == 1 && result.warnings[0].hasPrefix("rtpServer.swap16:"))
    }

    // MARK: required fields and sections

    @Test(arguments: [("ari", "url"), ("ari", "username"), ("ari", "password"), ("ari", "appName"),
                      ("rtpServer", "port"), ("rtpServer", "host"), ("ai", "serverUrl")])
    func missingRequiredField(_ section: String, _ key: String) {
        #expect(configErrors(baseConfig().with(section, key, nil)) == [ConfigError(field: "\(section).\(key)", problem: "is required but missing")])
    }

    @Test(arguments: [("ari", "url, username, password, appName"), ("rtpServer", "port, host"), ("ai", "serverUrl")])
    func missingRequiredSection(_ section: String, _ fields: String) {
        var o = baseConfig()
        o[section] = nil
        #expect(configErrors(o) == [ConfigError(field: section, problem: "missing section (it needs \(fields))")])
    }

    @Test func emptyStringsAreErrors() {
        let o = baseConfig().with("ari", "username", "").with("ari", "password", "  ").with("rtpServer", "host", "")
        let errors = configErrors(o)
        #expect(errors == [
            ConfigError(field: "ari.username", problem: "must not be empty"),
            ConfigError(field: "ari.password", problem: "must not be empty"),
            ConfigError(field: "rtpServer.host", problem: "must not be empty"),
        ])
    }

    @Test func everyProblemIsReportedAtOnce() {
        var o = baseConfig()
            .with("rtpServer", "port", 70000)
            .with("rtpServer", "format", "mp3")
            .with("ari", "password", "ARI_PASSWORD")
            .with("ai", "serverUrl", "http://x")
            .with("calls", "idPrefix", "Bad Prefix")
        o["log"] = "loud"
        let error = #expect(throws: ConfigLoadError.self) { try ConfigLoader.parse(o.text) }
        #expect(error?.errors.map(\.field) == ["ari.password", "rtpServer.port", "rtpServer.format", "ai.serverUrl", "log", "calls.idPrefix"])
        #expect(error?.description.hasPrefix("configuration has 6 problems:\n  - ari.password: ") == true)
    }

    // MARK: placeholders

    @Test(arguments: ["ARI_USERNAME", "ARI_PASSWORD", "ARI_URL", "WS_URL", "APP_NAME", "API_KEY", "MY_ARI_HOST", "RTP_PORT",
                      "<your password>", "Replace with ARI Password", "<--replace-->"])
    func placeholdersAreRejected(_ placeholder: String) {
        for (section, key) in [("ari", "username"), ("ari", "password"), ("ari", "appName"), ("ari", "url"), ("ai", "serverUrl"), ("rtpServer", "host")] {
            let errors = configErrors(baseConfig().with(section, key, .string(placeholder)))
            #expect(errors == [ConfigError(field: "\(section).\(key)", problem: "looks like a placeholder; set the real value")],
                    "\(section).\(key) = \(placeholder)")
        }
    }

    @Test func placeholderPortAndURLHost() {
        #expect(configErrors(baseConfig().with("rtpServer", "port", "RTP_PORT")) ==
            [ConfigError(field: "rtpServer.port", problem: "looks like a placeholder; set the real value")])
        #expect(configErrors(baseConfig().with("ari", "url", "http://ARI_HOST:8088")) ==
            [ConfigError(field: "ari.url", problem: "looks like a placeholder; set the real value")])
    }

    @Test(arguments: ["asterisk", "secret", "foneai", "API", "_KEY", "ApiKey_KEY", "KEY", "my_password", "a<b"])
    func ordinaryValuesAreNotPlaceholders(_ value: String) {
        #expect(!ConfigLoader.looksLikePlaceholder(value))
    }

    // MARK: URLs and hosts

    @Test(arguments: [
        ("ari", "url", "ws://127.0.0.1:8088", "must start with http:// or https://, got scheme \"ws\""),
        ("ari", "url", "127.0.0.1:8088", "is not a valid URL; expected http:// or https://host[:port][/path]"),
        ("ari", "url", "http://", "is not a valid URL; expected http:// or https://host[:port][/path]"),
        ("ari", "url", "http://host:99999", "is not a valid URL; expected http:// or https://host[:port][/path]"),
        ("ari", "url", "http://host:8088 ", "is not a valid URL; expected http:// or https://host[:port][/path]"),
        ("ari", "url", "http://user:pw@host:8088", "must not contain credentials; use ari.username and ari.password"),
        ("ai", "serverUrl", "http://127.0.0.1:9000", "must start with ws:// or wss://, got scheme \"http\""),
        ("ai", "serverUrl", "ws://[::1:9000/x", "is not a valid URL; expected ws:// or wss://host[:port][/path]"),
        ("ai", "serverUrl", "wss://a:b@ai/x", "must not contain credentials (user:password@)"),
    ])
    func badURLs(_ section: String, _ key: String, _ url: String, _ problem: String) {
        #expect(configErrors(baseConfig().with(section, key, .string(url))) == [ConfigError(field: "\(section).\(key)", problem: problem)])
    }

    @Test(arguments: ["http://127.0.0.1:8088", "https://pbx.example.com", "HTTP://PBX:8088/ari/", "http://[::1]:8088", "http://h/x?y=1#z"])
    func goodARIURLs(_ url: String) throws {
        #expect(try ConfigLoader.parse(baseConfig().with("ari", "url", .string(url)).text).config.ari.url == url)
    }

    @Test(arguments: [
        ("udp4", "127.0.0.1", nil),
        ("udp4", "10.1.2.3", nil),
        ("udp4", "localhost", nil),
        ("udp6", "::1", nil),
        ("udp6", "fe80::1%eth0", nil),
        ("udp6", "localhost", nil),
        ("udp4", "::1", "\"::1\" is an IPv6 address but rtpServer.socketType is udp4; set socketType to udp6"),
        ("udp6", "127.0.0.1", "\"127.0.0.1\" is an IPv4 address but rtpServer.socketType is udp6; set socketType to udp4"),
        ("udp4", "256.0.0.1", "must be an IPv4 address such as 127.0.0.1 (socketType udp4), got \"256.0.0.1\""),
        ("udp4", "pbx.example.com", "must be an IPv4 address such as 127.0.0.1 (socketType udp4), got \"pbx.example.com\""),
        ("udp6", "[::1]", "write the IPv6 address without brackets"),
        ("udp6", "::g", "must be an IPv6 address such as ::1 (socketType udp6), got \"::g\""),
    ] as [(String, String, String?)])
    func hostMustMatchSocketType(_ socketType: String, _ host: String, _ problem: String?) {
        let errors = configErrors(baseConfig().with("rtpServer", "socketType", .string(socketType)).with("rtpServer", "host", .string(host)))
        #expect(errors == (problem.map { [ConfigError(field: "rtpServer.host", problem: $0)] } ?? []))
    }

    @Test func wildcardHostWarns() throws {
        let result = try ConfigLoader.parse(baseConfig().with("rtpServer", "host", "0.0.0.0").text)
        #expect(result.warnings.count == 1 && result.warnings[0].hasPrefix("rtpServer.host: 0.0.0.0"))
    }

    @Test func caFileWithPlainSchemeWarns() throws {
        let result = try ConfigLoader.parse(baseConfig().with("ari", "caFile", "/ca.pem").with("ai", "caFile", "/ca.pem").text)
        #expect(result.warnings == [
            "ari.caFile: is ignored because ari.url is http://, not https://",
            "ai.caFile: is ignored because ai.serverUrl is ws://, not wss://",
        ])
    }

    // MARK: other fields

    @Test(arguments: [("foneai", true), ("pbx-01", true), ("a", true), ("abcdefghijklmnop", true), ("abcdefghijklmnopq", false),
                      ("Foneai", false), ("fone_ai", false), ("fone ai", false)])
    func idPrefixRules(_ prefix: String, _ ok: Bool) {
        let errors = configErrors(baseConfig().with("calls", "idPrefix", .string(prefix)))
        #expect(errors.isEmpty == ok)
        if !ok { #expect(errors.first?.field == "calls.idPrefix") }
    }

    @Test func appNameRules() {
        #expect(configErrors(baseConfig().with("ari", "appName", "my app")).map(\.field) == ["ari.appName"])
        #expect(configErrors(baseConfig().with("ari", "appName", "a&b")).map(\.field) == ["ari.appName"])
    }

    @Test func socketPathRules() {
        #expect(configErrors(baseConfig().with("control", "socketPath", "run/x.sock")) ==
            [ConfigError(field: "control.socketPath", problem: "must be an absolute path, got \"run/x.sock\"")])
        let long = "/" + String(repeating: "a", count: 107)
        #expect(configErrors(baseConfig().with("control", "socketPath", .string(long))).map(\.field) == ["control.socketPath"])
        #expect(configErrors(baseConfig().with("control", "socketPath", .string(String(long.dropLast())))).isEmpty)
    }

    // MARK: unknown keys

    @Test func unknownKeysAreWarningsWithSuggestions() throws {
        var o = baseConfig().with("ari", "usrname", "x").with("rtpServer", "swap", true).with("ai", "serverURL", "ws://x")
        o["logs"] = ["logLevel": "info"]
        o["extra"] = 1
        let result = try ConfigLoader.parse(o.text)
        #expect(result.warnings == [
            "extra: unknown section \"extra\" is ignored",
            "logs: unknown section \"logs\" is ignored; did you mean \"log\"?",
            "ari.usrname: unknown setting \"usrname\" is ignored; did you mean \"username\"?",
            "rtpServer.swap: unknown setting \"swap\" is ignored; did you mean \"swap16\"?",
            "ai.serverURL: unknown setting \"serverURL\" is ignored; did you mean \"serverUrl\"?",
        ])
    }

    // MARK: syntax errors

    @Test func syntaxErrorNamesLineAndColumn() {
        let text = vendorSample.replacing("\"port\": \"7777\",", with: "\"port\": \"7777\"")
        let errors = configErrors(text)
        #expect(errors.count == 1)
        #expect(errors[0].field == "")
        #expect(errors[0].problem == "invalid JSON at line 10:1: expected ',' or '}' after an object member, found '\"'")
    }

    @Test func emptyFileIsASyntaxError() {
        #expect(configErrors("").map(\.problem) == ["invalid JSON at line 1:1: the document is empty"])
    }

    // MARK: files

    @Test func missingFileNamesThePath() {
        let path = "/nonexistent/foneai/config.json"
        let error = #expect(throws: ConfigLoadError.self) { try ConfigLoader.load(path: path) }
        #expect(error?.errors == [ConfigError(field: "", problem: "cannot read \(path): No such file or directory")])
        #expect(error?.path == path)
        #expect(error?.description == "configuration file \(path): cannot read \(path): No such file or directory")
    }

    @Test func directoryIsUnreadable() {
        let error = #expect(throws: ConfigLoadError.self) { try ConfigLoader.load(path: "/tmp") }
        #expect(error?.errors.first?.problem == "cannot read /tmp: Is a directory")
    }

    @Test func fileErrorsCarryThePath() throws {
        let path = "/tmp/foneai-config-test-\(UInt32.random(in: 0...UInt32.max)).json"
        try Data(baseConfig().with("rtpServer", "port", 0).text.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: ConfigLoadError.self) { try ConfigLoader.load(path: path) }
        #expect(error?.description == "configuration file \(path): rtpServer.port: must be 1–65535, got 0")
    }

    // MARK: secrets

    @Test func noErrorOrWarningContainsThePassword() {
        let password = "Pa55-w0rd-zz"
        let variants: [[String: JSONValue]] = [
            baseConfig(password: password).with("rtpServer", "port", 0),
            baseConfig(password: password).with("ari", "pasword", .string(password)),
            baseConfig(password: password + " ").with("ari", "url", "ftp://x"),
            baseConfig(password: "<" + password + ">"),
            baseConfig(password: password).with("ari", "url", .string("http://u:\(password)@host")),
            baseConfig(password: password).with("ai", "serverUrl", .string("wss://u:\(password)@ai")),
            baseConfig(password: "PA55_W0RD_PASSWORD"),
        ]
        for o in variants {
            let text = o.text
            do {
                let result = try ConfigLoader.parse(text)
                for w in result.warnings { #expect(!w.contains(password) && !w.contains("PA55_W0RD")) }
                #expect(!result.config.redactedDescription.contains(password))
                #expect(!"\(result.config)".contains(password))
            } catch {
                #expect(!error.description.contains(password) && !error.description.contains("PA55_W0RD"), "\(error)")
            }
        }
        // A syntax error right inside the password.
        let broken = vendorSample.replacing("\"secret\"", with: "\"secret")
        #expect(!configErrors(broken).description.contains("secret"))
        let unquoted = vendorSample.replacing("\"secret\"", with: "secret")
        #expect(!configErrors(unquoted).description.contains("secret"))
    }

    @Test func descriptionsMaskThePassword() throws {
        let c = try ConfigLoader.parse(baseConfig(password: "hunter2").text).config
        #expect(c.redactedDescription.contains("ari.password = ********"))
        #expect(!c.redactedDescription.contains("hunter2"))
        #expect(!"\(c)".contains("hunter2"))
        #expect(!String(reflecting: c).contains("hunter2"))
        #expect(!"\(c.ari)".contains("hunter2"))
        var dumped = ""
        dump(c, to: &dumped)
        #expect(!dumped.contains("hunter2"))
        #expect(BridgeConfig.redactURL("http://u:p@h:1/x") == "http://********@h:1/x")
    }

    // MARK: helpers

    @Test func simpleURLParts() {
        let u = SimpleURL("wss://[fe80::1]:9443/path?q=1")
        #expect(u?.scheme == "wss" && u?.host == "fe80::1" && u?.port == 9443 && u?.pathAndQuery == "/path?q=1")
        #expect(u?.isSecure == true)
        #expect(SimpleURL("ws://h")?.effectivePort == 80)
        #expect(SimpleURL("https://h")?.effectivePort == 443)
        #expect(SimpleURL("ws://h:0") == nil)
        #expect(SimpleURL("ws:/h") == nil)
        #expect(SimpleURL("://h") == nil)
    }

    @Test func ipAddressText() {
        #expect(IPAddressText.isIPv4("0.0.0.0") && IPAddressText.isIPv4("255.255.255.255"))
        #expect(!IPAddressText.isIPv4("1.2.3") && !IPAddressText.isIPv4("01.2.3.4") && !IPAddressText.isIPv4("1.2.3.4.5"))
        #expect(IPAddressText.isIPv6("::") && IPAddressText.isIPv6("2001:db8::1") && IPAddressText.isIPv6("::ffff:1.2.3.4"))
        #expect(!IPAddressText.isIPv6("1.2.3.4") && !IPAddressText.isIPv6(":::") && !IPAddressText.isIPv6("fe80::1%"))
    }

    @Test func inboundFormatFacts() {
        #expect(InboundAudioFormat.slin16.sampleRate == 16000 && InboundAudioFormat.slin16.payloadBytesPer20ms == 640)
        #expect(InboundAudioFormat.slin.sampleRate == 8000 && InboundAudioFormat.slin.payloadBytesPer20ms == 320)
        #expect(InboundAudioFormat.ulaw.payloadBytesPer20ms == 160 && InboundAudioFormat.alaw.payloadBytesPer20ms == 160)
        #expect(InboundAudioFormat.allCases.map(\.asteriskPayloadType) == [118, 10, 0, 8])
    }
}

@Suite struct ConfigErrorReportTests {
    @Test func typoWarningsTravelWithTheErrors() {
        let o = baseConfig().with("ari", "username", nil).with("ari", "usrname", "asterisk")
        let error = #expect(throws: ConfigLoadError.self) { try ConfigLoader.parse(o.text) }
        #expect(error?.errors == [ConfigError(field: "ari.username", problem: "is required but missing")])
        #expect(error?.warnings == ["ari.usrname: unknown setting \"usrname\" is ignored; did you mean \"username\"?"])
        #expect(error?.description == """
            configuration: ari.username: is required but missing
              warning: ari.usrname: unknown setting "usrname" is ignored; did you mean "username"?
            """)
    }
}
