// The control socket server: NDJSON over a Unix stream socket (docs/control-protocol.md).

import FoneAIControl
import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum ControlServerError: Error, CustomStringConvertible {
    /// Another process is accepting connections on the socket path.
    case socketInUse(path: String)
    /// Something that is not a socket exists at the path; it is left alone.
    case notASocket(path: String)
    case alreadyStarted
    case system(operation: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case .socketInUse(let path):
            return "control socket \(path) is in use by another process (is foneai-bridge already running?)"
        case .notASocket(let path):
            return "\(path) exists and is not a socket; refusing to replace it"
        case .alreadyStarted:
            return "control server already started"
        case .system(let operation, let path, let errno):
            return "\(operation) \(path): \(String(cString: strerror(errno)))"
        }
    }
}

/// Serves the control protocol on a Unix domain socket.
///
/// Read-only commands (status, calls, stats) are open to anyone who can connect (the socket is
/// `mode` 0660, group `group`); drain, undrain, end and reload need a peer uid in `privilegedUIDs`
/// (checked with SO_PEERCRED). Use `start()`/`stop()`, or run it as a ServiceLifecycle `Service`
/// (`run()` starts, waits for graceful shutdown or cancellation, then stops).
public final class ControlServer: Sendable {
    public struct Limits: Sendable {
        /// Concurrent connections; more are answered with error `busy` and closed.
        public var maxConnections: Int
        /// A connection that does not complete a request line within this time (after connecting or
        /// after its previous response) is closed.
        public var idleTimeout: Duration
        /// Longest request line; longer gets `too_large` and the connection is closed.
        public var maxLineLength: Int

        public init(maxConnections: Int = 32, idleTimeout: Duration = .seconds(10),
                    maxLineLength: Int = ControlProtocol.maxLineLength) {
            self.maxConnections = maxConnections
            self.idleTimeout = idleTimeout
            self.maxLineLength = maxLineLength
        }
    }

    public let path: String
    public let privilegedUIDs: Set<UInt32>
    public let group: String?
    public let mode: mode_t
    public let limits: Limits
    private let handler: any ControlHandler
    private let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let state = Mutex(State())

    private struct State {
        var serverChannel: (any Channel)?
        var acceptTask: Task<Void, Never>?
        var socketIdentity: (dev: UInt64, ino: UInt64)?
        var started = false
    }

    private let activeConnections = Atomic<Int>(0)

    private typealias Connection = NIOAsyncChannel<ControlLineFrame, ByteBuffer>

    public init(
        path: String = ControlProtocol.defaultSocketPath,
        handler: any ControlHandler,
        privilegedUIDs: Set<UInt32> = [0, getuid()],
        group: String? = "foneai",
        mode: mode_t = 0o660,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        limits: Limits = Limits()
    ) {
        self.path = path
        self.handler = handler
        self.privilegedUIDs = privilegedUIDs
        self.group = group
        self.mode = mode
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.limits = limits
    }

    /// Number of currently open control connections.
    public var connectionCount: Int { activeConnections.load(ordering: .relaxed) }

