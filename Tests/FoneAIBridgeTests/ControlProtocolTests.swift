import FoneAIControl
import FoundationEssentials
import NIOCore
import NIOEmbedded
import Testing

@Suite("Control protocol messages")
struct ControlProtocolTests {
    @Test func requestEncodesCompactlyWithoutEmptyArgs() throws {
        let line = try ControlJSON.compactString(ControlRequest(id: 7, command: .status))
        #expect(line == #"{"cmd":"status","id":7,"v":1}"#)
        let withArgs = try ControlJSON.compactString(
            ControlRequest(id: 8, command: .stats, args: ControlArguments(follow: true, intervalMs: 500)))
        #expect(withArgs == #"{"args":{"follow":true,"intervalMs":500},"cmd":"stats","id":8,"v":1}"#)
    }

    @Test func encodeLineEndsWithNewlineAndHasNoOtherNewlines() throws {
        let status = ControlResponse(id: 1, result: StatusInfo(
            version: "1", pid: 1, uptimeSeconds: 1, ariConnected: false, ariURL: "http://h\n", appName: "a\nb",
            draining: false, liveCalls: 0, totals: CallTotals(), configPath: "/x", lastReload: nil))
        let buffer = try ControlJSON.encodeLine(status)
        let bytes = Array(buffer.readableBytesView)
        #expect(bytes.last == UInt8(ascii: "\n"))
        #expect(bytes.dropLast().contains(UInt8(ascii: "\n")) == false)
    }

    @Test func requestDecodesUnknownCommandAndIgnoresUnknownFields() throws {
        let request = try ControlJSON.decode(
            ControlRequest.self, from: #"{"v":1,"id":3,"cmd":"frobnicate","args":{"x":1,"callId":"abc"},"extra":true}"#)
        #expect(request.command == nil)
        #expect(request.cmd == "frobnicate")
        #expect(request.args?.callId == "abc")
    }

    @Test func requestWithoutVersionIsRejectedByDecoder() {
        #expect(throws: (any Error).self) {
            try ControlJSON.decode(ControlRequest.self, from: #"{"id":1,"cmd":"status"}"#)
        }
    }

    @Test func okResponseRoundTrip() throws {
        let snapshot = StatsSnapshot(at: 1_700_000_000.5, uptimeSeconds: 3, liveCalls: 2,
                                     counters: ["rtp_in_packets": UInt64.max, "ai_frames_in": 0])
        let line = try ControlJSON.compactString(ControlResponse(id: 5, result: snapshot))
        let decoded = try ControlJSON.decode(ControlResponse<StatsSnapshot>.self, from: line)
        #expect(decoded.ok)
        #expect(decoded.id == 5)
        #expect(decoded.result == snapshot)  // UInt64.max survives (no Double round trip)
        #expect(decoded.error == nil)
    }

    @Test func errorResponseShapeAndNullId() throws {
        let line = try ControlJSON.compactString(
            ControlResponse<NoResult>(id: nil, error: ControlErrorBody(code: .badRequest, message: "nope")))
        #expect(line == #"{"error":{"code":"bad_request","message":"nope"},"id":null,"ok":false,"v":1}"#)
        // An error decodes with any expected result type.
        let decoded = try ControlJSON.decode(ControlResponse<StatusInfo>.self, from: line)
        #expect(decoded.ok == false)
        #expect(decoded.error?.code == .badRequest)
        #expect(decoded.result == nil)
    }

    @Test func unknownErrorCodesStillDecode() throws {
        let decoded = try ControlJSON.decode(
            ControlResponse<NoResult>.self, from: #"{"v":1,"id":1,"ok":false,"error":{"code":"teapot","message":"m"}}"#)
        #expect(decoded.error?.code == ControlErrorCode("teapot"))
    }

    @Test func statusAndCallsRoundTrip() throws {
        let status = StatusInfo(
            version: "0.1.0", pid: 42, uptimeSeconds: 1.5, ariConnected: true, ariURL: "http://127.0.0.1:8088",
            appName: "foneai", draining: true, liveCalls: 1,
            totals: CallTotals(handled: 1, failed: 2, aiErrors: 3, rejectedBusy: 4, rejectedDraining: 5),
            configPath: "/etc/foneai/bridge.json", lastReload: ReloadInfo(at: 1, ok: false, message: "bad"))
        let calls = CallsResult(calls: [CallInfo(
            callId: "c", channelId: "ch", caller: "100", campaign: nil, state: "bridged", ageSeconds: 1,
            packetsIn: 1, packetsOut: 2, packetsDropped: 0, playoutBufferMs: 40, aiSessionId: nil)])
        #expect(try ControlJSON.decode(StatusInfo.self, from: ControlJSON.compactString(status)) == status)
        #expect(try ControlJSON.decode(CallsResult.self, from: ControlJSON.compactString(calls)) == calls)
        let json = try ControlJSON.compactString(status)
        #expect(json.contains(#""ariURL":"http://127.0.0.1:8088""#))
        #expect(json.contains(#""rejectedDraining":5"#))
    }

    @Test func commandsKnowWhetherTheyMutate() {
        #expect(ControlCommand.allCases.filter(\.isMutating) == [.drain, .undrain, .end, .reload])
    }

    // MARK: Line decoder

    private func decode(_ chunks: [String], maxLength: Int = 16) throws -> [ControlLineFrame] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(ControlLineDecoder(maxLength: maxLength)))
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(string: chunk))
        }
        var frames: [ControlLineFrame] = []
        while let frame = try channel.readInbound(as: ControlLineFrame.self) { frames.append(frame) }
        _ = try? channel.finish()
        return frames
    }

    @Test func lineDecoderSplitsAndReassembles() throws {
        let frames = try decode(["ab", "c\nde\r\n", "\nf"])
        #expect(frames == [.line(ByteBuffer(string: "abc")), .line(ByteBuffer(string: "de")), .line(ByteBuffer(string: ""))])
    }

    @Test func lineDecoderFlagsOverlongLinesOnceAndDiscardsTheRest() throws {
        let frames = try decode(["0123456789", "0123456789", "abc\n", "more\n"], maxLength: 16)
        #expect(frames == [.tooLong])
        let exact = try decode([String(repeating: "x", count: 16) + "\n"], maxLength: 16)
        #expect(exact == [.line(ByteBuffer(string: String(repeating: "x", count: 16)))])
        let oneOver = try decode([String(repeating: "x", count: 17) + "\n"], maxLength: 16)
        #expect(oneOver == [.tooLong])
    }
}
