import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix

/// Runs a Hummingbird application in a task; knows its bound port; stops by cancellation.
final class SimHTTPServer: Sendable {
    let port: Int
    private let task: Task<Void, any Error>

    private init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
    }

    struct StartError: Error, CustomStringConvertible {
        var description: String
    }

    /// `makeApp` builds the application with the given `onServerRunning` callback.
    static func start<App: ApplicationProtocol>(
        description: String,
        makeApp: (@escaping @Sendable (any Channel) async -> Void) -> App
    ) async throws -> SimHTTPServer {
        let (stream, cont) = AsyncStream<Int>.makeStream()
        let app = makeApp { channel in
            cont.yield(channel.localAddress?.port ?? 0)
            cont.finish()
        }
        let task = Task {
            defer { cont.finish() }
            try await app.run()
        }
        var it = stream.makeAsyncIterator()
        guard let bound = await it.next() else {
            if case .failure(let error) = await task.result { throw error }
            throw StartError(description: "HTTP server \(description) did not start")
        }
        return SimHTTPServer(port: bound, task: task)
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }
}

extension Response {
    static func simJSON(status: Int, body: String?) -> Response {
        if let body {
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        return Response(status: .init(code: status))
    }
}
