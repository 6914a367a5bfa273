/// Why a call left the bridge. The raw value is what the dialplan sees in `FONEAI_STATUS`.
public enum CallEndReason: String, Sendable, Equatable {
    /// The AI sent `end`.
    case completed
    /// The AI sent `transfer`.
    case transfer
    /// The AI sent `hangup`.
    case aiHangup = "hangup"
    /// The caller hung up; nobody is left to tell.
    case callerHangup = "caller_hangup"
    /// The AI server could not be reached at call start.
    case aiUnavailable = "ai_unavailable"
    /// The AI dropped or misbehaved mid-call.
    case aiError = "ai_error"
    /// The bridge is draining or stopping and ended the call.
    case unavailable
    /// The bridge already carries `calls.maxCalls` calls.
    case busy
    /// An operator ended the call with `foneaictl end`.
    case operatorEnded = "operator"
    /// Setting up the bridge or external media failed.
    case error
}

/// What happens to the caller's channel when the call leaves the bridge.
public enum CallerDisposition: Sendable, Equatable {
    /// Continue at the next priority after `Stasis()`.
    case continueNext
    /// Continue at a given place in the dialplan.
    case jump(context: String, extension: String, priority: Int)
    case hangup
    /// The caller is already gone (hung up); only our own resources remain to release.
    case alreadyGone
}

/// How a call ends: decided once, carried out during clean-up.
public struct CallEnding: Sendable, Equatable {
    public var reason: CallEndReason
    public var disposition: CallerDisposition
    /// Variables to set on the caller before continuing it, in order.
    public var variables: [(String, String)]
    /// Whether queued AI audio should be played to the caller before it leaves.
    public var playOut: Bool

    public init(reason: CallEndReason, disposition: CallerDisposition, variables: [(String, String)] = [], playOut: Bool = false) {
        self.reason = reason
        self.disposition = disposition
        self.variables = variables
        self.playOut = playOut
    }

    public static func == (lhs: CallEnding, rhs: CallEnding) -> Bool {
        lhs.reason == rhs.reason && lhs.disposition == rhs.disposition && lhs.playOut == rhs.playOut
            && lhs.variables.map(\.0) == rhs.variables.map(\.0) && lhs.variables.map(\.1) == rhs.variables.map(\.1)
    }
}

/// The life of one call as a pure value: `(state, event) -> actions`. `CallSession` performs the
/// actions and feeds the results back as events. Every way out passes through `.cleaningUp`, so
/// the bridge and external channel are always deleted and the caller always continued or hung up.
///
/// arriving → settingUp → streaming → playingOut → cleaningUp → done
///                 └──────────┴───────────┴──────→ cleaningUp (failure, hang-up, drain)
public struct CallStateMachine: Sendable, Equatable {
    public struct SetupProgress: Sendable, Equatable {
        public var aiConnected = false
        public var mediaCreated = false
        public var externalInStasis = false
        public var bridged = false
    }

    public enum State: Sendable, Equatable {
        case arriving
        case settingUp(SetupProgress)
        case streaming
        case playingOut(CallEnding)
        case cleaningUp(CallEnding)
        case done(CallEnding)
    }

    public enum Event: Sendable, Equatable {
        /// The caller's variables were read; setup can start.
        case variablesLoaded
        case aiConnected
        case aiConnectFailed
        /// Bridge and externalMedia channel were created.
        case mediaCreated
        /// The external channel's StasisStart arrived (it may come before `mediaCreated` returns).
        case externalEnteredStasis
        case bridged
        case setupFailed
        /// The AI asked to end the call (end, transfer, hangup).
        case aiFinished(CallEnding)
        /// The AI socket closed or broke without saying how to end.
        case aiLost
        /// StasisEnd of the caller: hang-up, or someone else moved it out.
        case callerLeft
        /// The bridge ends the call itself (drain timeout, shutdown, operator).
        case endRequested(CallEndReason)
        case playoutFinished
        case cleanupFinished
    }

