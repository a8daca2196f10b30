"""SDP text the simulator reads or rewrites: whether an offer asks for Opus DTX, and the
surgery for the "data channel never opens" fault.

``wants_opus_dtx``: an offer whose Opus ``a=fmtp`` states ``usedtx=1`` asks the answerer to
send discontinuously (RFC 7587 §6.1: the receiver's preference for the sender), which the
simulator honours as a libwebrtc server does (``_rtc_answerer``).

The fault: take the ``m=application`` section out of an offer, and give an equivalent one
back in the answer.

The answering peer connection sees an audio-only offer, so it creates no SCTP endpoint; the
answer then gets an application section on the audio section's transport (same ICE
credentials, DTLS fingerprint and role, bundled), at the offer's position, as JSEP requires.
The offerer accepts it, runs SCTP over the shared DTLS transport and gets no answer: its
channel stays ``connecting`` while audio flows.

Pure text functions (sans-IO); an offer without an application section passes unchanged.
"""

from __future__ import annotations

import attrs

__all__ = ["ApplicationSection", "give_back_application", "take_application", "wants_opus_dtx"]

#: The answerer's SCTP port and message size as a WebRTC peer advertises them (RFC 8841).
SCTP_PORT = 5000
MAX_MESSAGE_SIZE = 65536

# The transport attributes an application section shares with the audio section it rides on
# (its ``c=`` line is copied first, before the ``mid``).
_TRANSPORT_PREFIXES = (
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=fingerprint:",
    "a=setup:",
    "a=candidate:",
    "a=end-of-candidates",
)


@attrs.frozen
class ApplicationSection:
    """What the answer needs of the removed section: its place among the offer's media
    sections, its ``mid`` and its ``m=`` line's protocol."""

    index: int
    mid: str | None
    proto: str


def wants_opus_dtx(offer: str) -> bool:
    """True when an audio section's Opus format parameters state ``usedtx=1``."""
    _, media = _split(offer)
    for section in media:
        if not section[0].startswith("m=audio"):
            continue
        opus = {
            line[len("a=rtpmap:") :].split()[0]
            for line in section
            if line.startswith("a=rtpmap:") and " opus/" in line.lower()
        }
        for line in section:
            if not line.startswith("a=fmtp:"):
                continue
            pt, _, params = line[len("a=fmtp:") :].partition(" ")
            if pt in opus and "usedtx=1" in params.replace(" ", "").lower().split(";"):
                return True
    return False


def _split(sdp: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    session: list[str] = []
    media: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    return session, media


def _join(session: list[str], media: list[list[str]]) -> str:
    return "\r\n".join([*session, *(line for section in media for line in section)]) + "\r\n"


def _mid(section: list[str]) -> str | None:
    for line in section:
        if line.startswith("a=mid:"):
            return line[len("a=mid:") :]
    return None


def _with_bundle(session: list[str], mids: list[str]) -> list[str]:
    return [
        "a=group:BUNDLE " + " ".join(mids) if line.startswith("a=group:BUNDLE") else line
        for line in session
    ]


def take_application(offer: str) -> tuple[str, ApplicationSection | None]:
    """The offer without its first application section, and what is needed to give it back
    (None, and the offer unchanged, when it has none)."""
    session, media = _split(offer)
    for index, section in enumerate(media):
        words = section[0].split()
        if words[0] == "m=application":
            taken = ApplicationSection(
                index=index, mid=_mid(section), proto=" ".join(words[2:]) or "webrtc-datachannel"
            )
            rest = media[:index] + media[index + 1 :]
            mids = [mid for mid in map(_mid, rest) if mid is not None]
            return _join(_with_bundle(session, mids), rest), taken
    return offer, None


def give_back_application(answer: str, taken: ApplicationSection) -> str:
    """``answer`` with an application section at ``taken``'s place, on the transport of the
    answer's first media section."""
    session, media = _split(answer)
    if not media:
        return answer
    carrier = media[0]
    port = carrier[0].split()[1]
    section = [f"m=application {port} {taken.proto}"]
    section += [line for line in carrier if line.startswith("c=")]
    if taken.mid is not None:
        section.append(f"a=mid:{taken.mid}")
    section += [line for line in carrier if line.startswith(_TRANSPORT_PREFIXES)]
    section += [f"a=sctp-port:{SCTP_PORT}", f"a=max-message-size:{MAX_MESSAGE_SIZE}"]
    media.insert(min(taken.index, len(media)), section)
    mids = [mid for mid in map(_mid, media) if mid is not None]
    return _join(_with_bundle(session, mids), media)
