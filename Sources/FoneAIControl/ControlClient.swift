// Async client for the foneai-bridge control socket (used by foneaictl and tests).

import FoundationEssentials
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum ControlClientError: Error, Sendable, CustomStringConvertible {
    /// No socket file (ENOENT) or nobody listening on it (ECONNREFUSED).
    case daemonNotRunning(path: String)
    /// EACCES/EPERM on the socket or its directory.
    case permissionDenied(path: String)
    /// The server answered `ok: false`.
    case server(code: ControlErrorCode, message: String)
    /// The server sent something that is not a valid response, or closed early.
    case protocolError(String)
    /// No (complete) response within the request timeout.
    case timedOut
    /// Any other failure to connect.
    case connectionFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .daemonNotRunning(let path):
            return "foneai-bridge is not running (no control socket at \(path))"
        case .permissionDenied(let path):
            return "permission denied on \(path) (are you in group foneai?)"
        case .server(let code, let message):
            return "\(message) (\(code))"
        case .protocolError(let message):
            return "protocol error: \(message)"
        case .timedOut:
            return "timed out waiting for foneai-bridge to answer"
        case .connectionFailed(let path, let reason):
            return "cannot connect to \(path): \(reason)"
        }
    }
}

/// A client for the control socket. Every request uses its own short connection; `statsStream`
/// keeps one open until the stream is cancelled or dropped.
public final class ControlClient: Sendable {
    public let socketPath: String
    /// Default time to wait for a response (connect + request + response).
    public let requestTimeout: Duration
    private let eventLoopGroup: any EventLoopGroup

    /// Largest response line the client accepts (a `calls` result with thousands of calls is big).
    static let maxResponseLength = 64 * 1024 * 1024

    public init(
        socketPath: String = ControlProtocol.defaultSocketPath,
        requestTimeout: Duration = .seconds(10),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.socketPath = socketPath
        self.requestTimeout = requestTimeout
        self.eventLoopGroup = eventLoopGroup
    }

    // MARK: Typed commands

    public func status() async throws -> StatusInfo {
        try await request(.status, as: StatusInfo.self)
    }

    public func calls() async throws -> [CallInfo] {
        try await request(.calls, as: CallsResult.self).calls
    }

    public func stats() async throws -> StatsSnapshot {
        try await request(.stats, as: StatsSnapshot.self)
    }

