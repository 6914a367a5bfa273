#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import FoneAIBridge
import Logging
import ServiceLifecycle
import UnixSignals

@main
struct FoneAIBridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "foneai-bridge",
        abstract: "Bridges Asterisk calls (ARI + externalMedia RTP) to a voice-AI WebSocket server.",
        version: BridgeDaemon.version)

    @Argument(help: "Configuration file.")
    var config: String = "/etc/foneai/config.json"

    @Flag(name: .customLong("check-config"), help: "Check the configuration, print what is wrong or OK, and exit.")
    var checkConfig = false

    static func main() async {
        // A SIGHUP before the reload handler exists would kill the daemon (exit 129): ignore it first.
        signal(SIGHUP, SIG_IGN)
        await main(nil)
    }

    func run() async throws {
        let loaded: ConfigLoadResult
        do {
            loaded = try ConfigLoader.load(path: config)
        } catch {
            printToStderr("foneai-bridge: configuration \(config) is not usable:\n\(error)")
            // 78 = EX_CONFIG: the unit does not restart on it, so a fresh install with
            // placeholders does not crash-loop.
            throw ExitCode(78)
        }
        if checkConfig {
            for warning in loaded.warnings { print("warning: \(warning)") }
            print("OK: \(config)")
            return
        }

        let logLevel = LogLevelBox(loaded.config.log.logLevel)
        LoggingSystem.bootstrap { label in
            LoggingBootstrap.makeHandler(label: label, level: logLevel)
        }
        let logger = Logger(label: "foneai-bridge")
        for warning in loaded.warnings { logger.warning("Config warning", metadata: ["warning": "\(warning)"]) }

        let daemon = BridgeDaemon(config: loaded.config, configPath: config, logLevel: logLevel, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: daemon)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    _ = await daemon.reload()
                }
            }
            try await group.run()
            tasks.cancelAll()
        }
    }
}

func printToStderr(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
