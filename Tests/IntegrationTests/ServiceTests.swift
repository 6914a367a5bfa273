import FoneAISim
import Foundation
import Testing

/// The daemon as a service: sd_notify protocol, reload, drain and stop, and foneaictl against
/// live calls.
@Suite(.serialized) struct ServiceTests {
    @Test func notifyProtocolReloadAndStop() async throws {
        let notify = try NotifyListener()
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url, environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
        #expect(await notify.waitFor { $0.contains("READY=1") })
        #expect(await notify.waitFor { $0.contains("WATCHDOG=1") }, "watchdog pings at half of WATCHDOG_USEC")
        #expect(await notify.waitFor { $0.contains { $0.hasPrefix("STATUS=") && $0.contains("ARI connected") } })

        // A good reload: RELOADING=1 then READY=1 again, same process.
        let before = notify.lines.count
        harness.daemon.signal(SIGHUP)
        #expect(await notify.waitFor { Array($0.dropFirst(before)).contains("READY=1") })
        let afterReload = Array(notify.lines.dropFirst(before))
        let reloading = try #require(afterReload.firstIndex(of: "RELOADING=1"))
        let ready = try #require(afterReload.firstIndex(of: "READY=1"))
        #expect(reloading < ready)

        // A broken config on reload is rejected; the daemon keeps serving calls.
        let good = try String(contentsOfFile: harness.daemon.configPath, encoding: .utf8)
        try "{ \"ari\": { broken".write(toFile: harness.daemon.configPath, atomically: true, encoding: .utf8)
        harness.daemon.signal(SIGHUP)
        #expect(await harness.daemon.waitForLog("reload rejected"))
        #expect(await notify.waitFor { $0.contains { $0.hasPrefix("STATUS=") && $0.contains("last reload failed") } })
        let call = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 3), hangupAfter: .seconds(1)))
        #expect(await call.waitForEnd(timeout: .seconds(5)) == .hungUp(byCaller: true))
        #expect(await ai.waitForSessions(1).count == 1, "a call after the bad reload still reached the AI")
        try good.write(toFile: harness.daemon.configPath, atomically: true, encoding: .utf8)

        let beforeStop = notify.lines.count
        await harness.stop()
        #expect(Array(notify.lines.dropFirst(beforeStop)).contains("STOPPING=1"))
        await ai.stop()
    }

    /// SIGTERM with live calls: new calls are refused while draining, live calls get the drain
    /// timeout, then are continued in the dialplan; nothing is left and the exit status is 0.
    @Test func sigtermContinuesEveryLiveCaller() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url, extra: ["calls": ["drainTimeoutSeconds": 1]])
        var calls: [SimCall] = []
        for i in 0..<5 { calls.append(await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 300 + Double(i) * 100, seconds: 30)))) }
        _ = await ai.waitForSessions(5)
        try await Task.sleep(for: .milliseconds(300))
        harness.daemon.signal(SIGTERM)
        #expect(await harness.daemon.waitForLog("Stopping: draining"))
        let late = await harness.asterisk.placeCall(.dialplan())
        #expect(await late.waitForEnd(timeout: .seconds(3)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await late.variables()["FONEAI_STATUS"] == "unavailable")
        for call in calls {
            #expect(await call.waitForEnd(timeout: .seconds(5)) == .continued(context: "foneai-in", exten: "100", priority: 6))
            #expect(await call.variables()["FONEAI_STATUS"] == "unavailable")
        }
        await harness.expectNothingLeaked()
        await harness.stop()
        let sessions = await ai.sessions()
        #expect(sessions.prefix(5).allSatisfy { $0.stopReason == "drain" }, "\(sessions.map { $0.stopReason ?? "none" })")
        await ai.stop()
    }

    @Test func foneaictlAgainstLiveCalls() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url)
        let socket = harness.daemon.controlSocketPath
        var calls: [SimCall] = []
        // Call 0 is ended with `foneaictl end`; the others hang up by themselves, late enough
        // for every check before the drain even on a loaded machine.
        for i in 0..<3 {
            calls.append(await harness.asterisk.placeCall(SimCallSpec(
                callerNumber: "55500\(i)", variables: ["campaign": "100"], audio: .tone(hz: 400, seconds: 60),
                hangupAfterMedia: i == 0 ? nil : .seconds(8))))
        }
        _ = await ai.waitForSessions(3)
        try await Task.sleep(for: .milliseconds(500))

        // calls: the three live calls, streaming, with packets flowing.
        let (callsStatus, callsJSON) = try runCtl(["--socket", socket, "calls", "--json"])
        #expect(callsStatus == 0, "\(callsJSON)")
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(callsJSON.utf8)) as? [String: Any])["calls"] as? [[String: Any]]
        #expect(listed?.count == 3)
        #expect(listed?.allSatisfy { ($0["state"] as? String) == "streaming" && (($0["packetsIn"] as? Int) ?? 0) > 0 } == true)
        let (tableStatus, table) = try runCtl(["--socket", socket, "calls"])
        #expect(tableStatus == 0 && table.contains("555001"), "\(table)")
        let (statusStatus, status) = try runCtl(["--socket", socket, "status"])
        #expect(statusStatus == 0 && status.contains("3"), "\(status)")

        // stats --follow streams changing counters.
        let follow = Process()
        follow.executableURL = DaemonProcess.binDirectory.appendingPathComponent("foneaictl")
        follow.arguments = ["--socket", socket, "stats", "--follow", "--interval", "0.3", "--json"]
        let pipe = Pipe()
        follow.standardOutput = pipe
        try follow.run()
        try await Task.sleep(for: .milliseconds(1200))
        follow.terminate()
        let lines = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        #expect(lines.count >= 3, "stats --follow printed \(lines.count) lines")
        let packetCounts = lines.compactMap { line -> Int? in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (object?["counters"] as? [String: Any])?["rtp_in_packets"] as? Int
        }
        #expect(packetCounts.count == lines.count && packetCounts.last! > packetCounts.first!, "\(packetCounts)")

        // An unprivileged user may read but not act.
        chmod(socket, 0o666)
        #expect(try runCtl(["--socket", socket, "status"], asUID: 65534).0 == 0)
        let (forbidden, message) = try runCtl(["--socket", socket, "drain"], asUID: 65534)
        #expect(forbidden == 4, "\(message)")
        #expect(try runCtl(["--socket", socket, "end", "whatever"], asUID: 65534).0 == 4)

        // end: one caller continued in the dialplan.
        let firstId = try #require(listed?.first(where: { ($0["channelId"] as? String) == calls[0].id })?["callId"] as? String)
        #expect(try runCtl(["--socket", socket, "end", firstId]).0 == 0)
        #expect(await calls[0].waitForEnd(timeout: .seconds(3)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await calls[0].variables()["FONEAI_STATUS"] == "operator")
        #expect(try runCtl(["--socket", socket, "end", "no-such-call"]).0 == 1)

        // drain --wait returns once the remaining calls hang up; new callers are refused meanwhile.
        let drain = Process()
        drain.executableURL = DaemonProcess.binDirectory.appendingPathComponent("foneaictl")
        drain.arguments = ["--socket", socket, "drain", "--wait", "--timeout", "15"]
        try drain.run()
        try await Task.sleep(for: .milliseconds(300))
        let refused = await harness.asterisk.placeCall(.dialplan())
        #expect(await refused.waitForEnd(timeout: .seconds(3)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await refused.variables()["FONEAI_STATUS"] == "unavailable")
        #expect(drain.isRunning, "drain --wait returned while calls were live")
        for call in calls.dropFirst() { #expect(await call.waitForEnd(timeout: .seconds(12)) == .hungUp(byCaller: true)) }
        let deadline = ContinuousClock.now + .seconds(5)
        while drain.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!drain.isRunning && drain.terminationStatus == 0)

        // undrain: calls are taken again.
        #expect(try runCtl(["--socket", socket, "undrain"]).0 == 0)
        let again = await harness.asterisk.placeCall(.dialplan(hangupAfter: .milliseconds(500)))
        #expect(await again.waitForEnd(timeout: .seconds(3)) == .hungUp(byCaller: true))
        #expect(try runCtl(["--socket", socket, "reload"]).0 == 0)

        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }
}

