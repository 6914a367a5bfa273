#!/usr/bin/env python3
"""Writes the seed corpus in Tests/Fuzz/corpus/ (committed; rerun only to change the seeds).

RTP packets as Asterisk sends them (docs: /work/shared/asterisk-facts.md style, RFC 3550), ARI
events and REST bodies as seen on the wire, AI messages and control requests from docs/, configs
from etc/foneai/config.json and the README's table. Deterministic: no randomness, no timestamps.
"""
import json, math, os, shutil, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- RTP -----------------------------------------------------------------------------------
def ulaw(sample):
    sign = 0x80 if sample >= 0 else 0
    if sample < 0:
        sample = -sample - 1
    sample = min(sample, 32635) + 0x84
    exp = max(0, sample.bit_length() - 8)
    mant = (sample >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant)) & 0xFF


def alaw(sample):
    mask = 0xD5 if sample >= 0 else 0x55
    pcm = sample >> 3 if sample >= 0 else (-sample - 1) >> 3
    if pcm > 0xFFF:
        return 0x7F ^ mask
    seg = max(0, pcm.bit_length() - 5)
    val = (seg << 4) | ((pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F)
    return val ^ mask


def tone(n, rate):
    return [int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)]


def rtp(pt, seq, ts, ssrc, payload, marker=False, csrcs=(), ext=None, pad=0, version=2):
    b0 = (version << 6) | (0x20 if pad else 0) | (0x10 if ext is not None else 0) | len(csrcs)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    for c in csrcs:
        out += struct.pack("!I", c)
    if ext is not None:
        out += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    out += payload
    if pad:
        out += bytes(pad - 1) + bytes([pad])
    return out


be16 = lambda samples: b"".join(struct.pack("!h", s) for s in samples)
write("rtp", "slin16-pt118-640", rtp(118, 0x1A2B, 320, 0x11223344, be16(tone(320, 16000))))
write("rtp", "slin-pt10-320", rtp(10, 7, 160, 0x55667788, be16(tone(160, 8000))))
write("rtp", "ulaw-pt0-160", rtp(0, 65535, 160, 0xCAFEBABE, bytes(ulaw(s) for s in tone(160, 8000))))
write("rtp", "alaw-pt8-160", rtp(8, 1, 4294967200, 0x01020304, bytes(alaw(s) for s in tone(160, 8000))))
write("rtp", "back-pt11-marker-320", rtp(11, 100, 160, 0x0BADF00D, be16(tone(160, 8000)), marker=True))
write("rtp", "csrc-ext-padding", rtp(118, 9, 640, 0x99, be16(tone(32, 16000)), csrcs=(1, 2),
                                     ext=bytes(range(8)), pad=4))
write("rtp", "empty-payload", rtp(118, 10, 960, 0x99, b""))
write("rtp", "odd-payload-641", rtp(118, 11, 1280, 0x99, be16(tone(320, 16000)) + b"\x7f"))
write("rtp", "bad-too-short", bytes([0x80, 118, 0, 1, 0, 0, 1, 64, 0, 0, 0]))
write("rtp", "bad-version1", rtp(118, 12, 1600, 0x99, b"\x00\x01" * 8, version=1))
write("rtp", "bad-csrc-past-end", bytes([0x8F, 118]) + bytes(10) + bytes(8))
# Extension header claiming 16 words that are not there.
write("rtp", "bad-ext-past-end", rtp(118, 13, 1920, 0x99, b"", ext=b"")[:12] + b"\xbe\xde\x00\x10")
bad = bytearray(rtp(118, 14, 2240, 0x99, b"\x00\x01\x02"))
bad[0] |= 0x20  # padding flag with a pad count larger than the payload
bad[-1] = 0x40
write("rtp", "bad-padding-count", bytes(bad))

