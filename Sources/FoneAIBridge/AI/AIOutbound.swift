import NIOCore
import Synchronization

/// What a call sends to its AI session: caller audio from the media path, control messages from
/// the call. Everything is encoded and written on the session's event loop (the RTP socket's), in
/// the order it was sent, so caller audio goes from the RTP packet to the AI's socket without a
/// thread hop. Before the socket opens, audio waits in a short queue (the newest frames win) and
/// control messages wait in full; a slow AI loses audio frames (counted), never control messages.
public final class AIOutbound: Sendable {
    public let eventLoop: any EventLoop
    private let state: NIOLoopBoundBox<State>
    private let droppedAudio = Atomic<UInt64>(0)
    private let maxQueuedAudioFrames: Int

    private struct State {
        var socket: AIWebSocketHandler?
        var queuedAudio = CircularBuffer<ByteBuffer>()
        var queuedControl: [AIOutboundMessage] = []
        var finished = false
    }

    public init(eventLoop: any EventLoop, maxQueuedAudioFrames: Int) {
        self.eventLoop = eventLoop
        self.maxQueuedAudioFrames = maxQueuedAudioFrames
        state = .makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    /// Caller audio frames dropped because the AI was not connected yet or read too slowly.
    public var audioFramesDropped: UInt64 { droppedAudio.load(ordering: .relaxed) }

    /// One frame of caller audio (PCM16LE at the call's inbound rate).
    public func sendAudio(_ pcm: ByteBuffer) {
        // The media path calls this on the loop already; no closure is allocated then.
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.sendAudioOnLoop(pcm) }
            return
        }
        sendAudioOnLoop(pcm)
    }

    public func send(_ message: AIOutboundMessage) {
        eventLoop.execute { self.sendOnLoop(message) }
    }

    /// Sends `last` (the `stop`), then closes the socket; nothing is sent after it.
    public func finish(with last: AIOutboundMessage?) {
        eventLoop.execute {
            guard !self.state.value.finished else { return }
            if let last { self.sendOnLoop(last) }
            self.state.value.finished = true
            self.state.value.socket?.close()
        }
    }

    private func sendAudioOnLoop(_ pcm: ByteBuffer) {
        guard !state.value.finished else { return }
        if let socket = state.value.socket {
            if !socket.writeCallerAudio(pcm) { droppedAudio.wrappingAdd(1, ordering: .relaxed) }
            return
        }
        state.value.queuedAudio.append(pcm)
        if state.value.queuedAudio.count > maxQueuedAudioFrames {
            state.value.queuedAudio.removeFirst()
            droppedAudio.wrappingAdd(1, ordering: .relaxed)
        }
    }

    private func sendOnLoop(_ message: AIOutboundMessage) {
        guard !state.value.finished else { return }
        if let socket = state.value.socket {
            socket.writeControl(message)
        } else {
            state.value.queuedControl.append(message)
        }
    }

    /// The session's socket opened (on the event loop): sends what waited, or closes at once
    /// when the call already finished.
    func attach(_ socket: AIWebSocketHandler) {
        state.value.socket = socket
        while let pcm = state.value.queuedAudio.popFirst() {
            if !socket.writeCallerAudio(pcm) { droppedAudio.wrappingAdd(1, ordering: .relaxed) }
        }
        let control = state.value.queuedControl
        state.value.queuedControl = []
        for message in control { socket.writeControl(message) }
        if state.value.finished { socket.close() }
    }

    /// The socket closed (on the event loop); later messages wait as before it opened.
    func detach(_ socket: AIWebSocketHandler) {
        if state.value.socket === socket { state.value.socket = nil }
    }
}
