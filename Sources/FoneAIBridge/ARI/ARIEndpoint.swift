import FoundationEssentials

/// Where ARI lives and how to authenticate, derived from `ari.url` and the credentials.
public struct ARIEndpoint: Sendable, Equatable {
    /// e.g. `http://127.0.0.1:8088/ari`, without credentials and without a trailing slash.
    public let restBase: String
    /// e.g. `ws://127.0.0.1:8088/ari/events?app=foneai`.
    public let eventsURL: String
    public let authorizationHeader: String
    public let appName: String
    /// `ws://host:port` (or `wss://`) of the Asterisk HTTP server, for media WebSockets.
    public let webSocketBase: String

    public init(url: String, username: String, password: String, appName: String) {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/ari") { base.removeLast(4) }
        restBase = base + "/ari"
        let wsBase: String
        if base.hasPrefix("https://") {
            wsBase = "wss://" + base.dropFirst("https://".count)
        } else if base.hasPrefix("http://") {
            wsBase = "ws://" + base.dropFirst("http://".count)
        } else {
            wsBase = base
        }
        webSocketBase = wsBase
        eventsURL = wsBase + "/ari/events?app=" + URLQuery.escape(appName) + "&subscribeAll=false"
        authorizationHeader = "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        self.appName = appName
    }
}

extension ARIEndpoint {
    /// Where Asterisk serves one WebSocket media channel (`MEDIA_WEBSOCKET_CONNECTION_ID`).
    public func mediaURL(connectionId: String) -> String {
        webSocketBase + "/media/" + URLQuery.escape(connectionId)
    }
}

/// Percent-encoding for query values (RFC 3986 unreserved characters pass through).
enum URLQuery {
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xF)]))
            }
        }
        return out
    }

    static func build(_ items: [(String, String?)]) -> String {
        let parts = items.compactMap { key, value in value.map { "\(key)=\(escape($0))" } }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}
