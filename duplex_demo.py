"""``duplex demo``: the main job.

Until the engine exists this is a protocol showcase: it builds a conversation's worth of client
events and parses a conversation's worth of server events in both dialects, printing the
host-visible vocabulary each produces.
"""

from __future__ import annotations

import protocol as p

__all__ = ["run_demo"]


def _server_script(version: str) -> list[p.ServerEvent]:
    pcm = bytes(range(0, 256, 2)) * 15  # 1920 bytes = 40 ms of 24 kHz mono PCM16
    return [
        p.SessionCreated("sess_demo"),
        p.SessionUpdated("sess_demo", "You are a helpful voice assistant."),
        p.InputAudioSpeechStarted("item_u1", 120),
        p.InputTranscriptDelta("please ", "item_u1"),
        p.InputTranscriptDelta("delegate this", "item_u1"),
        p.ResponseCreated("resp_1"),
        p.OutputTranscriptDelta("On it.", "item_a1", "resp_1"),
        p.AudioOut(p.AudioFrame(pcm), "item_a1", "resp_1"),
        p.HandoffRequested("call_1", "item_f1", "delegate this"),
        p.ResponseDone("resp_1", "completed", p.Usage(total_tokens=42)),
    ]


def run_demo(*, out_dir: str = ".", transport: str = "all") -> int:
    """Print a protocol walk-through for v1 and v2. Returns the process exit code."""
    del out_dir, transport  # used once the engine drives real transports
    for version in ("v1", "v2"):
        print(f"== dialect {version} ==")
        start = p.session_start_event(version, instructions="You are a helpful voice assistant.")
        print("client →", p.encode_client_event(start, version)[:120], "…")
        accumulator = p.TranscriptAccumulator()
        for event in _server_script(version):
            wire = p.encode_server_event(event, version)
            parsed = accumulator.observe(p.parse_server_event(wire, version))
            print(f"server → {wire[:70]:70s} ⇒ {type(parsed).__name__}")
            if isinstance(parsed, p.HandoffRequested):
                print(
                    "          active transcript:",
                    [(e.role, e.text) for e in parsed.active_transcript],
                )
                for reply in p.handoff_output_events(
                    version, parsed.handoff_id, "done", final=True
                ):
                    print("client →", p.encode_client_event(reply, version))
    return 0
