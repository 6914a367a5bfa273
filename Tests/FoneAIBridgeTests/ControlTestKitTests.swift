// Shared helpers for the control-socket tests: a fake daemon, temp dirs and a raw line client.
// (Named *Tests.swift to stay within the Control*Tests.swift files; it holds no tests itself.)

import FoneAIControl
import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
import Synchronization

@testable import FoneAIBridge

#if canImport(Glibc)
import Glibc
#endif

enum ControlTestKit {
    /// A fresh private directory under /tmp (short: Unix socket paths are limited to 107 bytes).
    static func makeTempDir() -> String {
        var template = Array("/tmp/fctl-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func removeTree(_ dir: String) {
        if let d = opendir(dir) {
            while let entry = readdir(d) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                unlink(dir + "/" + name)
            }
            closedir(d)
        }
        rmdir(dir)
    }

    static let logger: Logger = {
        var logger = Logger(label: "control-test") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        return logger
    }()

    /// Runs `body` with a started server on a socket in a temp dir; stops it and cleans up after.
    static func withServer<T>(
        handler: FakeControlHandler = FakeControlHandler(),
        privilegedUIDs: Set<UInt32> = [0, getuid()],
        limits: ControlServer.Limits = .init(),
        _ body: (ControlServer, String) async throws -> T
    ) async throws -> T {
        let dir = makeTempDir()
        defer { removeTree(dir) }
        let path = dir + "/control.sock"
        let server = ControlServer(path: path, handler: handler, privilegedUIDs: privilegedUIDs, group: nil,
                                   logger: logger, limits: limits)
        try await server.start()
        do {
            let result = try await body(server, path)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    struct RawResult {
        var lines: [String]
        /// The server closed the connection before `timeout`.
        var closedByServer: Bool
    }

    /// Connects, writes `payload` as is, then collects response lines until `expectLines` arrived,
    /// the server closed the connection, or `timeout` passed.
    static func raw(path: String, payload: [UInt8], expectLines: Int, timeout: Duration = .seconds(5)) async throws -> RawResult {
        let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(ControlLineDecoder(maxLength: 1 << 24)))
                    return try NIOAsyncChannel<ControlLineFrame, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let channel = connection.channel
        let clock = ContinuousClock()
        let start = clock.now
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(ControlServer.nanoseconds(timeout))) {
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        return try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(bytes: payload))
            var lines: [String] = []
            var iterator = inbound.makeAsyncIterator()
            while lines.count < expectLines {
                let frame: ControlLineFrame?
                do {
                    frame = try await iterator.next()
                } catch {
                    frame = nil  // e.g. connection reset
                }
                guard let frame else {
                    return RawResult(lines: lines, closedByServer: clock.now - start < timeout)
                }
                if case .line(let buffer) = frame {
                    lines.append(String(buffer: buffer))
                }
            }
            return RawResult(lines: lines, closedByServer: false)
        }
    }

    static func raw(path: String, _ text: String, expectLines: Int = 1, timeout: Duration = .seconds(5)) async throws -> RawResult {
        try await raw(path: path, payload: Array(text.utf8), expectLines: expectLines, timeout: timeout)
    }

    /// Decodes an error response line.
    static func errorCode(of line: String) throws -> ControlErrorCode? {
        try ControlJSON.decode(ControlResponse<NoResult>.self, from: line).error?.code
    }

    static func sampleStatus(draining: Bool = false) -> StatusInfo {
        StatusInfo(version: "0.1.0-test", pid: getpid(), uptimeSeconds: 12.5, ariConnected: true,
                   ariURL: "http://127.0.0.1:8088", appName: "foneai", draining: draining, liveCalls: 1,
                   totals: CallTotals(handled: 10, failed: 1, aiErrors: 2, rejectedBusy: 3, rejectedDraining: 4),
                   configPath: "/etc/foneai/bridge.json",
                   lastReload: ReloadInfo(at: 1_700_000_000, ok: true, message: "log level info"))
    }

    static let sampleCall = CallInfo(
        callId: "c-1", channelId: "1700000000.1", caller: "+15551234 \"Alice\"", campaign: "spring", state: "bridged",
        ageSeconds: 42.5, packetsIn: 2100, packetsOut: 2095, packetsDropped: 3, playoutBufferMs: 60,
        aiSessionId: "sess-9")
}

/// A fake daemon that records what it was asked.
final class FakeControlHandler: ControlHandler {
    struct State {
        var draining = false
        var log: [String] = []
        var statsCalls = 0
        var liveCallIds: Set<String> = ["c-1"]
    }

    let state = Mutex(State())
    let drainDelay: Duration

    init(drainDelay: Duration = .zero) {
        self.drainDelay = drainDelay
    }

    var log: [String] { state.withLock { $0.log } }

    func status() async -> StatusInfo {
        let draining = state.withLock { s in
            s.log.append("status")
            return s.draining
        }
        return ControlTestKit.sampleStatus(draining: draining)
    }

    func calls() async -> [CallInfo] {
        state.withLock { $0.log.append("calls") }
        return [ControlTestKit.sampleCall]
    }

    func stats() async -> StatsSnapshot {
        let n = state.withLock { s in
            s.statsCalls += 1
            return s.statsCalls
        }
        return StatsSnapshot(at: 1_700_000_000 + Double(n), uptimeSeconds: Double(n), liveCalls: 1,
                             counters: ["rtp_in_packets": UInt64(n * 50), "calls_started": 7])
    }

    func drain(wait: Bool, timeout: Duration?) async -> DrainResult {
        state.withLock { s in
            s.draining = true
            s.log.append("drain wait=\(wait) timeout=\(timeout.map { "\($0)" } ?? "nil")")
        }
        if wait && drainDelay > .zero { try? await Task.sleep(for: drainDelay) }
        return DrainResult(remainingCalls: wait ? 0 : 1, timedOut: false)
    }

    func undrain() async {
        state.withLock { s in
            s.draining = false
            s.log.append("undrain")
        }
    }

    func endCall(id: String) async -> Bool {
        state.withLock { s in
            s.log.append("end \(id)")
            return s.liveCallIds.remove(id) != nil
        }
    }

    func reload() async -> ReloadInfo {
        state.withLock { $0.log.append("reload") }
        return ReloadInfo(at: 1_700_000_100, ok: true, message: "reloaded")
    }
}
