import FoundationEssentials

/// Any JSON value. Used for configuration files, the `custom` channel variable and other
/// free-form JSON; never on the per-packet media path.
///
/// Numbers are kept as `Double` (like JavaScript); integers up to 2^53 round-trip exactly.
public enum JSONValue: Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

// MARK: - Accessors

extension JSONValue {
    /// The member `key` of an object; `nil` for a missing key or when this is not an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The element at `index` of an array; `nil` when out of range or not an array.
    public subscript(index: Int) -> JSONValue? {
        if case .array(let elements) = self, elements.indices.contains(index) { return elements[index] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The number as an `Int` when it is a whole number that fits; `nil` otherwise.
    public var intValue: Int? {
        guard case .number(let d) = self, d.isFinite, d.rounded(.towardZero) == d,
              d >= -9_007_199_254_740_992, d <= 9_007_199_254_740_992 else { return nil }
        return Int(d)
    }

    public var doubleValue: Double? {
        if case .number(let d) = self { return d }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// "null", "a boolean", "a number", "a string", "an array" or "an object": for error messages.
    public var typeDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var o: [String: JSONValue] = [:]
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
}

// MARK: - Codable

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else if let o = try? c.decode([String: JSONValue].self) {
            self = .object(o)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d):
            if let i = self.intValue { try c.encode(i) } else { try c.encode(d) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

// MARK: - Serialisation

extension JSONValue {
    /// Compact JSON text with object keys sorted, so equal values give equal text.
    /// Non-finite numbers (not representable in JSON) are written as `null`.
    public func jsonString() -> String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let d): JSONValue.writeNumber(d, to: &out)
        case .string(let s): JSONValue.writeString(s, to: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(to: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, k) in o.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(k, to: &out)
                out += ":"
                o[k]!.write(to: &out)
            }
            out += "}"
        }
    }

    static func writeNumber(_ d: Double, to out: inout String) {
        guard d.isFinite else { out += "null"; return }
        if d.rounded(.towardZero) == d, abs(d) < 1e15 {
            out += String(Int64(d))
        } else {
            out += "\(d)"  // Swift prints the shortest round-tripping form, e.g. 0.1, 1e-05, 1e+20
        }
    }

    /// Writes `s` as a JSON string literal (with quotes).
    public static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

// MARK: - Parsing

/// A JSON syntax error with the 1-based line and column (in characters) where it was found.
/// The message never quotes the document's text, so it is safe to log for files holding secrets.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public let message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    public var description: String { "line \(line):\(column): \(message)" }
}

extension JSONValue {
    /// Parses JSON text. With `allowComments`, `//` line comments, `/* */` block comments
    /// (outside strings) and trailing commas in arrays and objects are accepted too.
    /// A duplicated object key keeps its last value.
    public static func parse(_ text: String, allowComments: Bool = false) throws(JSONParseError) -> JSONValue {
        var bytes = Array(text.utf8)
        // Skip a UTF-8 byte order mark.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var parser = JSONParser(bytes: bytes, lenient: allowComments)
        return try parser.parseDocument()
    }

    /// Parses JSON from UTF-8 bytes.
    public static func parse(utf8 bytes: some Sequence<UInt8>, allowComments: Bool = false) throws(JSONParseError) -> JSONValue {
        var array = Array(bytes)
        if array.starts(with: [0xEF, 0xBB, 0xBF]) { array.removeFirst(3) }
        var parser = JSONParser(bytes: array, lenient: allowComments)
        return try parser.parseDocument()
    }
}

struct JSONParser {
    let bytes: [UInt8]
    let lenient: Bool
    var pos = 0
    var depth = 0
    static let maxDepth = 512

    init(bytes: [UInt8], lenient: Bool) {
        self.bytes = bytes
        self.lenient = lenient
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        try skipWhitespace()
        if pos >= bytes.count { throw error("the document is empty") }
        let value = try parseValue()
        try skipWhitespace()
        if pos < bytes.count { throw error("unexpected text after the end of the JSON value") }
        return value
    }

    // MARK: position and errors