    /// One snapshot right away, then one per interval, until the consumer stops iterating
    /// (the connection is then closed) or the daemon goes away (the stream throws).
    public func statsStream(intervalMs: Int = ControlProtocol.defaultFollowIntervalMs) -> AsyncThrowingStream<StatsSnapshot, any Error> {
        let args = ControlArguments(follow: true, intervalMs: intervalMs)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await self.stream(.stats, arguments: args, as: StatsSnapshot.self) { snapshot in
                        continuation.yield(snapshot)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Starts draining: new calls are rejected, live calls continue. With `wait`, answers only when
    /// the calls are gone or `timeout` passed (the request timeout is extended accordingly).
    public func drain(wait: Bool = false, timeout: Duration? = nil) async throws -> DrainResult {
        let seconds = timeout.map(Self.seconds(of:))
        let requestTimeout: Duration?
        if wait {
            requestTimeout = timeout.map { $0 + self.requestTimeout }  // nil: wait as long as it takes
        } else {
            requestTimeout = self.requestTimeout
        }
        return try await request(.drain, arguments: DrainRequest(wait: wait, timeoutSeconds: seconds).arguments,
                                 as: DrainResult.self, timeout: requestTimeout)
    }

    public func undrain() async throws -> UndrainResult {
        try await request(.undrain, as: UndrainResult.self)
    }

    /// Hangs up a live call. Throws `.server(code: .notFound, ...)` if there is no such call.
    @discardableResult
    public func end(callId: String) async throws -> EndCallResult {
        try await request(.end, arguments: ControlArguments(callId: callId), as: EndCallResult.self)
    }

    /// Reloads the configuration (like SIGHUP) and returns the outcome; a failed reload is
    /// a result with `ok == false`, not an error.
    public func reload() async throws -> ReloadInfo {
        try await request(.reload, arguments: nil, as: ReloadInfo.self, timeout: requestTimeout + .seconds(20))
    }

    // MARK: Generic requests

    /// Sends one request and decodes the single response's `result` as `Result`, waiting at most
    /// `requestTimeout`.
    public func request<Result: Codable & Sendable>(
        _ command: ControlCommand,
        arguments: ControlArguments? = nil,
        as type: Result.Type = Result.self
    ) async throws -> Result {
        try await request(command, arguments: arguments, as: type, timeout: requestTimeout)
    }

    /// Sends one request and decodes the single response's `result`; `timeout == nil` waits forever.
    public func request<Result: Codable & Sendable>(
        _ command: ControlCommand,
        arguments: ControlArguments?,
        as type: Result.Type,
        timeout: Duration?
    ) async throws -> Result {
        var result: Result?
        try await exchange(command, arguments: arguments, timeout: timeout) { (value: Result) in
            result = value
            return false
        }
        guard let result else {
            throw ControlClientError.protocolError("connection closed before a response arrived")
        }
        return result
    }

    /// Sends one request and calls `onResult` for every response line (streaming commands).
    /// Returns when the server closes the connection; cancel the task to stop.
    public func stream<Result: Codable & Sendable>(
        _ command: ControlCommand,
        arguments: ControlArguments?,
        as type: Result.Type,
        onResult: (Result) async throws -> Void
    ) async throws {
        try await exchange(command, arguments: arguments, timeout: nil) { (value: Result) in
            try await onResult(value)
            return true
        }
    }

    // MARK: Internals

    private typealias Connection = NIOAsyncChannel<ControlLineFrame, ByteBuffer>

    /// `onResult` returns whether to keep reading.
    private func exchange<Result: Codable & Sendable>(
        _ command: ControlCommand,
        arguments: ControlArguments?,
        timeout: Duration?,
        onResult: (Result) async throws -> Bool
    ) async throws {
        let connection = try await connect()
        let channel = connection.channel
        let timer: Scheduled<Void>? = timeout.map { timeout in
            channel.eventLoop.scheduleTask(in: Self.timeAmount(timeout)) {
                channel.pipeline.fireErrorCaught(ControlClientError.timedOut)
                channel.close(promise: nil)
            }
        }
        defer { timer?.cancel() }

        try await withTaskCancellationHandler {
            try await connection.executeThenClose { inbound, outbound in
                let request = ControlRequest(id: 1, command: command, args: arguments)
                try await outbound.write(ControlJSON.encodeLine(request, allocator: channel.allocator))
                for try await frame in inbound {
                    guard case .line(let line) = frame else {
                        throw ControlClientError.protocolError("response line too long")
                    }
                    if line.readableBytes == 0 { continue }
                    let response: ControlResponse<Result>
                    do {
                        response = try ControlJSON.decode(ControlResponse<Result>.self, from: line)
                    } catch {
                        // Maybe an error response whose shape is fine but whose result we could not decode.
                        if let failure = try? ControlJSON.decode(ControlResponse<NoResult>.self, from: line),
                           let body = failure.error {
                            throw ControlClientError.server(code: body.code, message: body.message)
                        }
                        throw ControlClientError.protocolError("cannot decode response: \(error)")
                    }
                    if let body = response.error, !response.ok {
                        throw ControlClientError.server(code: body.code, message: body.message)
                    }
                    guard let result = response.result else {
                        throw ControlClientError.protocolError("response without result")
                    }
                    if try await !onResult(result) { return }
                }
            }
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    private func connect() async throws -> Connection {
        do {
            return try await ClientBootstrap(group: eventLoopGroup)
                .connectTimeout(.seconds(5))
                .connect(unixDomainSocketPath: socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(ControlLineDecoder(maxLength: Self.maxResponseLength)))
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw Self.mapConnectError(error, path: socketPath)
        }
    }

    static func mapConnectError(_ error: any Error, path: String) -> ControlClientError {
        if let errno = errnoCode(of: error) {
            switch errno {
            case ENOENT, ECONNREFUSED, ENOTDIR:
                return .daemonNotRunning(path: path)
            case EACCES, EPERM:
                return .permissionDenied(path: path)
            default:
                return .connectionFailed(path: path, reason: String(cString: strerror(errno)))
            }
        }
        return .connectionFailed(path: path, reason: "\(error)")
    }

    private static func errnoCode(of error: any Error) -> Int32? {
        if let io = error as? IOError { return io.errnoCode }
        if let multi = error as? NIOConnectionError {
            for failure in multi.connectionErrors {
                if let code = errnoCode(of: failure.error) { return code }
            }
            if let dns = multi.dnsAAAAError ?? multi.dnsAError { return errnoCode(of: dns) }
        }
        return nil
    }

    static func seconds(of duration: Duration) -> Double {
        let (s, atto) = duration.components
        return Double(s) + Double(atto) / 1e18
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (s, atto) = duration.components
        return .nanoseconds(s * 1_000_000_000 + atto / 1_000_000_000)
    }
}
