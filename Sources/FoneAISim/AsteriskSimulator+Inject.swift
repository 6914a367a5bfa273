import NIOCore

extension AsteriskSimulator {
    /// Sends raw bytes to the bridge from an external channel's own RTP socket, so they pass the
    /// bridge's source-address demux and reach its packet parser: for hostile-input tests.
    /// Returns false when the channel has no RTP socket (unknown, or not yet created).
    @discardableResult
    public func injectRTP(externalChannel id: String, _ bytes: [UInt8]) async -> Bool {
        guard let media = core.state.withLock({ $0.channels[id]?.media }) else { return false }
        return media.sendRaw(bytes)
    }
}

extension ExternalMedia {
    func sendRaw(_ bytes: [UInt8]) -> Bool {
        guard let channel = state.withLock({ $0.channel }) else { return false }
        channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: bytes)), promise: nil)
        return true
    }
}
