"""The source's audio as lotto-media carries it: coded packets, never decoded or re-encoded.

A ``.lotto`` file keeps the audio of a transcoded clip so that decoding can put it back beside
the pictures unchanged. The core treats the packets as opaque bytes; the PyAV plugins fill these
records from a demuxer and hand them back to a muxer.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class AudioParams:
    """Codec parameters a muxer needs to write the packets again (FFmpeg's names and meanings).

    ``layout`` is FFmpeg's channel layout name ("stereo", "mono", "5.1", ...), ``sample_format``
    its sample format name ("fltp", "s16", ...), ``frame_size`` the samples per packet (0 when
    variable), ``extradata`` the codec's global header (an AAC AudioSpecificConfig, ...).
    """

    codec: str
    sample_rate: int
    channels: int
    layout: str
    sample_format: str
    time_base: Fraction
    bit_rate: int = 0
    frame_size: int = 0
    extradata: bytes = b""


@dataclass(frozen=True)
class AudioPacket:
    """One coded audio packet; times in ``AudioParams.time_base`` units (None when unknown)."""

    data: bytes
    pts: int | None
    dts: int | None
    duration: int = 0
    keyframe: bool = True