# ---- ARI -----------------------------------------------------------------------------------
caller = {"id": "1795747148.67", "name": "Local/100@foneai-in-00000016;2", "state": "Up", "protocol_id": "",
          "caller": {"name": "", "number": ""}, "connected": {"name": "", "number": ""}, "accountcode": "",
          "dialplan": {"context": "foneai-in", "exten": "100", "priority": 5, "app_name": "Stasis",
                       "app_data": "foneai"},
          "creationtime": "2026-11-27T02:39:08.712+0000", "language": "en"}
em = {"id": "em-48ad98834e97", "name": "UnicastRTP/127.0.0.1:7777-0x7f79c800c6c0", "state": "Down",
      "protocol_id": "", "caller": {"name": "", "number": ""}, "connected": {"name": "", "number": ""},
      "accountcode": "", "dialplan": {"context": "default", "exten": "s", "priority": 1, "app_name": "",
                                      "app_data": ""},
      "channelvars": {"UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1", "UNICASTRTP_LOCAL_PORT": "16384"},
      "creationtime": "2026-11-27T02:39:08.812+0000", "language": "en"}
bridge = {"id": "foneai-b-48ad98834e97", "technology": "simple_bridge", "bridge_type": "mixing",
          "bridge_class": "stasis", "creator": "Stasis", "name": "", "channels": ["1795747148.67", "em-48ad98834e97"],
          "creationtime": "2026-11-27T02:39:08.800+0000", "video_mode": "talker"}
common = {"timestamp": "2026-11-27T02:39:08.713+0000", "asterisk_id": "02:fc:00:00:00:01", "application": "foneai"}


def ev(type_, **fields):
    d = {"type": type_}
    d.update(fields)
    d.update(common)
    return json.dumps(d, separators=(",", ":"))


write("ari", "StasisStart-caller", ev("StasisStart", args=[], channel=caller))
write("ari", "StasisStart-caller-args", ev("StasisStart", args=["sales", "x=1"], channel=caller))
write("ari", "StasisStart-external", ev("StasisStart", args=[], channel=em))
write("ari", "StasisEnd", ev("StasisEnd", channel=caller))
write("ari", "ChannelDtmfReceived", ev("ChannelDtmfReceived", digit="5", duration_ms=120, channel=caller))
write("ari", "ChannelHangupRequest", ev("ChannelHangupRequest", cause=16, channel=caller))
write("ari", "ChannelDestroyed", ev("ChannelDestroyed", cause=16, cause_txt="Normal Clearing", channel=em))
write("ari", "ChannelEnteredBridge", ev("ChannelEnteredBridge", bridge=bridge, channel=caller))
write("ari", "ChannelLeftBridge", ev("ChannelLeftBridge", bridge=bridge, channel=caller))
write("ari", "BridgeDestroyed", ev("BridgeDestroyed", bridge=bridge))
write("ari", "ChannelVarset", ev("ChannelVarset", variable="sessionId", value="s-42", channel=caller))
write("ari", "ChannelStateChange", ev("ChannelStateChange", channel=em))
write("ari", "ApplicationReplaced", ev("ApplicationReplaced"))
write("ari", "Dial-unknown", ev("Dial", dialstatus="ANSWER", peer=caller))
write("ari", "GET-channels", json.dumps([caller, em], separators=(",", ":")))
write("ari", "GET-bridges", json.dumps([bridge], separators=(",", ":")))
write("ari", "GET-application", json.dumps({"name": "foneai", "channel_ids": ["1795747148.67", "em-48ad98834e97"],
                                            "bridge_ids": [bridge["id"]], "endpoint_ids": [],
                                            "device_names": [], "events_allowed": [], "events_disallowed": []},
                                           separators=(",", ":")))

