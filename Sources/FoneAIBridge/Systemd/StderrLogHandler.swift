// Readable one-line log output on stderr, and the choice between it and the journal.

import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line per event on stderr:
/// `2025-05-01T12:00:00.123+0200 info foneai-bridge: Call started call_id=abc campaign="summer sale"`.
/// Without timestamps (when journald captures stderr and adds its own):
/// `info foneai-bridge: Call started call_id=abc`.
public struct StderrLogHandler: LogHandler {
    public let label: String
    public var timestamps: Bool
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let levelBox: LogLevelBox

    public init(label: String, level: LogLevelBox = .shared, timestamps: Bool = getenv("JOURNAL_STREAM") == nil,
                metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.label = label
        self.levelBox = level
        self.timestamps = timestamps
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
        let line = LogFormatting.line(timestamp: timestamps ? LogFormatting.timestamp() : nil, level: event.level,
                                      label: label, message: event.message.description, metadata: merged)
        LogFormatting.writeToStderr(line)
    }
}

/// Formatting shared by the handlers.
public enum LogFormatting {
    /// Handler, provider and event metadata, later ones winning, plus the event's error.
    static func merge(handler: Logger.Metadata, provider: Logger.MetadataProvider?, event: LogEvent) -> Logger.Metadata {
        var merged = handler
        if let provided = provider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, new in new }
        }
        if let metadata = event.metadata, !metadata.isEmpty {
            merged.merge(metadata) { _, new in new }
        }
        if let error = event.error, merged["error"] == nil {
            merged["error"] = "\(error)"
        }
        return merged
    }

    /// `info foneai-bridge: message key=value ...` with an optional leading timestamp.
    public static func line(timestamp: String?, level: Logger.Level, label: String, message: String,
                            metadata: Logger.Metadata) -> String {
        var line = ""
        if let timestamp { line += timestamp + " " }
        line += level.rawValue + " " + label + ": " + message
        if !metadata.isEmpty {
            line += " " + formatMetadata(metadata)
        }
        return line
    }

    /// `key=value` pairs sorted by key, values quoted when they contain spaces, quotes, `=` or
    /// control characters.
    public static func formatMetadata(_ metadata: Logger.Metadata) -> String {
        metadata.keys.sorted().map { key in
            key + "=" + quoteIfNeeded(plainValue(metadata[key]!))
        }.joined(separator: " ")
    }

    public static func plainValue(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array, .dictionary: return value.description
        }
    }

    public static func quoteIfNeeded(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0.value < 0x20 || $0.value == 0x7F
        }
        guard needsQuotes else { return value }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u{" + String(scalar.value, radix: 16) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// Local time, millisecond precision: `2025-05-01T12:00:00.123+0200`.
    static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var seconds = ts.tv_sec
        var tm = tm()
        localtime_r(&seconds, &tm)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &tm)
        var zone = [CChar](repeating: 0, count: 16)
        let z = strftime(&zone, zone.count, "%z", &tm)
        let millis = Int(ts.tv_nsec / 1_000_000)
        let ms = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        let base = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let offset = String(decoding: zone[0..<z].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return base + "." + ms + offset
    }

    /// One write(2) per line so lines from different threads do not interleave.
    static func writeToStderr(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(2, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 {
                    offset += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}

/// Chooses and builds the log handlers of the daemon.
public enum LoggingBootstrap {
    public static let journalSocketPath = "/run/systemd/journal/socket"

    /// True when started by systemd (JOURNAL_STREAM or INVOCATION_ID set) and the journal socket exists.
    public static func shouldUseJournal() -> Bool {
        shouldUseJournal(environment: { key in getenv(key).map { String(cString: $0) } },
                         journalSocketPath: journalSocketPath)
    }

    /// Testable variant with an injected environment and socket path.
    public static func shouldUseJournal(environment: (String) -> String?, journalSocketPath: String) -> Bool {
        let underSystemd = [ "JOURNAL_STREAM", "INVOCATION_ID" ].contains { environment($0)?.isEmpty == false }
        guard underSystemd else { return false }
        var st = stat()
        return stat(journalSocketPath, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK
    }

    private static let useJournal = shouldUseJournal()

    /// The handler for `label`: journald when `shouldUseJournal()`, else stderr. For
    /// `LoggingSystem.bootstrap { LoggingBootstrap.makeHandler(label: $0, level: box) }`.
    public static func makeHandler(label: String, level: LogLevelBox = .shared, useJournal: Bool? = nil,
                                   identifier: String = "foneai-bridge") -> any LogHandler {
        if useJournal ?? Self.useJournal {
            return JournaldLogHandler(label: label, identifier: identifier, level: level)
        }
        return StderrLogHandler(label: label, level: level)
    }

    /// Bootstraps swift-log with `makeHandler`. Call once, early in main.
    public static func bootstrap(level: LogLevelBox = .shared, identifier: String = "foneai-bridge") {
        let useJournal = Self.useJournal
        LoggingSystem.bootstrap { label in
            makeHandler(label: label, level: level, useJournal: useJournal, identifier: identifier)
        }
    }
}