    /// Removes a stale socket file (only if it is a socket nobody listens on), binds, sets group and
    /// mode, and starts accepting connections in the background.
    public func start() async throws {
        try state.withLock { state in
            if state.started { throw ControlServerError.alreadyStarted }
            state.started = true
        }
        do {
            try Self.removeStaleSocket(at: path)
            // (NIO's AcceptBackoffHandler already absorbs accept errors such as EMFILE.)
            let maxLine = limits.maxLineLength
            let server = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 64)
                .bind(unixDomainSocketPath: path) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(ControlLineDecoder(maxLength: maxLine)))
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
            applyOwnershipAndMode()
            let identity = Self.identity(of: path)
            let task = Task { await self.acceptLoop(server) }
            state.withLock { state in
                state.serverChannel = server.channel
                state.acceptTask = task
                state.socketIdentity = identity
            }
            logger.info("control socket listening", metadata: [
                "path": "\(path)", "mode": "\(String(mode, radix: 8))", "group": "\(group ?? "-")",
            ])
        } catch {
            state.withLock { $0.started = false }
            throw error
        }
    }

    /// Stops accepting, closes every connection (in-flight handler calls are cancelled) and
    /// unlinks the socket file if it is still the one this server created.
    public func stop() async {
        let (channel, task, identity) = state.withLock { state in
            let taken = (state.serverChannel, state.acceptTask, state.socketIdentity)
            state.serverChannel = nil
            state.acceptTask = nil
            state.socketIdentity = nil
            return taken
        }
        guard let channel else { return }
        try? await channel.close()
        task?.cancel()
        await task?.value
        if let identity, let current = Self.identity(of: path), current == identity {
            unlink(path)
        }
        state.withLock { $0.started = false }
        logger.info("control socket closed", metadata: ["path": "\(path)"])
    }

    // MARK: Accepting

    private func acceptLoop(_ server: NIOAsyncChannel<Connection, Never>) async {
        do {
            try await server.executeThenClose { inbound in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in inbound {
                            let count = activeConnections.wrappingAdd(1, ordering: .relaxed).newValue
                            group.addTask {
                                defer { self.activeConnections.wrappingSubtract(1, ordering: .relaxed) }
                                if count > self.limits.maxConnections {
                                    await self.reject(connection)
                                } else {
                                    await self.serve(connection)
                                }
                            }
                        }
                    } catch {
                        self.logger.error("control socket accept loop failed", metadata: ["error": "\(error)"])
                    }
                    // Server channel closed (stop()): end the open connections too.
                    group.cancelAll()
                }
            }
        } catch {
            logger.debug("control server channel closed with error", metadata: ["error": "\(error)"])
        }
    }

    private func reject(_ connection: Connection) async {
        logger.warning("too many control connections, rejecting one", metadata: ["limit": "\(limits.maxConnections)"])
        try? await connection.executeThenClose { _, outbound in
            let error = ControlErrorBody(code: .busy, message: "too many control connections (limit \(limits.maxConnections))")
            try await outbound.write(ControlJSON.encodeLine(ControlResponse<NoResult>(id: nil, error: error)))
        }
    }

    // MARK: One connection

    private func serve(_ connection: Connection) async {
        let channel = connection.channel
        let peer = await Self.peerCredentials(of: channel)
        var logger = self.logger
        if let peer {
            logger[metadataKey: "peer_uid"] = "\(peer.uid)"
            logger[metadataKey: "peer_pid"] = "\(peer.pid)"
        } else {
            logger[metadataKey: "peer_uid"] = "unknown"
        }
        let idleTimeout = TimeAmount.nanoseconds(Self.nanoseconds(limits.idleTimeout))
        do {
            try await withTaskCancellationHandler {
                try await connection.executeThenClose { inbound, outbound in
                    var iterator = inbound.makeAsyncIterator()
                    while !Task.isCancelled {
                        let timer = channel.eventLoop.scheduleTask(in: idleTimeout) { [logger] in
                            logger.debug("control connection idle, closing")
                            channel.close(promise: nil)
                        }
                        let frame = try await iterator.next()
                        timer.cancel()
                        guard let frame else { return }
                        switch frame {
                        case .tooLong:
                            logger.warning("control request line too long, closing connection",
                                           metadata: ["limit": "\(limits.maxLineLength)"])
                            try await send(error: .tooLarge, "request line longer than \(limits.maxLineLength) bytes",
                                           id: nil, to: outbound)
                            return
                        case .line(let line):
                            if line.readableBytesView.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                            let keepOpen = try await handle(line: line, peer: peer, logger: logger, outbound: outbound)
                            if !keepOpen { return }
                        }
                    }
                }
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch is CancellationError {
        } catch let error as ChannelError where error == .ioOnClosedChannel || error == .alreadyClosed {
            logger.debug("control connection closed by peer")
        } catch {
            logger.debug("control connection ended", metadata: ["error": "\(error)"])
        }
    }

    private struct IDProbe: Decodable {
        var id: Int?
    }

    /// Handles one request line. Returns false when the connection should be closed afterwards.
    private func handle(line: ByteBuffer, peer: PeerCredentials?, logger: Logger,
                        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> Bool {
        let request: ControlRequest
        do {
            request = try ControlJSON.decode(ControlRequest.self, from: line)
        } catch {
            let id = (try? ControlJSON.decode(IDProbe.self, from: line))?.id
            logger.debug("bad control request", metadata: ["error": "\(error)"])
            try await send(error: .badRequest, "invalid request: \(Self.describe(decodingError: error))", id: id, to: outbound)
            return true
        }
        let id = request.id
        guard request.v == ControlProtocol.version else {
            try await send(error: .badRequest,
                           "unsupported protocol version \(request.v) (this server speaks \(ControlProtocol.version))",
                           id: id, to: outbound)
            return true
        }
        guard let command = request.command else {
            try await send(error: .unknownCommand, "unknown command \"\(request.cmd)\"", id: id, to: outbound)
            return true
        }
        let args = request.args ?? ControlArguments()
        if command.isMutating {
            guard let peer, privilegedUIDs.contains(peer.uid) else {
                logger.warning("control command refused: peer not privileged", metadata: ["command": "\(command.rawValue)"])
                try await send(error: .forbidden,
                               "\(command.rawValue) needs root or the service user (your uid: \(peer.map { String($0.uid) } ?? "unknown"))",
                               id: id, to: outbound)
                return true
            }
        }

        switch command {
        case .status:
            try await send(result: await handler.status(), id: id, to: outbound)

        case .calls:
            try await send(result: CallsResult(calls: await handler.calls()), id: id, to: outbound)

        case .stats:
            guard args.follow == true else {
                try await send(result: await handler.stats(), id: id, to: outbound)
                return true
            }
            let intervalMs = args.intervalMs ?? ControlProtocol.defaultFollowIntervalMs
            guard (ControlProtocol.minFollowIntervalMs...ControlProtocol.maxFollowIntervalMs).contains(intervalMs) else {
                try await send(error: .badRequest,
                               "intervalMs must be between \(ControlProtocol.minFollowIntervalMs) and \(ControlProtocol.maxFollowIntervalMs)",
                               id: id, to: outbound)
                return true
            }
            logger.debug("control stats follow started", metadata: ["interval_ms": "\(intervalMs)"])
            let clock = ContinuousClock()
            var next = clock.now
            while !Task.isCancelled {
                try await send(result: await handler.stats(), id: id, to: outbound)
                next = next.advanced(by: .milliseconds(intervalMs))
                if next < clock.now { next = clock.now.advanced(by: .milliseconds(intervalMs)) }
                try await Task.sleep(until: next, clock: clock)
            }
            return false

        case .drain:
            let wait = args.wait ?? false
            var timeout: Duration?
            if let seconds = args.timeoutSeconds {
                guard seconds.isFinite, seconds >= 0, seconds <= 1e9 else {  // 1e9 s ≈ 31 years; more would overflow Int64 ms
                    try await send(error: .badRequest, "timeoutSeconds must be a non-negative number", id: id, to: outbound)
                    return true
                }
                timeout = .milliseconds(Int64((seconds * 1000).rounded(.up)))
            }
            logger.notice("control: drain requested", metadata: [
                "wait": "\(wait)", "timeout_s": "\(args.timeoutSeconds.map { "\($0)" } ?? "none")",
            ])
            let result = await handler.drain(wait: wait, timeout: timeout)
            logger.notice("control: drain answered", metadata: [
                "remaining_calls": "\(result.remainingCalls)", "timed_out": "\(result.timedOut)",
            ])
            try await send(result: result, id: id, to: outbound)

        case .undrain:
            logger.notice("control: undrain requested")
            await handler.undrain()
            try await send(result: UndrainResult(draining: false), id: id, to: outbound)

        case .end:
            guard let callId = args.callId, !callId.isEmpty else {
                try await send(error: .badRequest, "end needs args.callId", id: id, to: outbound)
                return true
            }
            logger.notice("control: end call requested", metadata: ["call_id": "\(callId)"])
            if await handler.endCall(id: callId) {
                try await send(result: EndCallResult(callId: callId), id: id, to: outbound)
            } else {
                try await send(error: .notFound, "no live call \(callId)", id: id, to: outbound)
            }

        case .reload:
            logger.notice("control: reload requested")
            let info = await handler.reload()
            logger.notice("control: reload finished", metadata: ["ok": "\(info.ok)", "message": "\(info.message)"])
            try await send(result: info, id: id, to: outbound)
        }
        return true
    }

    private func send<R: Codable & Sendable>(result: R, id: Int?, to outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        let line: ByteBuffer
        do {
            line = try ControlJSON.encodeLine(ControlResponse(id: id, result: result))
        } catch {
            logger.error("cannot encode control response", metadata: ["error": "\(error)"])
            try await send(error: .internal, "cannot encode response: \(error)", id: id, to: outbound)
            return
        }
        try await outbound.write(line)
    }

    private func send(error code: ControlErrorCode, _ message: String, id: Int?,
                      to outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        let response = ControlResponse<NoResult>(id: id, error: ControlErrorBody(code: code, message: message))
        try await outbound.write(ControlJSON.encodeLine(response))
    }

    static func describe(decodingError error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            return "not valid JSON" + (context.codingPath.isEmpty ? "" : " at \(path(context.codingPath))")
        case DecodingError.keyNotFound(let key, let context):
            return "missing field \(path(context.codingPath + [key]))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type for \(path(context.codingPath))"
        default:
            return "\(error)"
        }
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    // MARK: Socket file and credentials

    private struct UCred: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    private static func peerCredentials(of channel: any Channel) async -> PeerCredentials? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        do {
            let cred: UCred = try await provider.unsafeGetSocketOption(
                level: NIOBSDSocket.OptionLevel.socket, name: NIOBSDSocket.Option(rawValue: SO_PEERCRED)
            ).get()
            return PeerCredentials(pid: cred.pid, uid: cred.uid, gid: cred.gid)
        } catch {
            return nil
        }
    }

    /// Removes `path` if it is a socket nobody accepts on; throws if it is in use or not a socket.
    static func removeStaleSocket(at path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            let error = errno
            if error == ENOENT { return }
            throw ControlServerError.system(operation: "lstat", path: path, errno: error)
        }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw ControlServerError.notASocket(path: path) }
        if isAcceptingConnections(path) { throw ControlServerError.socketInUse(path: path) }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ControlServerError.system(operation: "unlink", path: path, errno: errno)
        }
    }

    /// Whether something accepts stream connections on the Unix socket at `path`.
    static func isAcceptingConnections(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }

    private func applyOwnershipAndMode() {
        if let group {
            if let gid = Self.groupID(named: group) {
                if chown(path, uid_t.max, gid) != 0 {
                    logger.warning("cannot chown control socket to group", metadata: [
                        "path": "\(path)", "group": "\(group)", "error": "\(String(cString: strerror(errno)))",
                    ])
                }
            } else {
                logger.debug("group for control socket does not exist, leaving group unchanged", metadata: ["group": "\(group)"])
            }
        }
        if chmod(path, mode) != 0 {
            logger.warning("cannot chmod control socket", metadata: [
                "path": "\(path)", "error": "\(String(cString: strerror(errno)))",
            ])
        }
    }

    static func groupID(named name: String) -> gid_t? {
        var group = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let status = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return group.gr_gid
    }

    private static func identity(of path: String) -> (dev: UInt64, ino: UInt64)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (s, atto) = duration.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}

extension ControlServer: Service {
    /// Starts the server, waits for graceful shutdown (or cancellation), then stops it.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await stop()
    }
}