# ---- AI ------------------------------------------------------------------------------------
ai = {
    "format": {"type": "format", "sampleRate": 24000},
    "clear": {"type": "clear"},
    "mark": {"type": "mark", "name": "greeting-done"},
    "setVariables": {"type": "setVariables", "variables": {"intent": "billing", "score": 0.75, "vip": True}},
    "end": {"type": "end", "sessionId": "s-42", "variables": {"intent": "billing"}},
    "transfer": {"type": "transfer", "context": "sales", "extension": "200", "priority": 1, "sessionId": "s-43",
                 "variables": {"reason": "upsell"}, "jump": True},
    "transfer-min": {"type": "transfer", "context": "support", "extension": "s"},
    "hangup": {"type": "hangup", "sessionId": 17, "variables": {}},
    "unknown": {"type": "speech_started", "at": 1.5},
    "custom-json": {"lang": "en", "tags": ["a", 1, None, True], "nested": {"x": -0.5e-3}},
    "twilio-media": {"event": "media", "streamSid": "MZ" + "0" * 32,
                     "media": {"payload": "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eDf3t3c29rZ2NfW1dTT0tHQ"}},
    "twilio-mark": {"event": "mark", "streamSid": "MZ" + "0" * 32, "mark": {"name": "greeting-done"}},
    "twilio-clear": {"event": "clear", "streamSid": "MZ" + "0" * 32},
    "twilio-foneai-end": {"event": "foneai", "foneai": {"type": "end", "sessionId": "s-44"}},
    "twilio-connected": {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    "start": json.loads('{"type":"start","version":1,"callId":"c-1f3a","channelId":"1795747148.67",'
                        '"caller":{"number":"5551234","name":"Alice"},"exten":"100","context":"foneai-in",'
                        '"campaign":"100","apiKey":"k-123","custom":{"lang":"en"},"args":[],'
                        '"media":{"encoding":"pcm16le","sampleRate":16000,"channels":1,"frameMs":20}}'),
}
for name, msg in ai.items():
    write("ai", name, json.dumps(msg, separators=(",", ":")))
write("ai", "custom-plain-string", "hello, not JSON")
write("ai", "escapes", r'{"type":"mark","name":"\u00e9\ud83d\ude00\n\t\"\\\/"}')

# ---- control -------------------------------------------------------------------------------
reqs = [
    '{"v":1,"id":7,"cmd":"status"}',
    '{"v":1,"id":2,"cmd":"calls"}',
    '{"v":1,"id":3,"cmd":"stats"}',
    '{"v":1,"id":8,"cmd":"stats","args":{"follow":true,"intervalMs":1000}}',
    '{"v":1,"id":4,"cmd":"drain"}',
    '{"v":1,"id":4,"cmd":"drain","args":{"wait":true,"timeoutSeconds":300}}',
    '{"v":1,"id":5,"cmd":"undrain"}',
    '{"v":1,"id":6,"cmd":"end","args":{"callId":"c-7f3a"}}',
    '{"v":1,"id":9,"cmd":"reload"}',
    '{"v":2,"id":10,"cmd":"status"}',
    '{"v":1,"id":11,"cmd":"frobnicate"}',
    # Crashed the daemon before timeouts over 1e9 s were rejected (Int64 milliseconds overflow).
    '{"v":1,"id":12,"cmd":"drain","args":{"wait":true,"timeoutSeconds":1e300}}',
]
for i, r in enumerate(reqs):
    write("control", "request-%02d" % i, r + "\n")
write("control", "pipelined-crlf", "\r\n".join(reqs[:3]) + "\r\n\r\n  \t\n" + reqs[3] + "\n")
write("control", "unterminated", reqs[0])
write("control", "too-long", '{"v":1,"id":1,"cmd":"end","args":{"callId":"' + "x" * 300 + '"}}\n' + reqs[0] + "\n")
write("control", "garbage", "status\nGET / HTTP/1.1\r\n\x00\xff\n")
resps = [
    '{"v":1,"id":7,"ok":true,"result":{"version":"0.1.0","pid":4242,"uptimeSeconds":8123.4,"ariConnected":true,'
    '"ariURL":"http://127.0.0.1:8088","appName":"foneai","draining":false,"liveCalls":3,"totals":{"handled":1200,'
    '"failed":4,"aiErrors":2,"rejectedBusy":0,"rejectedDraining":0},"configPath":"/etc/foneai/bridge.json",'
    '"lastReload":{"at":1714550400.5,"ok":true,"message":"log level debug"}}}',
    '{"v":1,"id":2,"ok":true,"result":{"calls":[{"callId":"c-7f3a","channelId":"1714550000.42",'
    '"caller":"+4930123456 \\"Alice\\"","campaign":"spring","state":"bridged","ageSeconds":42.5,"packetsIn":2125,'
    '"packetsOut":2119,"packetsDropped":3,"playoutBufferMs":60,"aiSessionId":"sess-91"}]}}',
    '{"v":1,"id":3,"ok":true,"result":{"at":1714550400.0,"uptimeSeconds":8123.4,"liveCalls":3,"counters":'
    '{"rtp_in_packets":1823311,"rtp_out_packets":1822001,"rtp_malformed":0}}}',
    '{"v":1,"id":7,"ok":false,"error":{"code":"forbidden","message":"drain needs root or the service user"}}',
    '{"v":1,"id":null,"ok":false,"error":{"code":"too_large","message":"request line longer than 65536 bytes"}}',
]
for i, r in enumerate(resps):
    write("control", "response-%02d" % i, r + "\n")

# ---- config --------------------------------------------------------------------------------
os.makedirs(os.path.join(CORPUS, "config"), exist_ok=True)
shutil.copyfile(os.path.join(ROOT, "etc", "foneai", "config.json"), os.path.join(CORPUS, "config", "vendor-config.json"))
full = """{
  // every section, new ones included
  "ari": {"url": "https://pbx.example.com:8089", "username": "asterisk", "password": "s3cret",
          "appName": "foneai", "caFile": "/etc/foneai/ca.pem", "reconnectMaxSeconds": 10},
  "rtpServer": {"host": "::1", "port": 7777, "format": "ulaw", "swap16": false, "socketType": "udp6"},
  "asterisk": {"rtpPayloadType": 0, "packetTimestampIncrement": 160},
  "ai": {"serverUrl": "wss://ai.example.com/stream", "caFile": "/etc/foneai/ai-ca.pem",
         "connectTimeoutMs": 3000, "connectAttempts": 2, "maxBufferedAudioMs": 10000,
         "playoutOnEndMs": 5000, "protocol": "twilio"},
  "log": {"logLevel": "debug"},
  "calls": {"maxCalls": 500, "drainTimeoutSeconds": 30, "idPrefix": "foneai"},
  "control": {"socketPath": "/run/foneai/control.sock"},
  "media": {"transport": "rtp"},
}
"""
write("config", "full-with-comments.json", full)
write("config", "minimal.json", json.dumps({
    "ari": {"url": "http://127.0.0.1:8088", "username": "u", "password": "p", "appName": "foneai"},
    "rtpServer": {"host": "127.0.0.1", "port": 7777}, "ai": {"serverUrl": "ws://127.0.0.1:9000/stream"}}))
write("config", "wrong-types.json", json.dumps({
    "ari": {"url": 5, "username": None, "password": ["x"], "appName": {}, "reconnectMaxSeconds": "10"},
    "rtpServer": {"host": True, "port": "70000", "format": "opus", "swap16": "yes", "socketType": "tcp"},
    "asterisk": {"rtpPayloadType": 118, "packetTimestampIncrement": -1.5},
    "ai": {"serverUrl": "http://x", "connectTimeoutMs": 1e300, "connectAttempts": 0},
    "log": {"logLevel": "loud"}, "calls": {"maxCalls": -1, "idPrefix": ""}, "media": {"transport": "websocket"},
    "extra": 1}))
write("config", "placeholders.json", """{"ari": {"url": "http://HOST:8088", "username": "ARI_USERNAME",
 "password": "<your password>", "appName": "Replace with App name"},
 /* block */ "rtpServer": {"host": "0.0.0.0", "port": "7777",}, "ai": {"serverUrl": "WS_URL"},}""")
write("config", "json-escapes.json", r'["\u00e9\ud83d\ude00", -0, 1e-7, 123456789012345678, 1.5e300, {"a": [[], {}]}]')
print("seeds written to", CORPUS)
