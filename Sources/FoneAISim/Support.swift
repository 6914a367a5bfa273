import FoundationEssentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC), the same clock NIODeadline uses.
@inline(__always)
public func simMonotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

enum SimClock {
    /// CLOCK_REALTIME − CLOCK_MONOTONIC in ns, read once (the tightest of a few reads), to put
    /// the kernel's packet time stamps (real time) on the monotonic clock everything else uses.
    static let realtimeMinusMonotonic: Int64 = {
        var best: (span: Int64, offset: Int64) = (.max, 0)
        for _ in 0..<5 {
            var a = timespec(), r = timespec(), b = timespec()
            clock_gettime(CLOCK_MONOTONIC, &a)
            clock_gettime(CLOCK_REALTIME, &r)
            clock_gettime(CLOCK_MONOTONIC, &b)
            let mono = { (t: timespec) in Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }
            let span = mono(b) - mono(a)
            if span < best.span { best = (span, mono(r) - (mono(a) + span / 2)) }
        }
        return best.offset
    }()
}

enum SimTime {
    /// Asterisk-style timestamp: `2026-11-27T02:39:08.713+0000` (UTC).
    static func asteriskTimestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let secs = Int64(ts.tv_sec)
        let millis = Int(ts.tv_nsec / 1_000_000)
        var days = secs / 86400
        var rem = secs % 86400
        if rem < 0 { rem += 86400; days -= 1 }
        let (y, m, d) = civilFromDays(days)
        let hh = Int(rem / 3600), mm = Int((rem % 3600) / 60), ss = Int(rem % 60)
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(hh, 2)):\(pad(mm, 2)):\(pad(ss, 2)).\(pad(millis, 3))+0000"
    }

    static func unixSeconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int(ts.tv_sec)
    }

    static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// Howard Hinnant's civil_from_days.
    static func civilFromDays(_ z0: Int64) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(m <= 2 ? y + 1 : y), Int(m), Int(d))
    }
}

enum SimURL {
    /// Splits "path?query" and decodes the query into a dictionary (last value wins).
    static func split(_ target: String) -> (path: String, query: [String: String]) {
        guard let q = target.firstIndex(of: "?") else { return (percentDecode(target), [:]) }
        let path = String(target[..<q])
        let queryString = String(target[target.index(after: q)...])
        return (percentDecode(path), parseQuery(queryString))
    }

    static func parseQuery(_ s: String) -> [String: String] {
        var out: [String: String] = [:]
        for part in s.split(separator: "&", omittingEmptySubsequences: true) {
            if let eq = part.firstIndex(of: "=") {
                let k = percentDecode(String(part[..<eq]), plusAsSpace: true)
                let v = percentDecode(String(part[part.index(after: eq)...]), plusAsSpace: true)
                out[k] = v
            } else {
                out[percentDecode(String(part), plusAsSpace: true)] = ""
            }
        }
        return out
    }

    static func percentDecode(_ s: String, plusAsSpace: Bool = false) -> String {
        guard s.contains("%") || (plusAsSpace && s.contains("+")) else { return s }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%"), it.count >= 2,
                let h = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(h)
                it = it.dropFirst(2)
            } else if plusAsSpace && c == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func percentEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let h = String(b, radix: 16, uppercase: true)
                out += "%" + (h.count == 1 ? "0" + h : h)
            }
        }
        return out
    }
}

enum SimAuth {
    /// Returns "user:pass" from an `Authorization: Basic …` header value.
    static func basicCredentials(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic" else { return nil }
        guard let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Random hex string of `count` hex digits.
func randomHex(_ count: Int) -> String {
    var s = ""
    for _ in 0..<count { s += String(Int.random(in: 0..<16), radix: 16) }
    return s
}
