@testable import FoneAIBridge
import Testing

@Suite struct CallStateMachineTests {
    /// Drives a machine through setup; the external channel's StasisStart may come before or after
    /// the externalMedia POST returns, and the bridge is joined exactly once either way.
    @Test(arguments: [true, false])
    func setupJoinsTheBridgeOnceBothAreReady(stasisFirst: Bool) {
        var machine = CallStateMachine()
        #expect(machine.handle(.variablesLoaded) == [.connectAI, .createMedia])
        if stasisFirst {
            #expect(machine.handle(.externalEnteredStasis) == [])
            #expect(machine.handle(.mediaCreated) == [.addToBridge])
        } else {
            #expect(machine.handle(.mediaCreated) == [])
            #expect(machine.handle(.externalEnteredStasis) == [.addToBridge])
        }
        #expect(machine.handle(.bridged) == [])
        #expect(machine.stateName == "setting_up")
        #expect(machine.handle(.aiConnected) == [.startStreaming])
        #expect(machine.state == .streaming)
    }

    func streaming() -> CallStateMachine {
        var machine = CallStateMachine()
        _ = machine.handle(.variablesLoaded)
        _ = machine.handle(.aiConnected)
        _ = machine.handle(.mediaCreated)
        _ = machine.handle(.externalEnteredStasis)
        _ = machine.handle(.bridged)
        return machine
    }

    @Test func aiEndPlaysOutThenCleansUp() {
        var machine = streaming()
        let ending = CallEnding(reason: .completed, disposition: .continueNext, variables: [("sessionId", "s-1")], playOut: true)
        #expect(machine.handle(.aiFinished(ending)) == [.awaitPlayout])
        #expect(machine.handle(.callerLeft) == [.cleanUp(CallEnding(reason: .callerHangup, disposition: .alreadyGone))],
                "a caller who hangs up during playout is not continued")
        #expect(machine.handle(.playoutFinished) == [], "late events change nothing once cleaning up")
        #expect(machine.handle(.cleanupFinished) == [])
        #expect(machine.isDone)
    }

    @Test func aiEndThenPlayoutContinuesTheCaller() {
        var machine = streaming()
        let ending = CallEnding(reason: .transfer, disposition: .jump(context: "sales", extension: "200", priority: 1), playOut: true)
        _ = machine.handle(.aiFinished(ending))
        #expect(machine.handle(.playoutFinished) == [.cleanUp(ending)])
    }

    @Test func aiUnreachableContinuesWithStatus() {
        var machine = CallStateMachine()
        _ = machine.handle(.variablesLoaded)
        _ = machine.handle(.mediaCreated)
        #expect(machine.handle(.aiConnectFailed) == [.cleanUp(CallEnding(reason: .aiUnavailable, disposition: .continueNext))])
        #expect(machine.handle(.aiConnected) == [], "a late connect after giving up is ignored")
    }

    @Test func aiDroppingMidCallIsAnError() {
        var machine = streaming()
        #expect(machine.handle(.aiLost) == [.awaitPlayout])
        #expect(machine.ending?.reason == .aiError)
    }

    @Test func callerLeavingAtAnyStageCleansUp() {
        for stage in 0..<4 {
            var machine = CallStateMachine()
            if stage > 0 { _ = machine.handle(.variablesLoaded) }
            if stage > 1 { _ = machine.handle(.aiConnected); _ = machine.handle(.mediaCreated) }
            if stage > 2 { _ = machine.handle(.externalEnteredStasis); _ = machine.handle(.bridged) }
            #expect(machine.handle(.callerLeft) == [.cleanUp(CallEnding(reason: .callerHangup, disposition: .alreadyGone))])
        }
    }

    @Test func drainEndsWithUnavailable() {
        var machine = streaming()
        #expect(machine.handle(.endRequested(.unavailable)) == [.cleanUp(CallEnding(reason: .unavailable, disposition: .continueNext))])
        #expect(machine.handle(.endRequested(.unavailable)) == [], "asking twice does not clean up twice")
    }

    @Test func setupFailureContinuesWithError() {
        var machine = CallStateMachine()
        _ = machine.handle(.variablesLoaded)
        #expect(machine.handle(.setupFailed) == [.cleanUp(CallEnding(reason: .error, disposition: .continueNext))])
    }
}

@Suite struct AIMessageTests {
    @Test func decodesEveryMessage() throws {
        #expect(try AIInboundMessage.decode(#"{"type":"format","sampleRate":24000}"#) == .format(sampleRate: 24000))
        #expect(try AIInboundMessage.decode(#"{"type":"clear"}"#) == .clear)
        #expect(try AIInboundMessage.decode(#"{"type":"mark","name":"m1"}"#) == .mark("m1"))
        #expect(try AIInboundMessage.decode(#"{"type":"end","sessionId":"s-42","variables":{"intent":"billing","n":3}}"#)
                == .end(sessionId: "s-42", variables: ["intent": "billing", "n": "3"]))
        #expect(try AIInboundMessage.decode(#"{"type":"transfer","context":"sales","extension":"200","jump":true}"#)
                == .transfer(context: "sales", extension: "200", priority: 1, jump: true, sessionId: nil, variables: [:]))
        #expect(try AIInboundMessage.decode(#"{"type":"hangup"}"#) == .hangup(sessionId: nil, variables: [:]))
        #expect(try AIInboundMessage.decode(#"{"type":"setVariables","variables":{"a":"1","bad name":"x"}}"#) == .setVariables(["a": "1"]))
    }

    @Test func rejectsMalformed() {
        #expect(throws: AIInboundMessage.DecodeError.notJSON) { try AIInboundMessage.decode("not json") }
        #expect(throws: AIInboundMessage.DecodeError.noType) { try AIInboundMessage.decode(#"{"kind":"end"}"#) }
        #expect(throws: AIInboundMessage.DecodeError.unknownType("dance")) { try AIInboundMessage.decode(#"{"type":"dance"}"#) }
        #expect(throws: AIInboundMessage.DecodeError.badField("sampleRate")) { try AIInboundMessage.decode(#"{"type":"format","sampleRate":3}"#) }
        #expect(throws: AIInboundMessage.DecodeError.badField("context")) { try AIInboundMessage.decode(#"{"type":"transfer","extension":"1"}"#) }
    }

    @Test func startCarriesTheCall() throws {
        let info = AICallInfo(callId: "c1", channelId: "1.2", callerNumber: "555", callerName: "Al", exten: "100", context: "in",
                              campaign: "100", apiKey: "k", custom: AICallInfo.parseCustom(#"{"lang":"en"}"#), args: [], sampleRate: 16000)
        let json = try JSONValue.parse(AIOutboundMessage.start(info).json())
        #expect(json["type"]?.stringValue == "start")
        #expect(json["custom"]?["lang"]?.stringValue == "en")
        #expect(json["media"]?["sampleRate"]?.intValue == 16000)
        #expect(AICallInfo.parseCustom("plain text") == .string("plain text"))
        #expect(AICallInfo.parseCustom(nil) == .null)
    }
}