    public enum Action: Sendable, Equatable {
        case connectAI
        case createMedia
        case addToBridge
        case startStreaming
        /// Wait until queued AI audio has played (bounded by configuration), then report `playoutFinished`.
        case awaitPlayout
        /// Send `stop`, release media, set variables, continue/hang up the caller, delete external channel and bridge.
        case cleanUp(CallEnding)
    }

    public private(set) var state: State = .arriving

    public init() {}

    public var ending: CallEnding? {
        switch state {
        case .playingOut(let e), .cleaningUp(let e), .done(let e): e
        default: nil
        }
    }

    public var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    /// Short name for status displays and logs.
    public var stateName: String {
        switch state {
        case .arriving: "arriving"
        case .settingUp: "setting_up"
        case .streaming: "streaming"
        case .playingOut: "playing_out"
        case .cleaningUp: "cleaning_up"
        case .done: "done"
        }
    }

    public mutating func handle(_ event: Event) -> [Action] {
        switch (state, event) {
        case (.arriving, .variablesLoaded):
            state = .settingUp(SetupProgress())
            return [.connectAI, .createMedia]

        case (.settingUp(var progress), .aiConnected):
            progress.aiConnected = true
            return advance(progress)
        case (.settingUp(var progress), .mediaCreated):
            progress.mediaCreated = true
            return advance(progress)
        case (.settingUp(var progress), .externalEnteredStasis):
            progress.externalInStasis = true
            return advance(progress)
        case (.settingUp(var progress), .bridged):
            progress.bridged = true
            return advance(progress)
        case (.streaming, .externalEnteredStasis), (.streaming, .bridged):
            return []

        case (.settingUp, .aiConnectFailed), (.settingUp, .aiLost):
            return cleanUp(CallEnding(reason: .aiUnavailable, disposition: .continueNext))
        case (.arriving, .setupFailed), (.settingUp, .setupFailed):
            return cleanUp(CallEnding(reason: .error, disposition: .continueNext))

        case (.settingUp, .aiFinished(let ending)), (.streaming, .aiFinished(let ending)):
            state = .playingOut(ending)
            return [.awaitPlayout]
        case (.streaming, .aiLost):
            state = .playingOut(CallEnding(reason: .aiError, disposition: .continueNext, playOut: true))
            return [.awaitPlayout]
        case (.playingOut(let ending), .playoutFinished):
            return cleanUp(ending)

        case (.arriving, .callerLeft), (.settingUp, .callerLeft), (.streaming, .callerLeft), (.playingOut, .callerLeft):
            return cleanUp(CallEnding(reason: .callerHangup, disposition: .alreadyGone))

        case (.arriving, .endRequested(let reason)), (.settingUp, .endRequested(let reason)),
             (.streaming, .endRequested(let reason)), (.playingOut, .endRequested(let reason)):
            return cleanUp(CallEnding(reason: reason, disposition: .continueNext))

        case (.cleaningUp(let ending), .cleanupFinished):
            state = .done(ending)
            return []

        default:
            // Late or duplicate events (e.g. the AI closing after we already decided to end) change nothing.
            return []
        }
    }

    private mutating func advance(_ progress: SetupProgress) -> [Action] {
        var actions: [Action] = []
        if case .settingUp(let old) = state, !old.bridgeRequested(), progress.bridgeRequested() {
            actions.append(.addToBridge)
        }
        if progress.aiConnected && progress.bridged {
            state = .streaming
            actions.append(.startStreaming)
        } else {
            state = .settingUp(progress)
        }
        return actions
    }

    private mutating func cleanUp(_ ending: CallEnding) -> [Action] {
        state = .cleaningUp(ending)
        return [.cleanUp(ending)]
    }
}

extension CallStateMachine.SetupProgress {
    /// The external channel can join the bridge once it exists and is in Stasis (the 422 race).
    func bridgeRequested() -> Bool { mediaCreated && externalInStasis }
}
