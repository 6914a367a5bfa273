import Logging
import Testing

@testable import FoneAIBridge

#if canImport(Glibc)
import Glibc
#endif

@Suite("journald and stderr log handlers")
struct SystemdLoggingTests {
    @Test(arguments: [
        ("call_id", "CALL_ID"),
        ("channel_id", "CHANNEL_ID"),
        ("campaign", "CAMPAIGN"),
        ("session_id", "SESSION_ID"),
        ("peer-uid", "PEER_UID"),
        ("http.status", "HTTP_STATUS"),
        ("_secret", "SECRET"),
        ("__x__", "X__"),
        ("9lives", "F_9LIVES"),
        ("message", "META_MESSAGE"),
        ("priority", "META_PRIORITY"),
        ("Grüße", "GR__E"),
        ("MiXeD09", "MIXED09"),
    ])
    func fieldNames(key: String, expected: String) {
        #expect(JournaldLogHandler.journalFieldName(forMetadataKey: key) == expected)
    }

    @Test func unusableKeysAreDropped() {
        #expect(JournaldLogHandler.journalFieldName(forMetadataKey: "") == nil)
        #expect(JournaldLogHandler.journalFieldName(forMetadataKey: "___") == nil)
        #expect(JournaldLogHandler.journalFieldName(forMetadataKey: "é") == nil)
        let long = JournaldLogHandler.journalFieldName(forMetadataKey: String(repeating: "a", count: 100))
        #expect(long?.count == 64)
    }

    @Test func fieldNamesAreAlwaysValid() {
        for key in ["a b", "x=y", "ñ", "-", "0", "a\nb", "A_b-c.d/e", "call id"] {
            guard let name = JournaldLogHandler.journalFieldName(forMetadataKey: key) else { continue }
            #expect(!name.hasPrefix("_"))
            #expect(name.first.map { !$0.isNumber } == true)
            #expect(name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }, "\(key) → \(name)")
        }
    }

    @Test func priorities() {
        #expect(JournaldLogHandler.priority(for: .trace) == 7)
        #expect(JournaldLogHandler.priority(for: .debug) == 7)
        #expect(JournaldLogHandler.priority(for: .info) == 6)
        #expect(JournaldLogHandler.priority(for: .notice) == 5)
        #expect(JournaldLogHandler.priority(for: .warning) == 4)
        #expect(JournaldLogHandler.priority(for: .error) == 3)
        #expect(JournaldLogHandler.priority(for: .critical) == 2)
    }

    @Test func journalFieldsOfAnEntry() {
        let fields = JournaldLogHandler.journalFields(
            level: .warning, message: "AI server error", metadata: ["call_id": "c-1", "campaign": "spring sale", "message": "x"],
            identifier: "foneai-bridge", label: "calls", file: "Calls/CallSession.swift", function: "run()", line: 42)
        #expect(fields.contains("MESSAGE=AI server error call_id=c-1 campaign=\"spring sale\" message=x"))
        #expect(fields.contains("PRIORITY=4"))
        #expect(fields.contains("SYSLOG_IDENTIFIER=foneai-bridge"))
        #expect(fields.contains("CALL_ID=c-1"))
        #expect(fields.contains("CAMPAIGN=spring sale"))
        #expect(fields.contains("META_MESSAGE=x"))
        #expect(fields.contains("CODE_LINE=42"))
        #expect(fields.filter { $0.hasPrefix("MESSAGE=") }.count == 1)
        let plain = JournaldLogHandler.journalFields(
            level: .info, message: "m", metadata: ["call_id": "c"], identifier: "id", label: "l",
            file: "f", function: "g", line: 1, includeMetadataInMessage: false)
        #expect(plain.first == "MESSAGE=m")
    }

    @Test func sendWithoutJournalDoesNotCrash() {
        // With no journald socket sd_journal_sendv fails silently (or with an error code); never traps.
        let result = JournaldLogHandler.send(fields: ["MESSAGE=test from unit tests", "PRIORITY=7", "CALL_ID=x\ny"])
        #expect(result <= 0)
    }

    @Test func stderrLineFormat() {
        let line = LogFormatting.line(timestamp: nil, level: .info, label: "foneai-bridge", message: "Call started",
                                      metadata: ["call_id": "abc", "caller": "Alice \"A\"", "empty": ""])
        #expect(line == #"info foneai-bridge: Call started call_id=abc caller="Alice \"A\"" empty="""#)
        let stamped = LogFormatting.line(timestamp: "T", level: .error, label: "x", message: "m", metadata: [:])
        #expect(stamped == "T error x: m")
        #expect(LogFormatting.quoteIfNeeded("a\nb") == #""a\nb""#)
        let nested = LogFormatting.formatMetadata(["n": .stringConvertible(5), "list": ["a", "b"]])
        #expect(nested.hasPrefix("list=\"[") && nested.hasSuffix(" n=5"))
    }

    @Test func levelBoxIsSharedAndChangeableAtRuntime() {
        let box = LogLevelBox(.info)
        var logger = Logger(label: "t") { StderrLogHandler(label: $0, level: box, timestamps: false) }
        let other = Logger(label: "u") { JournaldLogHandler(label: $0, level: box) }
        #expect(logger.logLevel == .info)
        box.level = .debug
        #expect(logger.logLevel == .debug)
        #expect(other.logLevel == .debug)
        logger.logLevel = .error  // writes through to the box
        #expect(box.level == .error)
        #expect(other.logLevel == .error)
        for level in Logger.Level.allCases {
            box.level = level
            #expect(box.level == level)
        }
    }

    @Test func journalChoice() {
        let dir = ControlTestKit.makeTempDir()
        defer { ControlTestKit.removeTree(dir) }
        let socketPath = dir + "/journal.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8) + [0]) }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        defer { close(fd) }

        let underSystemd: (String) -> String? = { $0 == "JOURNAL_STREAM" ? "8:12345" : nil }
        let invocation: (String) -> String? = { $0 == "INVOCATION_ID" ? "abc" : nil }
        let plain: (String) -> String? = { _ in nil }
        #expect(LoggingBootstrap.shouldUseJournal(environment: underSystemd, journalSocketPath: socketPath))
        #expect(LoggingBootstrap.shouldUseJournal(environment: invocation, journalSocketPath: socketPath))
        #expect(!LoggingBootstrap.shouldUseJournal(environment: plain, journalSocketPath: socketPath))
        #expect(!LoggingBootstrap.shouldUseJournal(environment: underSystemd, journalSocketPath: dir + "/missing"))
        #expect(LoggingBootstrap.makeHandler(label: "x", useJournal: true) is JournaldLogHandler)
        #expect(LoggingBootstrap.makeHandler(label: "x", useJournal: false) is StderrLogHandler)
    }
}
