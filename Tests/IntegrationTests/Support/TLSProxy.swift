import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A TLS front for a plain test server: terminates TLS with a throw-away certificate for
/// localhost and forwards the bytes, so `wss://` and `https://` are tested against the real
/// daemon's certificate verification.
final class TLSProxy: @unchecked Sendable {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    /// A self-signed CA-capable certificate for localhost, made with the openssl CLI.
    struct Certificate {
        let directory: URL
        var certPath: String { directory.appendingPathComponent("cert.pem").path }
        var keyPath: String { directory.appendingPathComponent("key.pem").path }

        static func make() throws -> Certificate {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let cert = Certificate(directory: directory)
            let openssl = Process()
            openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            openssl.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                 "-keyout", cert.keyPath, "-out", cert.certPath, "-days", "1", "-subj", "/CN=localhost",
                                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:TRUE"]
            openssl.standardError = FileHandle.nullDevice
            openssl.standardOutput = FileHandle.nullDevice
            try openssl.run()
            openssl.waitUntilExit()
            guard openssl.terminationStatus == 0 else { throw POSIXError(.EINVAL) }
            return cert
        }
    }

    init(certificate: Certificate, backendPort: Int) async throws {
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate.certPath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certificate.keyPath, format: .pem)))
        let context = try NIOSSLContext(configuration: tls)
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                inbound.eventLoop.makeCompletedFuture {
                    try inbound.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                }.flatMap {
                    ClientBootstrap(group: inbound.eventLoop)
                        .connect(host: "127.0.0.1", port: backendPort)
                        .flatMap { outbound in
                            let (a, b) = ForwardHandler.pair()
                            return inbound.pipeline.addHandler(a).and(outbound.pipeline.addHandler(b)).map { _ in }
                        }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func close() async {
        try? await channel.close()
    }
}

/// Copies bytes between two channels; closing one closes the other.
private final class ForwardHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: ForwardHandler?
    private var context: ChannelHandlerContext?
    private var pending: [ByteBuffer] = []

    static func pair() -> (ForwardHandler, ForwardHandler) {
        let a = ForwardHandler()
        let b = ForwardHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.forward(unwrapInboundIn(data))
    }

    private func forward(_ buffer: ByteBuffer) {
        guard let context else { pending.append(buffer); return }
        context.eventLoop.execute {
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.closePartner()
        context.fireChannelInactive()
    }

    private func closePartner() {
        context?.eventLoop.execute { self.context?.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
