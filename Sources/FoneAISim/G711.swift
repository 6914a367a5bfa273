/// G.711 μ-law and A-law codecs (ITU-T reference algorithms).
public enum G711 {
    public static func ulawEncode(_ sample: Int16) -> UInt8 {
        let bias: Int32 = 0x84
        let clip: Int32 = 32635
        var pcm = Int32(sample)
        let sign: Int32 = pcm < 0 ? 0x80 : 0
        if pcm < 0 { pcm = -pcm }
        if pcm > clip { pcm = clip }
        pcm += bias
        var exponent: Int32 = 7
        var mask: Int32 = 0x4000
        while exponent > 0 && (pcm & mask) == 0 {
            exponent -= 1
            mask >>= 1
        }
        let mantissa = (pcm >> (exponent + 3)) & 0x0F
        return UInt8(truncatingIfNeeded: ~(sign | (exponent << 4) | mantissa))
    }

    public static func ulawDecode(_ byte: UInt8) -> Int16 {
        let u = Int32(~byte & 0xFF)
        let sign = u & 0x80
        let exponent = (u >> 4) & 0x07
        let mantissa = u & 0x0F
        var sample = ((mantissa << 3) + 0x84) << exponent
        sample -= 0x84
        return Int16(sign != 0 ? -sample : sample)
    }

    public static func alawEncode(_ sample: Int16) -> UInt8 {
        var pcm = Int32(sample)
        var mask: Int32
        if pcm >= 0 {
            mask = 0xD5
        } else {
            mask = 0x55
            pcm = -pcm - 1
        }
        if pcm > 32767 { pcm = 32767 }
        let segEnds: [Int32] = [0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF]
        var seg: Int32 = 8
        for (i, end) in segEnds.enumerated() where pcm <= end {
            seg = Int32(i)
            break
        }
        if seg >= 8 { return UInt8(truncatingIfNeeded: 0x7F ^ mask) }
        var aval = seg << 4
        if seg < 2 {
            aval |= (pcm >> 4) & 0x0F
        } else {
            aval |= (pcm >> (seg + 3)) & 0x0F
        }
        return UInt8(truncatingIfNeeded: aval ^ mask)
    }

    public static func alawDecode(_ byte: UInt8) -> Int16 {
        let a = Int32(byte ^ 0x55)
        var t = (a & 0x0F) << 4
        let seg = (a & 0x70) >> 4
        switch seg {
        case 0: t += 8
        case 1: t += 0x108
        default:
            t += 0x108
            t <<= seg - 1
        }
        return Int16((a & 0x80) != 0 ? t : -t)
    }
}