    func location(of offset: Int) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        var i = 0
        let end = min(offset, bytes.count)
        while i < end {
            let b = bytes[i]
            if b == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {  // count characters, not UTF-8 continuation bytes
                column += 1
            }
            i += 1
        }
        return (line, column)
    }

    func error(_ message: String, at offset: Int? = nil) -> JSONParseError {
        let loc = location(of: offset ?? pos)
        return JSONParseError(line: loc.line, column: loc.column, message: message)
    }

    /// Describes the byte at `pos` without quoting document text (only JSON punctuation is named).
    func found() -> String {
        guard pos < bytes.count else { return "the end of the file" }
        let b = bytes[pos]
        switch b {
        case UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "["), UInt8(ascii: "]"),
             UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "\""), UInt8(ascii: "/"):
            return "'\(Character(Unicode.Scalar(b)))'"
        default:
            return "other text"
        }
    }

    // MARK: whitespace and comments

    mutating func skipWhitespace() throws(JSONParseError) {
        while pos < bytes.count {
            let b = bytes[pos]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 {
                pos += 1
            } else if lenient, b == UInt8(ascii: "/"), pos + 1 < bytes.count {
                let next = bytes[pos + 1]
                if next == UInt8(ascii: "/") {
                    pos += 2
                    while pos < bytes.count, bytes[pos] != 0x0A { pos += 1 }
                } else if next == UInt8(ascii: "*") {
                    let start = pos
                    pos += 2
                    var closed = false
                    while pos + 1 < bytes.count {
                        if bytes[pos] == UInt8(ascii: "*"), bytes[pos + 1] == UInt8(ascii: "/") {
                            pos += 2
                            closed = true
                            break
                        }
                        pos += 1
                    }
                    if !closed { throw error("unterminated /* comment", at: start) }
                } else {
                    return
                }
            } else {
                return
            }
        }
    }

    // MARK: values

    mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard pos < bytes.count else { throw error("expected a value, found the end of the file") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectWord("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectWord("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectWord("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        case UInt8(ascii: "/") where !lenient:
            throw error("comments are not allowed in JSON")
        case UInt8(ascii: "'"):
            throw error("strings must use double quotes")
        default:
            throw error("expected a value, found \(found())")
        }
    }

    mutating func expectWord(_ word: StaticString) throws(JSONParseError) {
        let start = pos
        let count = word.utf8CodeUnitCount
        let ok = word.withUTF8Buffer { w -> Bool in
            guard start + count <= bytes.count else { return false }
            for i in 0..<count where bytes[start + i] != w[i] { return false }
            return true
        }
        guard ok else { throw error("expected a value (a string must be in double quotes)", at: start) }
        pos += count
        if pos < bytes.count, isIdentifierByte(bytes[pos]) {
            throw error("expected a value (a string must be in double quotes)", at: start)
        }
    }

    func isIdentifierByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_")
    }

    mutating func enter() throws(JSONParseError) {
        depth += 1
        if depth > JSONParser.maxDepth { throw error("nesting is deeper than \(JSONParser.maxDepth) levels") }
    }

    mutating func parseObject() throws(JSONParseError) -> JSONValue {
        let open = pos
        try enter()
        pos += 1  // {
        var members: [String: JSONValue] = [:]
        try skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            depth -= 1
            return .object(members)
        }
        while true {
            try skipWhitespace()
            guard pos < bytes.count else { throw error("unterminated object (the '{' is at \(describe(open)))") }
            if bytes[pos] == UInt8(ascii: "}"), lenient, !members.isEmpty {
                pos += 1  // trailing comma
                break
            }
            guard bytes[pos] == UInt8(ascii: "\"") else {
                if bytes[pos] == UInt8(ascii: "}") { throw error("trailing comma before '}'") }
                throw error("expected a member name in double quotes, found \(found())")
            }
            let key = try parseString()
            try skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                throw error("expected ':' after a member name, found \(found())")
            }
            pos += 1
            try skipWhitespace()
            let value = try parseValue()
            members[key] = value
            try skipWhitespace()
            guard pos < bytes.count else { throw error("unterminated object (the '{' is at \(describe(open)))") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                continue
            }
            if bytes[pos] == UInt8(ascii: "}") {
                pos += 1
                break
            }
            throw error("expected ',' or '}' after an object member, found \(found())")
        }
        depth -= 1
        return .object(members)
    }

    mutating func parseArray() throws(JSONParseError) -> JSONValue {
        let open = pos
        try enter()
        pos += 1  // [
        var elements: [JSONValue] = []
        try skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            try skipWhitespace()
            guard pos < bytes.count else { throw error("unterminated array (the '[' is at \(describe(open)))") }
            if bytes[pos] == UInt8(ascii: "]") {
                if lenient, !elements.isEmpty {
                    pos += 1
                    break
                }
                throw error("trailing comma before ']'")
            }
            elements.append(try parseValue())
            try skipWhitespace()
            guard pos < bytes.count else { throw error("unterminated array (the '[' is at \(describe(open)))") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                continue
            }
            if bytes[pos] == UInt8(ascii: "]") {
                pos += 1
                break
            }
            throw error("expected ',' or ']' after an array element, found \(found())")
        }
        depth -= 1
        return .array(elements)
    }

    func describe(_ offset: Int) -> String {
        let loc = location(of: offset)
        return "line \(loc.line):\(loc.column)"
    }

    mutating func parseString() throws(JSONParseError) -> String {
        let open = pos
        pos += 1  // opening quote
        var scalars = String.UnicodeScalarView()
        var runStart = pos
        // Fast path: copy runs of plain bytes at once.
        func flushRun(_ end: Int, into scalars: inout String.UnicodeScalarView) {
            if end > runStart {
                let s = String(decoding: bytes[runStart..<end], as: UTF8.self)
                scalars.append(contentsOf: s.unicodeScalars)
            }
        }
        while true {
            guard pos < bytes.count else { throw error("unterminated string (it starts at \(describe(open)))") }
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                flushRun(pos, into: &scalars)
                pos += 1
                return String(scalars)
            }
            if b < 0x20 {
                if b == 0x0A { throw error("unterminated string (it starts at \(describe(open)))") }
                throw error("control character in a string (write it as an escape such as \\t)")
            }
            if b == UInt8(ascii: "\\") {
                flushRun(pos, into: &scalars)
                let escapeStart = pos
                pos += 1
                guard pos < bytes.count else { throw error("unterminated string (it starts at \(describe(open)))") }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    let unit = try parseHex4(escapeStart)
                    if (0xD800...0xDBFF).contains(unit) {
                        // A high surrogate must be followed by \u and a low surrogate.
                        if pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                            pos += 2
                            let low = try parseHex4(escapeStart)
                            guard (0xDC00...0xDFFF).contains(low) else {
                                throw error("invalid UTF-16 surrogate pair in a \\u escape", at: escapeStart)
                            }
                            let value = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                            scalars.append(Unicode.Scalar(value)!)
                        } else {
                            throw error("lone UTF-16 surrogate in a \\u escape", at: escapeStart)
                        }
                    } else if (0xDC00...0xDFFF).contains(unit) {
                        throw error("lone UTF-16 surrogate in a \\u escape", at: escapeStart)
                    } else {
                        scalars.append(Unicode.Scalar(unit)!)
                    }
                default:
                    throw error("invalid escape sequence in a string", at: escapeStart)
                }
                runStart = pos
                continue
            }
            pos += 1
        }
    }

    mutating func parseHex4(_ escapeStart: Int) throws(JSONParseError) -> UInt32 {
        guard pos + 4 <= bytes.count else { throw error("incomplete \\u escape", at: escapeStart) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let digit: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape (needs 4 hex digits)", at: escapeStart)
            }
            v = v << 4 | digit
            pos += 1
        }
        return v
    }

    mutating func parseNumber() throws(JSONParseError) -> Double {
        let start = pos
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number", at: start) }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < bytes.count, isDigit(bytes[pos]) { throw error("numbers must not have leading zeros", at: start) }
        } else {
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number (a digit must follow '.')", at: start) }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number (bad exponent)", at: start) }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, isIdentifierByte(bytes[pos]) { throw error("invalid number", at: start) }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        guard let d = Double(text) else { throw error("invalid number", at: start) }
        return d
    }

    func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}
