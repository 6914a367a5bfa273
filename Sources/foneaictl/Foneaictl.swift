import ArgumentParser
import FoneAIControl

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Exit codes (documented in docs/control-protocol.md).
enum ExitStatus {
    static let ok: Int32 = 0
    static let failure: Int32 = 1          // server error, not found, failed reload, drain timeout
    static let usage: Int32 = 2            // bad command line
    static let notRunning: Int32 = 3       // no control socket / nobody listening
    static let permissionDenied: Int32 = 4 // cannot open the socket, or command forbidden for this uid
}

/// An error already explained to the user, carrying the exit status.
struct CLIFailure: Error {
    var status: Int32
    var message: String?
}

struct Foneaictl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "foneaictl",
        abstract: "Inspect and control a running foneai-bridge.",
        discussion: """
            Talks to the daemon's control socket (default \(ControlProtocol.defaultSocketPath), \
            overridden by $\(ControlProtocol.socketPathEnvironmentVariable) and --socket). \
            status, calls and stats need read access to the socket (group foneai); \
            drain, undrain, end and reload need root or the service user.

            Exit codes: 0 ok; 1 server error, call not found, failed reload or drain timeout; \
            2 usage error; 3 foneai-bridge not running; 4 permission denied.
            """,
        version: "0.1.0",
        subcommands: [Status.self, Calls.self, Stats.self, Drain.self, Undrain.self, End.self, Reload.self]
    )

    @Option(name: .long, help: ArgumentHelp("Path of the control socket.", valueName: "path"),
            completion: .file())
    var socket: String?

    var socketPath: String {
        if let socket, !socket.isEmpty { return socket }
        if let env = getenv(ControlProtocol.socketPathEnvironmentVariable), env.pointee != 0 {
            return String(cString: env)
        }
        return ControlProtocol.defaultSocketPath
    }

    func client(timeout: Duration = .seconds(10)) -> ControlClient {
        ControlClient(socketPath: socketPath, requestTimeout: timeout)
    }

    /// Parses, runs, and exits with the documented codes (ArgumentParser alone would use 64 for
    /// usage errors).
    static func runMain() async -> Never {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help, --version
            }
            Output.err(fullMessage(for: error))
            Glibc.exit(ExitStatus.usage)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
            Glibc.exit(ExitStatus.ok)
        } catch let failure as CLIFailure {
            if let message = failure.message { Output.err("foneaictl: " + message) }
            Glibc.exit(failure.status)
        } catch let error as ControlClientError {
            let (status, message) = describe(error)
            Output.err("foneaictl: " + message)
            Glibc.exit(status)
        } catch let error as ExitCode {
            Glibc.exit(error.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help handled as a command
            }
            if code == .validationFailure {
                Output.err(fullMessage(for: error))
                Glibc.exit(ExitStatus.usage)
            }
            Output.err("foneaictl: \(error)")
            Glibc.exit(ExitStatus.failure)
        }
    }

    static func describe(_ error: ControlClientError) -> (Int32, String) {
        switch error {
        case .daemonNotRunning:
            return (ExitStatus.notRunning, error.description)
        case .permissionDenied:
            return (ExitStatus.permissionDenied, error.description)
        case .server(let code, let message):
            if code == .forbidden { return (ExitStatus.permissionDenied, "permission denied: \(message)") }
            return (ExitStatus.failure, message)
        case .protocolError, .timedOut, .connectionFailed:
            return (ExitStatus.failure, error.description)
        }
    }
}

// MARK: - Read-only commands

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's state.")

    @ParentCommand var root: Foneaictl
    @Flag(help: "Print the raw result as JSON.") var json = false

    func run() async throws {
        let status = try await root.client().status()
        if json {
            Output.out(try ControlJSON.prettyString(status))
        } else {
            Output.out(Format.status(status))
        }
    }
}

