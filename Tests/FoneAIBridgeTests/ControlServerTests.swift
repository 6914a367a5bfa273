import FoneAIControl
import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import FoneAIBridge

#if canImport(Glibc)
import Glibc
#endif

@Suite("Control server over a real Unix socket")
struct ControlServerTests {
    typealias Kit = ControlTestKit

    @Test func readCommandsThroughTheClient() async throws {
        try await Kit.withServer { _, path in
            let client = ControlClient(socketPath: path)
            let status = try await client.status()
            #expect(status == Kit.sampleStatus())
            let calls = try await client.calls()
            #expect(calls == [Kit.sampleCall])
            let stats = try await client.stats()
            #expect(stats.counters["calls_started"] == 7)
        }
    }

    @Test func socketHasModeAndIsRemovedOnStop() async throws {
        let dir = Kit.makeTempDir()
        defer { Kit.removeTree(dir) }
        let path = dir + "/control.sock"
        let server = ControlServer(path: path, handler: FakeControlHandler(), group: "no-such-group-xyz", logger: Kit.logger)
        try await server.start()
        var st = stat()
        #expect(lstat(path, &st) == 0)
        #expect((st.st_mode & S_IFMT) == S_IFSOCK)
        #expect((st.st_mode & 0o777) == 0o660)
        await server.stop()
        #expect(lstat(path, &st) != 0)
        // Can start again after stop.
        try await server.start()
        await server.stop()
    }

