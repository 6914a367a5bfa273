// What the control server needs from the daemon.

import FoneAIControl

/// Implemented by the daemon; the control server only calls it. Calls may arrive concurrently
/// from several control connections.
public protocol ControlHandler: Sendable {
    func status() async -> StatusInfo
    func calls() async -> [CallInfo]
    func stats() async -> StatsSnapshot
    /// Starts draining (reject new calls). With `wait`, returns when no call is live or after
    /// `timeout` (nil: no limit). The task may be cancelled when the control server stops.
    func drain(wait: Bool, timeout: Duration?) async -> DrainResult
    func undrain() async
    /// Hangs up a live call; false if there is no call with that id.
    func endCall(id: String) async -> Bool
    /// Reloads the configuration, like SIGHUP.
    func reload() async -> ReloadInfo
}

/// Credentials of the process at the other end of a control connection (SO_PEERCRED).
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    public var description: String { "pid=\(pid) uid=\(uid) gid=\(gid)" }
}
