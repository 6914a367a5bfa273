import FoneAIControl

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Unbuffered output with one write(2) per call (works with `--follow | grep`).
enum Output {
    static func out(_ text: String) { write(fd: 1, text + "\n") }
    static func err(_ text: String) { write(fd: 2, text.hasSuffix("\n") ? text : text + "\n") }

    private static func write(fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                if fd == 1 && errno == EPIPE { Glibc.exit(0) }
                return
            }
        }
        bytes.removeAll()
    }
}

/// Human-readable rendering of results.
enum Format {
    static func status(_ s: StatusInfo) -> String {
        var rows: [(String, String)] = [
            ("version", s.version),
            ("pid", "\(s.pid)"),
            ("uptime", duration(s.uptimeSeconds)),
            ("ari", "\(s.ariConnected ? "connected" : "DISCONNECTED") \(s.ariURL) (app \(s.appName))"),
            ("draining", s.draining ? "yes (new calls are rejected)" : "no"),
            ("live calls", "\(s.liveCalls)"),
            ("calls handled", "\(s.totals.handled)"),
            ("calls failed", "\(s.totals.failed)"),
            ("ai errors", "\(s.totals.aiErrors)"),
            ("rejected busy", "\(s.totals.rejectedBusy)"),
            ("rejected draining", "\(s.totals.rejectedDraining)"),
            ("config", s.configPath),
        ]
        if let reload = s.lastReload {
            rows.append(("last reload", "\(timestamp(reload.at)) \(reload.ok ? "ok" : "FAILED")\(reload.message.isEmpty ? "" : ": " + reload.message)"))
        } else {
            rows.append(("last reload", "never"))
        }
        return keyValueLines(rows)
    }

    static func keyValueLines(_ rows: [(String, String)]) -> String {
        let width = rows.map { $0.0.count }.max() ?? 0
        return rows.map { pad($0.0 + ":", width + 1) + " " + $0.1 }.joined(separator: "\n")
    }

    static func callsTable(_ calls: [CallInfo]) -> String {
        if calls.isEmpty { return "no live calls" }
        let header = ["CALL ID", "CALLER", "CAMPAIGN", "STATE", "AGE", "IN", "OUT", "DROP", "BUF ms", "SESSION"]
        let rightAligned: Set<Int> = [4, 5, 6, 7, 8]
        let rows = calls.map { c in
            [c.callId, c.caller.isEmpty ? "-" : c.caller, c.campaign ?? "-", c.state, duration(c.ageSeconds),
             "\(c.packetsIn)", "\(c.packetsOut)", "\(c.packetsDropped)", "\(c.playoutBufferMs)", c.aiSessionId ?? "-"]
        }
        return table(header: header, rows: rows, rightAligned: rightAligned)
    }

    static func table(header: [String], rows: [[String]], rightAligned: Set<Int>) -> String {
        var widths = header.map { $0.count }
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func render(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in cells.enumerated() {
                let last = i == cells.count - 1
                if rightAligned.contains(i) {
                    parts.append(padLeft(cell, widths[i]))
                } else {
                    parts.append(last ? cell : pad(cell, widths[i]))
                }
            }
            return parts.joined(separator: "  ")
        }
        return ([render(header)] + rows.map(render)).joined(separator: "\n")
    }

    /// Counters sorted by name; with `previous`, a per-second rate column.
    static func stats(_ s: StatsSnapshot, previous: StatsSnapshot?) -> String {
        var lines = ["\(timestamp(s.at))  up \(duration(s.uptimeSeconds))  live calls: \(s.liveCalls)"]
        let names = s.counters.keys.sorted()
        if names.isEmpty { return lines[0] + "\n(no counters)" }
        let nameWidth = names.map(\.count).max() ?? 0
        let valueWidth = names.map { String(s.counters[$0]!).count }.max() ?? 0
        let elapsed = previous.map { s.at - $0.at } ?? 0
        for name in names {
            let value = s.counters[name]!
            var line = pad(name, nameWidth) + "  " + padLeft(String(value), valueWidth)
            if let previous, elapsed > 0 {
                if let before = previous.counters[name], before <= value {
                    line += "  " + padLeft(rate(Double(value - before) / elapsed), 10) + "/s"
                } else {
                    line += "  " + padLeft("-", 10) + "/s"
                }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    static func rate(_ value: Double) -> String {
        if value >= 100 || value == 0 { return String(Int(value.rounded())) }
        let tenths = (value * 10).rounded() / 10
        return String(tenths)
    }

    static func callCount(_ n: Int) -> String { n == 1 ? "1 call" : "\(n) calls" }

    /// `3d 04h`, `2h 03m`, `4m 05s`, `12.3s`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "-" }
        if seconds < 60 { return String((seconds * 10).rounded() / 10) + "s" }
        let total = Int(seconds)
        let d = total / 86_400, h = (total % 86_400) / 3600, m = (total % 3600) / 60, s = total % 60
        if d > 0 { return "\(d)d \(two(h))h" }
        if h > 0 { return "\(h)h \(two(m))m" }
        return "\(m)m \(two(s))s"
    }

    /// Local time `2025-05-01 12:00:00`.
    static func timestamp(_ unixSeconds: Double) -> String {
        guard unixSeconds.isFinite else { return "-" }
        var seconds = time_t(unixSeconds)
        var tm = tm()
        localtime_r(&seconds, &tm)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &tm)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    static func padLeft(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }
}
