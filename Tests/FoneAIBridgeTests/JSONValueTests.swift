import FoundationEssentials
import Testing

@testable import FoneAIBridge

@Suite struct JSONValueTests {
    @Test func parsesAllKinds() throws {
        let v = try JSONValue.parse(#"{"a":null,"b":true,"c":false,"d":-12.5e1,"e":"x\"y\\z\n\u00e9\ud83d\ude00","f":[1,[2],{}],"g":{}}"#)
        #expect(v["a"] == .null)
        #expect(v["b"]?.boolValue == true)
        #expect(v["c"]?.boolValue == false)
        #expect(v["d"]?.doubleValue == -125)
        #expect(v["d"]?.intValue == -125)
        #expect(v["e"]?.stringValue == "x\"y\\z\né😀")
        #expect(v["f"]?[0]?.intValue == 1)
        #expect(v["f"]?[1] == [2])
        #expect(v["f"]?[2] == .object([:]))
        #expect(v["g"]?.objectValue?.isEmpty == true)
        #expect(v["missing"] == nil)
        #expect(v["f"]?[9] == nil)
    }

    @Test func accessorsRejectOtherKinds() {
        let v: JSONValue = ["n": 1.5, "s": "1"]
        #expect(v["n"]?.intValue == nil)
        #expect(v["n"]?.stringValue == nil)
        #expect(v["s"]?.intValue == nil)
        #expect(v["s"]?.boolValue == nil)
        #expect(JSONValue.string("x")["k"] == nil)
        #expect(JSONValue.number(1e300).intValue == nil)
        #expect(JSONValue.number(42).typeDescription == "a number")
    }

    @Test func serialisesCompactlyWithSortedKeys() throws {
        let v: JSONValue = ["b": [1, 2.5, "x"], "a": nil, "c": ["z": true, "y": false]]
        #expect(v.jsonString() == #"{"a":null,"b":[1,2.5,"x"],"c":{"y":false,"z":true}}"#)
        #expect(JSONValue.string("a\"b\\c\n\u{01}").jsonString() == #""a\"b\\c\n\u0001""#)
        #expect(JSONValue.number(.infinity).jsonString() == "null")
        #expect(JSONValue.number(-0.001).jsonString() == "-0.001")
        #expect(JSONValue.number(123456789).jsonString() == "123456789")
    }

    @Test func roundTripsThroughText() throws {
        let original: JSONValue = ["k": ["nested": [1, -2, 3.25, "é😀", nil, true]], "e": "", "u": "\u{1F}"]
        #expect(try JSONValue.parse(original.jsonString()) == original)
    }

    @Test func codableMatchesJSONDecoderAndEncoder() throws {
        let text = #"{"a":[1,2,{"b":"c"}],"d":null,"e":true,"f":1.5}"#
        let decoded = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(decoded == (try JSONValue.parse(text)))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let encoded = String(decoding: try encoder.encode(decoded), as: UTF8.self)
        #expect(try JSONValue.parse(encoded) == decoded)
    }

    @Test func strictModeRejectsCommentsAndTrailingCommas() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{\"a\":1} // c") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[1,2,]") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{\"a\":1,}") }
    }

    @Test func lenientModeAcceptsCommentsAndTrailingCommas() throws {
        let text = """
            // leading comment
            {
              "a": "http://x/y", // a URL with // inside a string stays intact
              /* block
                 comment */ "b": [1, 2,],
              "c": "/* not a comment */",
            }
            """
        let v = try JSONValue.parse(text, allowComments: true)
        #expect(v["a"]?.stringValue == "http://x/y")
        #expect(v["b"] == [1, 2])
        #expect(v["c"]?.stringValue == "/* not a comment */")
    }

    @Test func errorsCarryLineAndColumn() {
        do {
            _ = try JSONValue.parse("{\n  \"a\": 1\n  \"b\": 2\n}")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == 3)
            #expect(error.column == 3)
            #expect(error.description.hasPrefix("line 3:3: "))
        }
        do {
            _ = try JSONValue.parse("{\"é\": tru }")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == 1)
            #expect(error.column == 7)  // columns count characters, not bytes
        }
    }

    @Test(arguments: [
        "", "   ", "{", "[1", "{\"a\"}", "{\"a\":}", "{a:1}", "'x'", "\"abc", "\"a\nb\"", "01", "1.", "1e", "-",
        "tru", "nul", "truex", "[1 2]", "{\"a\":1 \"b\":2}", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "1 2", "/* x",
        "\"\u{01}\"",
    ])
    func rejectsMalformedInput(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text, allowComments: text == "/* x") }
    }

    @Test func unterminatedCommentIsReported() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{} /* open", allowComments: true) }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect((try? JSONValue.parse(ok)) != nil)
    }

    @Test func duplicateKeysKeepTheLastValueAndBOMIsSkipped() throws {
        #expect(try JSONValue.parse("\u{FEFF}{\"a\":1,\"a\":2}")["a"] == 2)
    }

    @Test func syntaxErrorsDoNotQuoteTheDocument() {
        do {
            _ = try JSONValue.parse("{\"password\": hunter2}")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
    }
}
