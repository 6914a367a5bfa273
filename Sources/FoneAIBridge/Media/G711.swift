/// ITU-T G.711 μ-law and A-law companding.
///
/// Encoding gives the same codes as the ITU-T G.191 reference implementation (`g711.c` of the
/// Software Tool Library); decoding uses 256-entry tables built from the standard expansion.
public enum G711 {
    // MARK: μ-law

    /// Encodes one 16-bit linear sample to μ-law.
    @inlinable
    public static func ulawEncode(_ sample: Int16) -> UInt8 {
        // Work on the 14-bit magnitude (the 2 lowest bits are below μ-law's resolution).
        // Negative samples use the one's complement (as ITU-T G.191's reference does), so
        // -1 encodes as "negative zero" and segment edges are symmetric.
        var pcm: Int32
        let mask: UInt8
        if sample < 0 {
            pcm = ~Int32(sample) >> 2
            mask = 0x7F
        } else {
            pcm = Int32(sample) >> 2
            mask = 0xFF
        }
        if pcm > 8159 { pcm = 8159 }  // clip
        pcm += 0x21  // bias (0x84 >> 2)
        // Segment: position of the highest set bit above bit 5 (pcm is 0x21...0x2000).
        let segment = Int32(26 - UInt32(pcm).leadingZeroBitCount)  // 0 for pcm < 0x40 ... 7 for pcm >= 0x1000
        if segment >= 8 { return 0x7F ^ mask }  // pcm == 0x2000 (clipped full scale)
        let value = UInt8(truncatingIfNeeded: (segment << 4) | ((pcm >> (segment + 1)) & 0x0F))
        return value ^ mask
    }

    /// Decodes one μ-law byte to a 16-bit linear sample.
    @inlinable
    public static func ulawDecode(_ code: UInt8) -> Int16 {
        ulawTable[Int(code)]
    }

    // MARK: A-law

    /// Encodes one 16-bit linear sample to A-law.
    @inlinable
    public static func alawEncode(_ sample: Int16) -> UInt8 {
        var pcm = Int32(sample) >> 3  // 13-bit
        let mask: UInt8
        if pcm >= 0 {
            mask = 0xD5  // sign bit set, even bits inverted
        } else {
            mask = 0x55
            pcm = -pcm - 1
        }
        // Segment ends: 0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF.
        if pcm > 0xFFF { return 0x7F ^ mask }
        let segment = max(0, Int32(27 - UInt32(pcm).leadingZeroBitCount))  // 0 for pcm <= 0x1F ... 7 for pcm >= 0x800
        var value = UInt8(truncatingIfNeeded: segment << 4)
        if segment < 2 {
            value |= UInt8(truncatingIfNeeded: (pcm >> 1) & 0x0F)
        } else {
            value |= UInt8(truncatingIfNeeded: (pcm >> segment) & 0x0F)
        }
        return value ^ mask
    }

    /// Decodes one A-law byte to a 16-bit linear sample.
    @inlinable
    public static func alawDecode(_ code: UInt8) -> Int16 {
        alawTable[Int(code)]
    }

    // MARK: tables

    /// μ-law byte → linear sample.
    public static let ulawTable: [Int16] = (0..<256).map { ulawDecodeFormula(UInt8($0)) }
    /// A-law byte → linear sample.
    public static let alawTable: [Int16] = (0..<256).map { alawDecodeFormula(UInt8($0)) }

    /// The reference μ-law expansion (used to build `ulawTable`).
    public static func ulawDecodeFormula(_ code: UInt8) -> Int16 {
        let u = ~code
        let exponent = Int32((u >> 4) & 0x07)
        let mantissa = Int32(u & 0x0F)
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        return Int16(u & 0x80 != 0 ? -magnitude : magnitude)
    }

    /// The reference A-law expansion (used to build `alawTable`).
    public static func alawDecodeFormula(_ code: UInt8) -> Int16 {
        let a = code ^ 0x55
        var t = Int32(a & 0x0F) << 4
        let segment = Int32((a & 0x70) >> 4)
        switch segment {
        case 0: t += 8
        case 1: t += 0x108
        default:
            t += 0x108
            t <<= segment - 1
        }
        return Int16(a & 0x80 != 0 ? t : -t)
    }
}