    @Test func mutatingCommandsForPrivilegedPeer() async throws {
        let handler = FakeControlHandler()
        try await Kit.withServer(handler: handler) { _, path in
            let client = ControlClient(socketPath: path)
            let drain = try await client.drain(wait: true, timeout: .seconds(3))
            #expect(drain == DrainResult(remainingCalls: 0, timedOut: false))
            #expect(try await client.status().draining)
            _ = try await client.undrain()
            #expect(try await client.end(callId: "c-1") == EndCallResult(callId: "c-1"))
            await #expect {
                try await client.end(callId: "c-1")
            } throws: { error in
                guard case ControlClientError.server(let code, _) = error else { return false }
                return code == .notFound
            }
            #expect(try await client.reload().ok)
        }
        #expect(handler.log.contains("drain wait=true timeout=3.0 seconds"))
        #expect(handler.log.contains("undrain"))
        #expect(handler.log.contains("end c-1"))
        #expect(handler.log.contains("reload"))
    }

    @Test func mutatingCommandsForbiddenForUnprivilegedPeer() async throws {
        let handler = FakeControlHandler()
        try await Kit.withServer(handler: handler, privilegedUIDs: []) { _, path in
            let client = ControlClient(socketPath: path)
            for attempt in [
                { _ = try await client.drain() },
                { _ = try await client.undrain() },
                { _ = try await client.end(callId: "c-1") },
                { _ = try await client.reload() },
            ] as [@Sendable () async throws -> Void] {
                await #expect {
                    try await attempt()
                } throws: { error in
                    guard case ControlClientError.server(let code, _) = error else { return false }
                    return code == .forbidden
                }
            }
            // Read-only commands still work.
            _ = try await client.status()
        }
        #expect(handler.log == ["status"])
    }

    @Test func garbageGetsBadRequestAndTheConnectionStaysUsable() async throws {
        try await Kit.withServer { _, path in
            let result = try await Kit.raw(
                path: path,
                "this is not json\n{\"v\":1,\"id\":2}\n{\"v\":2,\"id\":3,\"cmd\":\"status\"}\n{\"v\":1,\"id\":4,\"cmd\":\"dance\"}\n{\"v\":1,\"id\":5,\"cmd\":\"status\"}\n",
                expectLines: 5)
            #expect(result.lines.count == 5)
            let first = try ControlJSON.decode(ControlResponse<NoResult>.self, from: result.lines[0])
            #expect(first.error?.code == .badRequest)
            #expect(first.id == nil)
            let second = try ControlJSON.decode(ControlResponse<NoResult>.self, from: result.lines[1])
            #expect(second.error?.code == .badRequest)
            #expect(second.id == 2)
            #expect(try Kit.errorCode(of: result.lines[2]) == .badRequest)
            #expect(try Kit.errorCode(of: result.lines[3]) == .unknownCommand)
            let ok = try ControlJSON.decode(ControlResponse<StatusInfo>.self, from: result.lines[4])
            #expect(ok.ok && ok.id == 5)
        }
    }

    @Test func hostileInputNeverCrashesTheServer() async throws {
        try await Kit.withServer { _, path in
            var generator = SystemRandomNumberGenerator()
            var payload: [UInt8] = []
            var lines = 0
            let fixed: [String] = [
                String(repeating: "[", count: 20_000), "{\"v\":1,\"id\":99999999999999999999999,\"cmd\":\"status\"}",
                "{\"v\":1,\"id\":1e400,\"cmd\":\"status\"}", "null", "[]", "\"str\"", "{\"v\":1,\"id\":-1,\"cmd\":\"\"}",
                "{\"v\":1,\"id\":1,\"cmd\":\"stats\",\"args\":{\"follow\":\"yes\"}}", "{\"v\":1,\"id\":1,\"cmd\":\"status\"",
            ]
            for text in fixed {
                payload += Array(text.utf8) + [10]
                lines += 1
            }
            for _ in 0..<100 {
                let length = Int.random(in: 1...200, using: &generator)
                var line: [UInt8] = (0..<length).map { _ in
                    let byte = UInt8.random(in: 0...255, using: &generator)
                    return byte == 10 ? 0xFF : byte
                }
                // Blank lines are skipped without an answer: keep the first byte visible.
                if [0x20, 0x09, 0x0D].contains(line[0]) { line[0] = UInt8(ascii: "#") }
                payload += line + [10]
                lines += 1
            }
            payload += Array("{\"v\":1,\"id\":4242,\"cmd\":\"status\"}\n".utf8)
            let result = try await Kit.raw(path: path, payload: payload, expectLines: lines + 1, timeout: .seconds(10))
            #expect(result.lines.count == lines + 1)
            for line in result.lines.dropLast() {
                let code = try Kit.errorCode(of: line)
                #expect(code == .badRequest || code == .unknownCommand, "\(line)")
            }
            let last = try ControlJSON.decode(ControlResponse<StatusInfo>.self, from: result.lines.last ?? "")
            #expect(last.ok && last.id == 4242)
        }
    }

    @Test func badArgumentsAreBadRequests() async throws {
        try await Kit.withServer { _, path in
            let result = try await Kit.raw(
                path: path,
                """
                {"v":1,"id":1,"cmd":"end"}
                {"v":1,"id":2,"cmd":"end","args":{"callId":5}}
                {"v":1,"id":3,"cmd":"drain","args":{"wait":true,"timeoutSeconds":-1}}
                {"v":1,"id":4,"cmd":"stats","args":{"follow":true,"intervalMs":1}}

                """,
                expectLines: 4)
            #expect(try result.lines.map(Kit.errorCode(of:)) == [.badRequest, .badRequest, .badRequest, .badRequest])
        }
    }

    @Test func oversizedLineGetsTooLargeAndIsClosed() async throws {
        try await Kit.withServer { _, path in
            let payload = Array(repeating: UInt8(ascii: "a"), count: ControlProtocol.maxLineLength + 100) + [UInt8(ascii: "\n")]
            let result = try await Kit.raw(path: path, payload: payload, expectLines: 2)
            #expect(result.lines.count == 1)
            #expect(try Kit.errorCode(of: result.lines[0]) == .tooLarge)
            #expect(result.closedByServer)
        }
    }

    @Test func oversizedLineWithoutNewlineAlsoGetsTooLarge() async throws {
        try await Kit.withServer { _, path in
            let payload = Array(repeating: UInt8(ascii: "{"), count: ControlProtocol.maxLineLength + 1)
            let result = try await Kit.raw(path: path, payload: payload, expectLines: 2)
            #expect(result.lines.count == 1)
            #expect(try Kit.errorCode(of: result.lines[0]) == .tooLarge)
            #expect(result.closedByServer)
        }
    }

    @Test func unfinishedLineIsDroppedAfterIdleTimeout() async throws {
        try await Kit.withServer(limits: .init(idleTimeout: .milliseconds(300))) { server, path in
            let clock = ContinuousClock()
            let start = clock.now
            let result = try await Kit.raw(path: path, #"{"v":1,"id":1,"cmd":"sta"#, expectLines: 1, timeout: .seconds(5))
            #expect(result.lines.isEmpty)
            #expect(result.closedByServer)
            #expect(clock.now - start < .seconds(3))
        }
    }

    @Test func connectionLimitAnswersBusy() async throws {
        try await Kit.withServer(limits: .init(maxConnections: 1, idleTimeout: .seconds(5))) { server, path in
            // Hold one connection open with an unfinished line.
            async let holder = Kit.raw(path: path, "{", expectLines: 1, timeout: .seconds(2))
            // Wait until the server counts it.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(2)
            while server.connectionCount < 1 && clock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            let second = try await Kit.raw(path: path, "{\"v\":1,\"id\":1,\"cmd\":\"status\"}\n", expectLines: 1)
            #expect(second.lines.count == 1)
            #expect(try Kit.errorCode(of: second.lines[0]) == .busy)
            _ = try await holder
        }
    }

    @Test func statsFollowStreamsUntilTheClientStops() async throws {
        let handler = FakeControlHandler()
        try await Kit.withServer(handler: handler) { server, path in
            let client = ControlClient(socketPath: path)
            var received: [StatsSnapshot] = []
            for try await snapshot in client.statsStream(intervalMs: 100) {
                received.append(snapshot)
                if received.count == 3 { break }
            }
            #expect(received.count == 3)
            #expect(received[0].at < received[1].at && received[1].at < received[2].at)
            // The server notices the closed connection at its next write.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(3)
            while server.connectionCount > 0 && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(server.connectionCount == 0)
        }
    }

    @Test func stopEndsAFollowingClient() async throws {
        let dir = Kit.makeTempDir()
        defer { Kit.removeTree(dir) }
        let path = dir + "/control.sock"
        let server = ControlServer(path: path, handler: FakeControlHandler(), group: nil, logger: Kit.logger)
        try await server.start()
        let client = ControlClient(socketPath: path)
        let consumer = Task {
            var count = 0
            do {
                for try await _ in client.statsStream(intervalMs: 100) { count += 1 }
            } catch {}
            return count
        }
        try await Task.sleep(for: .milliseconds(250))
        await server.stop()
        let count = await consumer.value
        #expect(count >= 1)
    }

    @Test func stopClosesIdleConnectionsPromptly() async throws {
        let dir = Kit.makeTempDir()
        defer { Kit.removeTree(dir) }
        let path = dir + "/control.sock"
        let server = ControlServer(path: path, handler: FakeControlHandler(), group: nil, logger: Kit.logger,
                                   limits: .init(idleTimeout: .seconds(30)))
        try await server.start()
        async let idle = Kit.raw(path: path, "{\"v\":1,\"id\":1,\"cmd\":\"status\"}\n{", expectLines: 2, timeout: .seconds(20))
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(2)
        while server.connectionCount < 1 && clock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        try await Task.sleep(for: .milliseconds(100))
        let start = clock.now
        await server.stop()
        let result = try await idle
        #expect(clock.now - start < .seconds(5))
        #expect(result.lines.count == 1)
        #expect(result.closedByServer)
    }

    @Test func clientReportsDaemonNotRunning() async throws {
        let dir = Kit.makeTempDir()
        defer { Kit.removeTree(dir) }
        let client = ControlClient(socketPath: dir + "/missing.sock")
        await #expect {
            _ = try await client.status()
        } throws: { error in
            guard case ControlClientError.daemonNotRunning(let path) = error else { return false }
            return path == dir + "/missing.sock"
        }
    }

    @Test func staleSocketIsReplacedButLiveSocketAndFilesAreNot() async throws {
        let dir = Kit.makeTempDir()
        defer { Kit.removeTree(dir) }
        let path = dir + "/control.sock"

        // A stale socket: bound, then closed without unlink.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        close(fd)

        let server = ControlServer(path: path, handler: FakeControlHandler(), group: nil, logger: Kit.logger)
        try await server.start()
        _ = try await ControlClient(socketPath: path).status()

        // A second server on the same live path refuses to steal it.
        let second = ControlServer(path: path, handler: FakeControlHandler(), group: nil, logger: Kit.logger)
        await #expect(throws: ControlServerError.self) { try await second.start() }
        _ = try await ControlClient(socketPath: path).status()
        await server.stop()

        // A regular file is never removed.
        let filePath = dir + "/control.sock"
        let file = open(filePath, O_CREAT | O_WRONLY, 0o600)
        close(file)
        let third = ControlServer(path: filePath, handler: FakeControlHandler(), group: nil, logger: Kit.logger)
        await #expect(throws: ControlServerError.self) { try await third.start() }
        var st = stat()
        #expect(lstat(filePath, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG)
    }

    @Test func peerCredentialsAreOurOwn() async throws {
        // privilegedUIDs = [our uid] allows; the server saw our uid through SO_PEERCRED.
        try await Kit.withServer(privilegedUIDs: [getuid()]) { _, path in
            _ = try await ControlClient(socketPath: path).undrain()
        }
    }
}
