import Testing

@testable import FoneAIBridge

/// ITU-T G.191 Software Tool Library reference (`g711.c`, `ulaw_compress`), transcribed.
func referenceUlawCompress(_ x: Int16) -> UInt8 {
    let xi = Int32(x)
    var absno: Int32 = xi < 0 ? ((~xi) >> 2) + 33 : (xi >> 2) + 33
    if absno > 0x1FFF { absno = 0x1FFF }
    var i = absno >> 6
    var segno: Int32 = 1
    while i != 0 {
        segno += 1
        i >>= 1
    }
    let high = 8 - segno
    let low = 0xF - ((absno >> segno) & 0xF)
    var out = (high << 4) | low
    if xi >= 0 { out |= 0x80 }
    return UInt8(truncatingIfNeeded: out)
}

/// ITU-T G.191 `ulaw_expand`, transcribed.
func referenceUlawExpand(_ code: UInt8) -> Int16 {
    let sign: Int32 = code < 0x80 ? -1 : 1
    var mantissa = Int32(~code & 0x7F)  // 7-bit magnitude, complemented
    let exponent = mantissa >> 4
    let segment = exponent + 1
    mantissa &= 0xF
    let step: Int32 = 4 << segment
    return Int16(sign * (((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)))
}

/// ITU-T G.191 `alaw_compress`, transcribed.
func referenceAlawCompress(_ x: Int16) -> UInt8 {
    let xi = Int32(x)
    var ix: Int32 = xi < 0 ? (~xi) >> 4 : xi >> 4
    if ix > 15 {
        var iexp: Int32 = 1
        while ix > 16 + 15 {
            ix >>= 1
            iexp += 1
        }
        ix -= 16
        ix += iexp << 4
    }
    if xi >= 0 { ix |= 0x80 }
    return UInt8(truncatingIfNeeded: ix ^ 0x55)
}

/// ITU-T G.191 `alaw_expand`, transcribed.
func referenceAlawExpand(_ code: UInt8) -> Int16 {
    var ix = Int32(code ^ 0x55)
    ix &= 0x7F
    let iexp = ix >> 4
    var mant = ix & 0xF
    if iexp > 0 { mant += 16 }
    mant = (mant << 4) + 0x8
    if iexp > 1 { mant <<= (iexp - 1) }
    return Int16(code > 127 ? mant : -mant)
}

@Suite struct G711Tests {
    @Test func knownCodePoints() {
        #expect(G711.ulawDecode(0xFF) == 0)
        #expect(G711.ulawDecode(0x7F) == 0)
        #expect(G711.ulawDecode(0x00) == -32124)
        #expect(G711.ulawDecode(0x80) == 32124)
        #expect(G711.alawDecode(0xD5) == 8)
        #expect(G711.alawDecode(0x55) == -8)
        #expect(G711.alawDecode(0xAA) == 32256)
        #expect(G711.alawDecode(0x2A) == -32256)
        #expect(G711.ulawEncode(0) == 0xFF)
        #expect(G711.ulawEncode(32767) == 0x80)
        #expect(G711.ulawEncode(-32768) == 0x00)
        #expect(G711.alawEncode(0) == 0xD5)
        #expect(G711.alawEncode(-1) == 0x55)
        #expect(G711.alawEncode(32767) == 0xAA)
        #expect(G711.alawEncode(-32768) == 0x2A)
    }

    @Test func decodeTablesMatchTheReference() {
        for code in 0...255 {
            #expect(G711.ulawDecode(UInt8(code)) == referenceUlawExpand(UInt8(code)), "μ-law \(code)")
            #expect(G711.alawDecode(UInt8(code)) == referenceAlawExpand(UInt8(code)), "A-law \(code)")
        }
    }

    @Test func encodersMatchTheReferenceForEverySample() {
        var ulawMismatches = 0
        var alawMismatches = 0
        for v in Int(Int16.min)...Int(Int16.max) {
            let s = Int16(v)
            if G711.ulawEncode(s) != referenceUlawCompress(s) { ulawMismatches += 1 }
            if G711.alawEncode(s) != referenceAlawCompress(s) { alawMismatches += 1 }
        }
        #expect(ulawMismatches == 0)
        #expect(alawMismatches == 0)
    }

    @Test func codesRoundTrip() {
        // Every code except μ-law's "negative zero" (0x7F decodes to 0, which encodes as 0xFF)
        // survives decode then encode.
        for code in 0...255 {
            let c = UInt8(code)
            if c != 0x7F { #expect(G711.ulawEncode(G711.ulawDecode(c)) == c, "μ-law \(code)") }
            #expect(G711.alawEncode(G711.alawDecode(c)) == c, "A-law \(code)")
        }
    }

    @Test func roundTripErrorStaysWithinQuantisation() {
        // Each code stands for an interval whose midpoint is its decoded value, so the error is at
        // most half the step of the code's segment (outside the clipping range).
        for v in Int(Int16.min)...Int(Int16.max) {
            let s = Int16(v)
            let u = G711.ulawEncode(s)
            let uStep = 8 << Int(((~u) >> 4) & 7)
            if abs(v) <= 32124 {
                #expect(abs(Int(G711.ulawDecode(u)) - v) <= uStep / 2, "μ-law \(v)")
            }
            let a = G711.alawEncode(s)
            let segment = Int(((a ^ 0x55) >> 4) & 7)
            let aStep = 16 << max(0, segment - 1)
            if abs(v) <= 32256 {
                #expect(abs(Int(G711.alawDecode(a)) - v) <= aStep / 2, "A-law \(v)")
            }
        }
    }

    @Test func encodingIsMonotonic() {
        // Map codes to an ordered level index and check it never decreases as the input grows.
        func ulawLevel(_ c: UInt8) -> Int { c & 0x80 != 0 ? 127 - Int(c & 0x7F) : -(127 - Int(c)) }
        func alawLevel(_ c: UInt8) -> Int {
            let m = Int((c ^ 0x55) & 0x7F)
            return (c ^ 0x55) & 0x80 != 0 ? m : -m - 1
        }
        var lastU = Int.min, lastA = Int.min
        for v in Int(Int16.min)...Int(Int16.max) {
            let u = ulawLevel(G711.ulawEncode(Int16(v)))
            let a = alawLevel(G711.alawEncode(Int16(v)))
            #expect(u >= lastU)
            #expect(a >= lastA)
            lastU = u
            lastA = a
        }
    }
}