/// Admission limits and live reconfiguration.
@Suite(.serialized) struct AdmissionAndReloadTests {
    /// `media.realtimePriority` puts every thread of the daemon under SCHED_RR at that priority
    /// (also those started after it was set, such as the media event loop's); where the kernel
    /// refuses (no CAP_SYS_NICE or RLIMIT_RTPRIO), the daemon says so in its log and runs as
    /// before. Calls flow either way.
    @Test func realtimePriorityAppliesToEveryThread() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url, extra: ["media": ["realtimePriority": 7]])
        let pid = harness.daemon.process.processIdentifier
        let call = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 30)))
        _ = await ai.waitForSessions(1)
        let threads = Self.threadScheduling(pid: pid)
        if geteuid() == 0 {
            #expect(await harness.daemon.waitForLog("The daemon runs at real-time priority"))
            // Policy 2 is SCHED_RR. More than the two event loops: call tasks run on other threads.
            #expect(threads.count > 2 && threads.allSatisfy { $0.policy == 2 && $0.priority == 7 }, "threads' policy and priority: \(threads)")
        } else {
            #expect(await harness.daemon.waitForLog("The daemon keeps normal scheduling"))
            #expect(threads.allSatisfy { $0.policy == 0 })
        }
        var heard = 0
        for _ in 0..<50 where heard < 8000 {
            try await Task.sleep(for: .milliseconds(100))
            heard = await ai.waitForSessions(1).first?.receivedAudio.count ?? 0
        }
        #expect(heard >= 8000, "half a second of caller audio reaches the AI")
        await call.hangup()
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    /// Each thread's scheduling policy and real-time priority, from its stat.
    static func threadScheduling(pid: Int32) -> [(policy: Int, priority: Int)] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.compactMap { tid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // Field 3 of stat(5) (the state) comes first after the command: rt_priority is field 40,
            // policy field 41.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 38, let priority = Int(fields[37]), let policy = Int(fields[38]) else { return nil }
            return (policy, priority)
        }
    }

    @Test func callsOverMaxCallsAreContinuedBusy() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url, extra: ["calls": ["maxCalls": 2]])
        let first = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 30)))
        let second = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 30)))
        _ = await ai.waitForSessions(2)
        let third = await harness.asterisk.placeCall(.dialplan())
        #expect(await third.waitForEnd(timeout: .seconds(3)) == .continued(context: "foneai-in", exten: "100", priority: 6))
        #expect(await third.variables()["FONEAI_STATUS"] == "busy")
        #expect(first.outcome == nil && second.outcome == nil, "the calls in progress are untouched")
        await first.hangup()
        await second.hangup()
        await harness.expectNothingLeaked()
        await harness.stop()
        await ai.stop()
    }

    /// SIGHUP with a new AI URL: the live call keeps its AI session; new calls use the new server.
    @Test func reloadMovesNewCallsToANewAIWithoutDroppingLiveOnes() async throws {
        let oldAI = try await AITestServer.start(mode: .echo)
        let newAI = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: oldAI.url)
        let live = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 30)))
        _ = await oldAI.waitForSessions(1)
        let config = try String(contentsOfFile: harness.daemon.configPath, encoding: .utf8)
        #expect(config.contains(oldAI.url))
        try config.replacingOccurrences(of: oldAI.url, with: newAI.url).write(toFile: harness.daemon.configPath, atomically: true, encoding: .utf8)
        harness.daemon.signal(SIGHUP)
        #expect(await harness.daemon.waitForLog("Configuration reloaded"))
        try await Task.sleep(for: .milliseconds(200))
        let fresh = await harness.asterisk.placeCall(.dialplan(audio: .tone(hz: 440, seconds: 30)))
        #expect(await newAI.waitForSessions(1).count == 1, "the new call went to the new AI server")
        #expect(await oldAI.sessionCount == 1)
        #expect(live.outcome == nil)
        let before = live.rtpPacketsHeard
        try await Task.sleep(for: .milliseconds(400))
        #expect(live.rtpPacketsHeard > before, "the live call still hears its (old) AI")
        await live.hangup()
        await fresh.hangup()
        await harness.expectNothingLeaked()
        await harness.stop()
        await oldAI.stop()
        await newAI.stop()
    }

    /// Another ARI client taking over the Stasis app is an error the administrator must see.
    @Test func applicationReplacedIsReported() async throws {
        let ai = try await AITestServer.start(mode: .echo)
        let harness = try await Harness.start(aiURL: ai.url)
        let intruder = try await SimARIEventClient.connect(ariURL: harness.asterisk.ariURL, app: "foneai",
                                                           username: harness.asterisk.username, password: harness.asterisk.password)
        #expect(await harness.daemon.waitForLog("Another ARI client took over the Stasis application"))
        let (_, status) = try runCtl(["--socket", harness.daemon.controlSocketPath, "status", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any]
        #expect(object?["ariConnected"] as? Bool == false, "\(status)")
        await intruder.close()
        await harness.stop()
        await ai.stop()
    }
}
