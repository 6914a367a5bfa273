import FoneAIBridge
import FoundationEssentials

/// Text frames of the ARI events WebSocket (ARIEventConnection decodes each with
/// `ARIEvent.decode`), and the REST bodies the bridge decodes from the same Asterisk.
enum ARIFuzz {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            let event = try ARIEvent.decode(text)
            // What the bridge reads from an event must be usable as-is.
            _ = "\(event.type) \(event.application ?? "") \(event.channel?.id ?? "") \(event.bridge?.id ?? "")"
            _ = event.channel?.channelvars?["UNICASTRTP_LOCAL_PORT"].flatMap { Int($0) }
            _ = event.args?.joined(separator: ",")
        } catch {
            _ = "\(error)"
        }
        let data = Data(bytes)
        let decoder = JSONDecoder()
        _ = try? decoder.decode([ARIChannel].self, from: data)
        _ = try? decoder.decode([ARIBridge].self, from: data)
        _ = try? decoder.decode(ARIApplication.self, from: data)
    }
}
