// libFuzzer entry points for foneai-bridge's parsers of hostile input (issue 6, "Fuzzing").
//
// One executable serves every target; the target is chosen by `--target=NAME` on the command line
// (libFuzzer ignores flags starting with `--`) or by the FONEAI_FUZZ_TARGET environment variable.
//
// Built by Tests/Fuzz/run.sh with `swift build --sanitize=fuzzer --sanitize=address
// -Xswiftc -DFONEAI_LIBFUZZER`: libFuzzer then provides `main`. In the ordinary build (no
// FONEAI_LIBFUZZER) the same code gets a small `main` that replays files through a target, so
// the harness always compiles with the rest of the package:
//
//     .build/debug/FoneAIFuzz TARGET FILE_OR_DIR...
//
// Every target must return normally for every input. A thrown error is fine; a trap (Swift
// runtime check, failed invariant below) or an AddressSanitizer report is a bug.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The fuzz targets, by name.
enum FuzzTarget: String, CaseIterable, Sendable {
    /// `RTPPacket.parse`, then the payload through `InboundDecoder` in every inbound format.
    case rtp
    /// `ARIEvent.decode` and the other ARI models the bridge decodes from Asterisk.
    case ari
    /// `AIInboundMessage.decode`, every AI dialect's `decodeText`, and `AICallInfo.parseCustom`.
    case ai
    /// The control socket's line framing (`ControlLineDecoder`) and request decoding.
    case control
    /// `ConfigLoader.parse` and `JSONValue.parse` (strict and with comments).
    case config

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .rtp: RTPFuzz.run(bytes)
        case .ari: ARIFuzz.run(bytes)
        case .ai: AIFuzz.run(bytes)
        case .control: ControlFuzz.run(bytes)
        case .config: ConfigFuzz.run(bytes)
        }
    }
}

/// Stops with a message libFuzzer and the replayer show; the input is then saved as a crash.
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
               file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        printError("fuzz invariant failed: \(message())")
        fatalError("fuzz invariant failed: \(message())", file: file, line: line)
    }
}

/// Writes one line to standard error.
func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { buffer in _ = write(2, buffer.baseAddress, buffer.count) }
}

nonisolated(unsafe) private var selectedTarget: FuzzTarget?

private func selectTarget(arguments: [String]) -> FuzzTarget {
    var name: String?
    for argument in arguments where argument.hasPrefix("--target=") {
        name = String(argument.dropFirst("--target=".count))
    }
    if name == nil, let env = getenv("FONEAI_FUZZ_TARGET") { name = String(cString: env) }
    guard let name, let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        printError("FoneAIFuzz: choose a target with --target=NAME or FONEAI_FUZZ_TARGET=NAME (one of: \(names))")
        exit(2)
    }
    return target
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    var arguments: [String] = []
    if let list = argv.pointee {
        for i in 0..<Int(argc.pointee) {
            if let arg = list[i] { arguments.append(String(cString: arg)) }
        }
    }
    selectedTarget = selectTarget(arguments: arguments)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let target = selectedTarget ?? selectTarget(arguments: [])
    selectedTarget = target
    guard let data, size > 0 else {
        target.run(UnsafeRawBufferPointer(start: nil, count: 0))
        return 0
    }
    target.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FONEAI_LIBFUZZER
/// Replays files (or every file under directories) through one target without libFuzzer.
@main
struct FuzzReplay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let first = arguments.first, let target = FuzzTarget(rawValue: first), arguments.count >= 2 else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
            printError("usage: FoneAIFuzz \(names) FILE_OR_DIR...\n"
                       + "(this build replays inputs; Tests/Fuzz/run.sh builds the libFuzzer version)")
            exit(2)
        }
        var count = 0
        for path in arguments.dropFirst() {
            for file in files(under: path) {
                guard let bytes = readAll(file) else {
                    printError("cannot read \(file)")
                    exit(1)
                }
                bytes.withUnsafeBytes { target.run($0) }
                count += 1
            }
        }
        print("\(target.rawValue): \(count) inputs replayed, no crash")
    }

    static func files(under path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name == "." || name == ".." { continue }
            out += files(under: path + "/" + name)
        }
        return out.sorted()
    }

    static func readAll(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
        }
    }
}
#endif
