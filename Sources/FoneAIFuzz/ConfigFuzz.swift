import FoneAIBridge

/// /etc/foneai/config.json as the daemon, `--check-config` and SIGHUP reload read it, and the
/// JSON parser underneath (which also reads the AI's messages and the `custom` variable).
enum ConfigFuzz {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        do {
            let result = try ConfigLoader.parse(text)
            _ = "\(result.config)"
            _ = result.warnings.joined(separator: "\n")
        } catch {
            // What --check-config prints.
            _ = error.description
            fuzzCheck(!error.errors.isEmpty, "ConfigLoadError without an error")
        }

        for allowComments in [false, true] {
            do {
                let value = try JSONValue.parse(text, allowComments: allowComments)
                // Writing it and reading it back gives the same value (non-finite numbers are
                // written as null by design).
                let written = value.jsonString()
                do {
                    let again = try JSONValue.parse(written)
                    if AIFuzz.isFinite(value) {
                        fuzzCheck(again == value, "JSON round trip changed the value: \(written.prefix(200))")
                    }
                    fuzzCheck(again.jsonString() == written, "jsonString() is not stable: \(written.prefix(200))")
                } catch {
                    fuzzCheck(false, "jsonString() wrote invalid JSON (\(error)): \(written.prefix(200))")
                }
                _ = value.intValue
                _ = value.typeDescription
            } catch {
                _ = error.description
            }
        }
        // The strict parser accepts a subset of what the lenient one does.
        if (try? JSONValue.parse(text, allowComments: false)) != nil {
            fuzzCheck((try? JSONValue.parse(text, allowComments: true)) != nil, "accepted strictly but not with comments")
        }
    }
}
