import AsyncHTTPClient
import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1

/// Typed ARI REST calls. One instance per ARI endpoint; a reload that changes the endpoint makes
/// a new one. Safe to share between calls: AsyncHTTPClient pools the connections.
public struct ARIClient: Sendable {
    public let endpoint: ARIEndpoint
    private let http: HTTPClient
    private let timeout: TimeAmount

    public init(endpoint: ARIEndpoint, http: HTTPClient, timeout: TimeAmount = .seconds(5)) {
        self.endpoint = endpoint
        self.http = http
        self.timeout = timeout
    }

    // MARK: Channels

    /// The value of a channel variable, or nil when it is unset (Asterisk answers 404 then).
    public func getVariable(channel: String, name: String) async throws -> String? {
        do {
            let body = try await send(.GET, "/channels/\(URLQuery.escape(channel))/variable", query: [("variable", name)])
            struct Value: Decodable { var value: String? }
            return try decode(Value.self, body).value
        } catch ARIError.status(404, _) {
            return nil
        }
    }

    public func setVariable(channel: String, name: String, value: String) async throws {
        _ = try await send(.POST, "/channels/\(URLQuery.escape(channel))/variable",
                           query: [("variable", name), ("value", value)])
    }

    /// Creates the UDP externalMedia channel whose RTP goes to `externalHost` (host:port).
    public func createExternalMedia(channelId: String, externalHost: String, format: String) async throws -> ARIChannel {
        let body = try await send(.POST, "/channels/externalMedia", query: [
            ("app", endpoint.appName), ("external_host", externalHost), ("format", format),
            ("encapsulation", "rtp"), ("transport", "udp"), ("direction", "both"), ("channelId", channelId),
        ])
        return try decode(ARIChannel.self, body)
    }

    /// Creates a WebSocket media channel (Asterisk 20.16+, 22.6+, 23+) that the bridge then
    /// connects to at `/media/<MEDIA_WEBSOCKET_CONNECTION_ID>`.
    public func createWebSocketMedia(channelId: String) async throws -> ARIChannel {
        let body = try await send(.POST, "/channels/externalMedia", query: [
            ("app", endpoint.appName), ("transport", "websocket"), ("encapsulation", "none"),
            ("connection_type", "server"), ("format", "slin16"), ("channelId", channelId),
        ])
        return try decode(ARIChannel.self, body)
    }

    /// Continues the channel in the dialplan: at the next priority, or at context/extension/priority.
    public func continueInDialplan(channel: String, context: String? = nil, extension: String? = nil, priority: Int? = nil) async throws {
        _ = try await send(.POST, "/channels/\(URLQuery.escape(channel))/continue", query: [
            ("context", context), ("extension", `extension`), ("priority", priority.map(String.init)),
        ])
    }

    public func hangup(channel: String) async throws {
        _ = try await send(.DELETE, "/channels/\(URLQuery.escape(channel))", query: [])
    }

    public func listChannels() async throws -> [ARIChannel] {
        try decode([ARIChannel].self, try await send(.GET, "/channels", query: []))
    }

    // MARK: Bridges

    public func createBridge(id: String) async throws {
        _ = try await send(.POST, "/bridges", query: [("type", "mixing"), ("bridgeId", id), ("name", id)])
    }

    public func addChannels(bridge: String, channels: [String]) async throws {
        _ = try await send(.POST, "/bridges/\(URLQuery.escape(bridge))/addChannel",
                           query: [("channel", channels.joined(separator: ","))])
    }

    public func deleteBridge(id: String) async throws {
        _ = try await send(.DELETE, "/bridges/\(URLQuery.escape(id))", query: [])
    }

    public func listBridges() async throws -> [ARIBridge] {
        try decode([ARIBridge].self, try await send(.GET, "/bridges", query: []))
    }

    /// The Stasis application: every channel and bridge it is subscribed to, including ones a
    /// previous run of the bridge left behind.
    public func getApplication() async throws -> ARIApplication {
        try decode(ARIApplication.self, try await send(.GET, "/applications/\(URLQuery.escape(endpoint.appName))", query: []))
    }

    /// Asks Asterisk whether ARI answers with these credentials; used to explain a refused
    /// events socket (the WebSocket client only says "upgrade failed").
    public func ping() async throws {
        _ = try await send(.GET, "/asterisk/ping", query: [])
    }

    // MARK: Plumbing

    private func send(_ method: HTTPMethod, _ path: String, query: [(String, String?)]) async throws -> ByteBuffer {
        var request = HTTPClientRequest(url: endpoint.restBase + path + URLQuery.build(query))
        request.method = method
        request.headers.add(name: "Authorization", value: endpoint.authorizationHeader)
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(request, timeout: timeout)
            body = try await response.body.collect(upTo: 4 << 20)
        } catch {
            throw ARIError.transport("\(method) \(path): \(error)")
        }
        guard (200..<300).contains(response.status.code) else {
            throw ARIError.status(Int(response.status.code), Self.message(in: body) ?? response.status.reasonPhrase)
        }
        return body
    }

    private static func message(in body: ByteBuffer) -> String? {
        struct Message: Decodable { var message: String? }
        return (try? JSONDecoder().decode(Message.self, from: Data(body.readableBytesView)))?.message
    }

    private func decode<T: Decodable>(_ type: T.Type, _ body: ByteBuffer) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
        } catch {
            throw ARIError.badResponse("cannot decode \(T.self)")
        }
    }
}
