// swift-log handler writing native journal entries (sd_journal_sendv) with structured fields.

import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Sends every log event to journald as a native entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
/// CODE_FILE/CODE_LINE/CODE_FUNC, LOGGER (the logger label) and every metadata key as an
/// upper-cased field (`call_id` → `CALL_ID`), so `journalctl CALL_ID=...` finds a call's lines.
///
/// Value type without shared mutable state; libsystemd's send is thread-safe.
public struct JournaldLogHandler: LogHandler {
    public let label: String
    public let identifier: String
    /// Also append ` key=value` pairs to MESSAGE, so plain `journalctl -u` shows them.
    public var includeMetadataInMessage: Bool
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let levelBox: LogLevelBox

    public init(label: String, identifier: String = "foneai-bridge", level: LogLevelBox = .shared,
                includeMetadataInMessage: Bool = true,
                metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.identifier = identifier
        self.levelBox = level
        self.includeMetadataInMessage = includeMetadataInMessage
        self.metadataProvider = metadataProvider
    }

    public var logLevel: Logger.Level {
        get { levelBox.level }
        set { levelBox.level = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = LogFormatting.merge(handler: metadata, provider: metadataProvider, event: event)
        let fields = Self.journalFields(
            level: event.level, message: event.message.description, metadata: merged, identifier: identifier,
            label: label, file: event.file, function: event.function, line: event.line,
            includeMetadataInMessage: includeMetadataInMessage)
        if Self.send(fields: fields) < 0 {
            // journald unreachable: do not lose the line.
            let line = LogFormatting.line(timestamp: nil, level: event.level, label: label,
                                          message: event.message.description, metadata: merged)
            LogFormatting.writeToStderr(line)
        }
    }

    // MARK: Pure helpers (tested)

    /// syslog priority for a swift-log level (journal PRIORITY=).
    public static func priority(for level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7   // LOG_DEBUG
        case .info: return 6            // LOG_INFO
        case .notice: return 5          // LOG_NOTICE
        case .warning: return 4         // LOG_WARNING
        case .error: return 3           // LOG_ERR
        case .critical: return 2        // LOG_CRIT
        }
    }

    /// Fields this handler sets itself; metadata keys mapping to one of them get a `META_` prefix.
    public static let reservedFieldNames: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY", "SYSLOG_PID",
        "SYSLOG_TIMESTAMP", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER",
    ]

    /// Journal field name for a metadata key: upper-cased, every character outside [A-Za-z0-9_]
    /// replaced by `_`, leading underscores removed (those are trusted fields), `F_` prefixed if it
    /// would start with a digit, `META_` prefixed if it collides with a field set by the handler,
    /// at most 64 characters. nil if nothing usable is left.
    public static func journalFieldName(forMetadataKey key: String) -> String? {
        var name = ""
        name.reserveCapacity(key.utf8.count)
        for scalar in key.unicodeScalars {
            switch scalar {
            case "a"..."z":
                name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            case "A"..."Z", "0"..."9", "_":
                name.unicodeScalars.append(scalar)
            default:
                name.unicodeScalars.append("_")
            }
        }
        while name.first == "_" { name.removeFirst() }
        guard let first = name.first else { return nil }
        if first.isNumber { name = "F_" + name }
        if reservedFieldNames.contains(name) { name = "META_" + name }
        if name.utf8.count > 64 { name = String(name.prefix(64)) }
        return name
    }

    /// All `NAME=value` fields of one entry.
    public static func journalFields(
        level: Logger.Level, message: String, metadata: Logger.Metadata, identifier: String, label: String,
        file: String, function: String, line: UInt, includeMetadataInMessage: Bool = true
    ) -> [String] {
        var text = message
        if includeMetadataInMessage, !metadata.isEmpty {
            text += " " + LogFormatting.formatMetadata(metadata)
        }
        var fields = [
            "MESSAGE=" + text,
            "PRIORITY=\(priority(for: level))",
            "SYSLOG_IDENTIFIER=" + identifier,
            "LOGGER=" + label,
            "CODE_FILE=" + file,
            "CODE_LINE=\(line)",
            "CODE_FUNC=" + function,
        ]
        var used = Set<String>()
        for key in metadata.keys.sorted() {
            guard let name = journalFieldName(forMetadataKey: key), used.insert(name).inserted,
                  let value = metadata[key] else { continue }
            fields.append(name + "=" + LogFormatting.plainValue(value))
        }
        return fields
    }

    /// Sends the fields with sd_journal_sendv; returns its result (0 also when there is no journal).
    @discardableResult
    public static func send(fields: [String]) -> Int32 {
        var bytes: [UInt8] = []
        var ranges: [(offset: Int, length: Int)] = []
        ranges.reserveCapacity(fields.count)
        for field in fields {
            let start = bytes.count
            bytes.append(contentsOf: field.utf8)
            ranges.append((start, bytes.count - start))
        }
        guard !bytes.isEmpty else { return 0 }
        return bytes.withUnsafeMutableBytes { raw -> Int32 in
            let base = raw.baseAddress!
            var vectors = ranges.map { iovec(iov_base: base + $0.offset, iov_len: $0.length) }
            return vectors.withUnsafeMutableBufferPointer { iov in
                sd_journal_sendv(iov.baseAddress, Int32(iov.count))
            }
        }
    }
}
