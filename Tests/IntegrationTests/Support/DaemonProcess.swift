import Foundation

/// The real `foneai-bridge` binary, started as a child process with a config written for the test.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let directory: URL
    let configPath: String
    let logPath: String
    let controlSocketPath: String
    let rtpPort: Int

    /// The package's build folder, where `swift build` put the binaries.
    static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["FONEAI_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }  // Tests/IntegrationTests/Support/file → package root
        return url.appendingPathComponent(".build/debug")
    }

    /// - Parameter configure: edits the config object before it is written (add sections, change values).
    init(ariURL: String, aiURL: String, username: String = "asterisk", password: String = "secret",
         payloadType: Int = 11, format: String = "slin16", extra: [String: [String: Any]] = [:],
         environment: [String: String] = [:]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("foneai-it-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configPath = directory.appendingPathComponent("config.json").path
        logPath = directory.appendingPathComponent("daemon.log").path
        controlSocketPath = directory.appendingPathComponent("control.sock").path
        rtpPort = try Self.freeUDPPort()
        var config: [String: [String: Any]] = [
            "ari": ["url": ariURL, "username": username, "password": password, "appName": "foneai"],
            "rtpServer": ["port": "\(rtpPort)", "format": format, "host": "127.0.0.1", "swap16": true, "socketType": "udp4"],
            "asterisk": ["packetTimestampIncrement": 160, "rtpPayloadType": payloadType],
            "ai": ["serverUrl": aiURL, "connectTimeoutMs": 1000, "connectAttempts": 2],
            "log": ["logLevel": "debug"],
            "control": ["socketPath": controlSocketPath],
        ]
        for (section, values) in extra { config[section, default: [:]].merge(values) { $1 } }
        try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]).write(to: URL(fileURLWithPath: configPath))

        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = Self.binDirectory.appendingPathComponent("foneai-bridge")
        process.arguments = [configPath]
        process.standardOutput = log
        process.standardError = log
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "JOURNAL_STREAM", "INVOCATION_ID", "WATCHDOG_USEC", "WATCHDOG_PID"] { env[key] = nil }
        env.merge(environment) { $1 }
        process.environment = env
    }

    func start() throws {
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the daemon's log contains `text`.
    @discardableResult
    func waitForLog(_ text: String, timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if log.contains(text) { return true }
            if !process.isRunning { return log.contains(text) }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// SIGTERM, then the exit status (nil if it did not exit in time; it is killed then).
    func stop(timeout: Duration = .seconds(20)) async -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        signal(SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }

    static func freeUDPPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// Runs the `foneai-bridge` binary once with arguments and returns (exit status, output).
func runBridgeCommand(_ arguments: [String]) throws -> (Int32, String) {
    try runToCompletion(DaemonProcess.binDirectory.appendingPathComponent("foneai-bridge").path, arguments)
}

/// Runs a program to its end; returns (exit status, stdout and stderr together).
func runToCompletion(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
