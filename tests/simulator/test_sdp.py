"""The simulator's SDP text functions (``simulator._sdp``): the Opus DTX request, and the
surgery behind the "data channel never opens" fault."""

from __future__ import annotations

from duplex.simulator._sdp import (
    ApplicationSection,
    give_back_application,
    take_application,
    wants_opus_dtx,
)
from duplex.transports._rtc_asyncio import offer_with_opus_dtx

AUDIO = [
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=mid:0",
    "a=ice-ufrag:offr",
    "a=ice-pwd:offerpassword",
    "a=fingerprint:sha-256 AA:BB",
    "a=setup:actpass",
    "a=rtpmap:111 opus/48000/2",
]
APPLICATION = [
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    "a=mid:1",
    "a=ice-ufrag:offr",
    "a=ice-pwd:offerpassword",
    "a=fingerprint:sha-256 AA:BB",
    "a=setup:actpass",
    "a=sctp-port:5000",
]
SESSION = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1"]


def sdp(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


def test_the_application_section_leaves_the_offer_and_the_bundle() -> None:
    offer, taken = take_application(sdp(*SESSION, *AUDIO, *APPLICATION))
    assert taken == ApplicationSection(index=1, mid="1", proto="UDP/DTLS/SCTP webrtc-datachannel")
    assert "m=application" not in offer
    assert "a=group:BUNDLE 0\r\n" in offer
    assert offer == sdp(*SESSION[:-1], "a=group:BUNDLE 0", *AUDIO)


def test_an_offer_without_a_data_channel_passes_unchanged() -> None:
    offer = sdp(*SESSION[:-1], "a=group:BUNDLE 0", *AUDIO)
    assert take_application(offer) == (offer, None)


def test_the_answer_gets_the_section_back_on_the_audio_transport() -> None:
    answer_audio = [
        "m=audio 40000 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 127.0.0.1",
        "a=mid:0",
        "a=ice-ufrag:answ",
        "a=ice-pwd:answerpassword",
        "a=fingerprint:sha-256 CC:DD",
        "a=setup:active",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
        "a=end-of-candidates",
        "a=rtpmap:111 opus/48000/2",
    ]
    answer = sdp(*SESSION[:-1], "a=group:BUNDLE 0", *answer_audio)
    taken = ApplicationSection(index=1, mid="1", proto="UDP/DTLS/SCTP webrtc-datachannel")
    given = give_back_application(answer, taken)
    assert given == sdp(
        *SESSION[:-1],
        "a=group:BUNDLE 0 1",
        *answer_audio,
        "m=application 40000 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 127.0.0.1",
        "a=mid:1",
        "a=ice-ufrag:answ",
        "a=ice-pwd:answerpassword",
        "a=fingerprint:sha-256 CC:DD",
        "a=setup:active",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
        "a=end-of-candidates",
        "a=sctp-port:5000",
        "a=max-message-size:65536",
    )


def test_the_section_goes_back_to_its_place_in_the_offer_order() -> None:
    offer, taken = take_application(sdp(*SESSION[:-1], "a=group:BUNDLE 1 0", *APPLICATION, *AUDIO))
    assert taken is not None
    assert taken.index == 0
    answer = give_back_application(offer, taken)
    media = [line for line in answer.split("\r\n") if line.startswith("m=")]
    assert [line.split()[0] for line in media] == ["m=application", "m=audio"]
    assert "a=group:BUNDLE 1 0\r\n" in answer


def test_an_opus_fmtp_with_usedtx_asks_for_dtx() -> None:
    assert wants_opus_dtx(sdp(*SESSION, *AUDIO, "a=fmtp:111 minptime=10; usedtx=1"))
    assert wants_opus_dtx(sdp(*SESSION, *AUDIO, "a=fmtp:111 useinbandfec=1;USEDTX=1"))


def test_no_usedtx_or_usedtx_0_or_another_codec_does_not() -> None:
    assert not wants_opus_dtx(sdp(*SESSION, *AUDIO, *APPLICATION))
    assert not wants_opus_dtx(sdp(*SESSION, *AUDIO, "a=fmtp:111 minptime=10;usedtx=0"))
    pcmu = ["m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=rtpmap:0 PCMU/8000", "a=fmtp:0 usedtx=1"]
    assert not wants_opus_dtx(sdp(*SESSION, *pcmu))


def test_the_duplex_offer_asks_for_dtx() -> None:
    assert wants_opus_dtx(offer_with_opus_dtx(sdp(*SESSION, *AUDIO, *APPLICATION)))
