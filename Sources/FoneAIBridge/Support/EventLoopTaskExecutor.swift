import NIOCore

/// Runs Swift tasks on one SwiftNIO event loop thread.
///
/// An AI session's tasks prefer the event loop its WebSocket channel lives on: a frame then goes
/// from the session's task to the socket, and from the socket to the playout queue, without
/// waking another thread. (On the shared cooperative pool every frame crossed threads twice,
/// and the wake-ups cost more CPU than the audio work.)
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
