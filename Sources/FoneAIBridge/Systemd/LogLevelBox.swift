// The process-wide log level, changeable at runtime (SIGHUP reload).

import Logging
import Synchronization

/// A shared, thread-safe log level that the log handlers of this package consult on every
/// log statement, so a reload can change the level of every existing Logger at once.
///
/// Setting `logger.logLevel` on a Logger whose handler uses a box writes through to the box
/// (it changes the level for every logger sharing the box).
public final class LogLevelBox: Sendable {
    private let raw: Atomic<UInt8>

    public init(_ level: Logger.Level = .info) {
        self.raw = Atomic(Self.encode(level))
    }

    public var level: Logger.Level {
        get { Self.decode(raw.load(ordering: .relaxed)) }
        set { raw.store(Self.encode(newValue), ordering: .relaxed) }
    }

    /// The box used when none is passed explicitly.
    public static let shared = LogLevelBox(.info)

    private static func encode(_ level: Logger.Level) -> UInt8 {
        switch level {
        case .trace: return 0
        case .debug: return 1
        case .info: return 2
        case .notice: return 3
        case .warning: return 4
        case .error: return 5
        case .critical: return 6
        }
    }

    private static func decode(_ raw: UInt8) -> Logger.Level {
        switch raw {
        case 0: return .trace
        case 1: return .debug
        case 2: return .info
        case 3: return .notice
        case 4: return .warning
        case 5: return .error
        default: return .critical
        }
    }
}