struct Calls: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List live calls.")

    @ParentCommand var root: Foneaictl
    @Flag(help: "Print the raw result as JSON.") var json = false
    @Flag(name: .shortAndLong, help: "Print only the call ids, one per line.") var quiet = false

    func run() async throws {
        let calls = try await root.client().calls()
        if json {
            Output.out(try ControlJSON.prettyString(CallsResult(calls: calls)))
        } else if quiet {
            for call in calls { Output.out(call.callId) }
        } else {
            Output.out(Format.callsTable(calls))
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show counters; --follow prints them with rates every interval.")

    @ParentCommand var root: Foneaictl
    @Flag(help: "Print the raw result as JSON (with --follow: one JSON object per line).") var json = false
    @Flag(name: .shortAndLong, help: "Keep printing a snapshot every interval until interrupted.") var follow = false
    @Option(help: ArgumentHelp("Seconds between snapshots with --follow.", valueName: "seconds"))
    var interval: Double = 1

    func validate() throws {
        guard interval.isFinite, interval >= 0.1, interval <= 3600 else {
            throw ValidationError("--interval must be between 0.1 and 3600 seconds")
        }
    }

    func run() async throws {
        let client = root.client()
        guard follow else {
            let snapshot = try await client.stats()
            Output.out(json ? try ControlJSON.prettyString(snapshot) : Format.stats(snapshot, previous: nil))
            return
        }
        var previous: StatsSnapshot?
        for try await snapshot in client.statsStream(intervalMs: Int((interval * 1000).rounded())) {
            if json {
                Output.out(try ControlJSON.compactString(snapshot))
            } else {
                if previous != nil { Output.out("") }
                Output.out(Format.stats(snapshot, previous: previous))
            }
            previous = snapshot
        }
        throw CLIFailure(status: ExitStatus.failure, message: "foneai-bridge closed the stats stream")
    }
}

// MARK: - Mutating commands

struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop accepting new calls; live calls continue.",
        discussion: "With --wait, returns when no call is live (exit 0) or when the timeout passed (exit 1). --timeout implies --wait.")

    @ParentCommand var root: Foneaictl
    @Flag(help: "Wait until all live calls have ended.") var wait = false
    @Option(help: ArgumentHelp("Give up waiting after this many seconds.", valueName: "seconds"))
    var timeout: Double?

    func validate() throws {
        if let timeout, !(timeout.isFinite && timeout >= 0 && timeout <= 1e9) {  // more would overflow Int64 ms
            throw ValidationError("--timeout must be a non-negative number of seconds")
        }
    }

    func run() async throws {
        let waiting = wait || timeout != nil
        let result = try await root.client().drain(
            wait: waiting, timeout: timeout.map { .milliseconds(Int64(($0 * 1000).rounded())) })
        if !waiting {
            Output.out("draining: new calls are rejected; live calls: \(result.remainingCalls)")
        } else if result.timedOut {
            throw CLIFailure(status: ExitStatus.failure,
                             message: "drain timed out: \(Format.callCount(result.remainingCalls)) still live")
        } else if result.remainingCalls == 0 {
            Output.out("drained: no live calls")
        } else {
            Output.out("draining: \(Format.callCount(result.remainingCalls)) still live")
        }
    }
}

struct Undrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Accept new calls again after drain.")

    @ParentCommand var root: Foneaictl

    func run() async throws {
        _ = try await root.client().undrain()
        Output.out("accepting new calls")
    }
}

struct End: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Hang up one live call (see `foneaictl calls`).")

    @ParentCommand var root: Foneaictl
    @Argument(help: ArgumentHelp("The call id.", valueName: "call-id"),
              completion: .shellCommand("foneaictl calls --quiet 2>/dev/null"))
    var callId: String

    func run() async throws {
        do {
            try await root.client().end(callId: callId)
            Output.out("ended call \(callId)")
        } catch ControlClientError.server(let code, _) where code == .notFound {
            throw CLIFailure(status: ExitStatus.failure, message: "no live call \(callId)")
        }
    }
}

struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reload the configuration (like systemctl reload).")

    @ParentCommand var root: Foneaictl

    func run() async throws {
        let info = try await root.client(timeout: .seconds(30)).reload()
        if info.ok {
            Output.out(info.message.isEmpty ? "reloaded" : "reloaded: \(info.message)")
        } else {
            throw CLIFailure(status: ExitStatus.failure, message: "reload failed: \(info.message)")
        }
    }
}
