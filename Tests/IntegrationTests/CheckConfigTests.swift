import Foundation
import Testing

/// `foneai-bridge --check-config` on the real binary: the vendor sample loads as-is, and each kind
/// of mistake is reported with the field's name, never with the password.
@Suite struct CheckConfigTests {
    static let vendorSample = """
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

    func check(_ text: String) throws -> (Int32, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("check-\(UUID().uuidString).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try runBridgeCommand(["--check-config", path])
    }

    @Test func vendorSampleLoadsUnchanged() throws {
        let (status, output) = try check(Self.vendorSample)
        #expect(status == 0, "\(output)")
        #expect(output.contains("OK"))
    }

    @Test func shippedConfigIsTheVendorSample() throws {
        let shipped = DaemonProcess.binDirectory.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("etc/foneai/config.json").path
        let (status, output) = try runBridgeCommand(["--check-config", shipped])
        #expect(status == 0, "\(output)")
    }

    @Test(arguments: [
        ("\"port\": \"7777\"", "\"port\": \"seventy\"", "rtpServer.port"),
        ("\"port\": \"7777\"", "\"port\": 70000", "rtpServer.port"),
        ("\"format\": \"slin16\"", "\"format\": \"opus\"", "rtpServer.format"),
        ("\"swap16\": true", "\"swap16\": \"yes\"", "rtpServer.swap16"),
        ("\"socketType\": \"udp4\"", "\"socketType\": \"tcp\"", "rtpServer.socketType"),
        ("\"rtpPayloadType\": 11", "\"rtpPayloadType\": \"eleven\"", "asterisk.rtpPayloadType"),
        ("\"username\": \"asterisk\"", "\"username\": \"ARI_USERNAME\"", "ari.username"),
        ("\"serverUrl\": \"ws://127.0.0.1:9000/stream\"", "\"serverUrl\": \"WS_URL\"", "ai.serverUrl"),
        ("\"url\": \"http://127.0.0.1:8088\"", "\"url\": 8088", "ari.url"),
        ("\"logLevel\": \"info\"", "\"logLevel\": \"loud\"", "log.logLevel"),
        ("\"appName\": \"foneai\"", "\"appName\": \"\"", "ari.appName"),
        ("\"serverUrl\": \"ws://127.0.0.1:9000/stream\"", "\"serverUrl\": \"wss://10.1.2.3/stream\"", "ai.serverUrl"),
    ])
    func mistakeNamesTheField(original: String, replacement: String, field: String) throws {
        let text = Self.vendorSample.replacingOccurrences(of: original, with: replacement)
        #expect(text != Self.vendorSample)
        let (status, output) = try check(text)
        #expect(status != 0)
        #expect(output.contains(field), "\(output)")
        #expect(!output.contains("secret"))
    }

    @Test func syntaxErrorGivesThePosition() throws {
        let (status, output) = try check("{\n\"ari\": {\n\"url\": \"http://x\",,\n}")
        #expect(status != 0)
        #expect(output.contains("line 3"), "\(output)")
    }

    @Test func missingFileIsNamed() throws {
        let (status, output) = try runBridgeCommand(["--check-config", "/nonexistent/foneai.json"])
        #expect(status != 0)
        #expect(output.contains("/nonexistent/foneai.json"))
    }

    @Test func dynamicPayloadTypeWarns() throws {
        let (_, output) = try check(Self.vendorSample.replacingOccurrences(of: "\"rtpPayloadType\": 11", with: "\"rtpPayloadType\": 118"))
        #expect(output.lowercased().contains("rtppayloadtype"), "\(output)")
    }
}
