"""lotto-media as a PyAV decoder: a ``.lotto`` stream in, ``av.VideoFrame`` objects out.

Code that already consumes PyAV frames (filters, encoders, muxers, players) takes lotto-media
this way like any other decoder::

    from lotto_media.plugins.lotto_av import decode_av_frames

    for vf in decode_av_frames("clip.lotto"):
        ...  # vf.pts, vf.time_base, vf.format.name ("yuv420p", "yuv420p10le", "rgb24", "gray")

Frames come in display order, in the stream's native pixel format (no conversion), with pts,
time base, duration and colour tags set. :class:`LottoAVDecoder` also gives the stream's
:class:`~lotto_media.frame.VideoFormat` (size, pixel format, time base, frame rate) and audio
description before the first frame, which is what setting up an output stream needs.

Damage: every intact frame is yielded, then :class:`~lotto_media.errors.FormatError` is raised
naming the loss (as a PyAV decoder raises on corrupt input; a frame of a newer packet version
raises :class:`~lotto_media.errors.UnsupportedError`). ``strict=False`` ends the iteration
with a logged warning instead; :attr:`LottoAVDecoder.damage` says what was lost either way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import BinaryIO

import av

from lotto_media.audio import AudioParams
from lotto_media.errors import FormatError, InputError, UnsupportedError
from lotto_media.frame import VideoFormat
from lotto_media.stream import LottoReader

from .media_io import to_av_frame

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO

__all__ = ["LottoAVDecoder", "decode_av_frames"]

log = logging.getLogger(__name__)


class LottoAVDecoder:
    """An open ``.lotto`` stream whose frames come out as ``av.VideoFrame``.

    ``source`` is a path, the stream's bytes or a readable binary file object (a pipe works: the
    stream is read frame by frame); ``name`` is what messages call it; ``frames`` selects frames
    by number (counted from 0, decode order = display order), decoding only what is needed.
    Opening reads the sequence header (FormatError if it is not a .lotto stream). Use as a
    context manager, or call :meth:`close` (a path opened here is closed then)."""

    def __init__(self, source: Source, name: str | None = None, frames: range | None = None,
                 *, strict: bool = True) -> None:
        self._resources = ExitStack()
        self.strict = strict
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            name = name or path
            try:
                stream: bytes | bytearray | memoryview | BinaryIO = self._resources.enter_context(open(path, "rb"))
            except OSError as exc:
                raise InputError(f"{name}: {exc.strerror or exc}") from None
        else:
            stream = source
            name = name or str(getattr(source, "name", "<stream>"))
        self.name = name
        try:
            # strict: the FormatError names the loss, a warning would name it twice
            self._reader = LottoReader(stream, name, frames=frames, warn=not strict)
        except BaseException:
            self._resources.close()
            raise
        header = self._reader.header
        self.format = VideoFormat(width=header.width, height=header.height, pix_fmt=header.pix_fmt,
                                  time_base=header.time_base, frame_rate=header.frame_rate,
                                  color=header.color, rotation=header.rotation, source=header.source)
        self._started = False
        self._failure: str | None = None

    @property
    def audio(self) -> AudioParams | None:
        """The source's audio track as the stream carries it (coded packets, never decoded)."""
        return self._reader.audio

    @property
    def damage(self) -> str | None:
        """After iteration: what was lost (None: the stream was intact)."""
        return self._failure or self._reader.damage

    def take_audio_packets(self):
        """The audio packets met so far and not taken yet (see LottoReader.take_audio_packets)."""
        return self._reader.take_audio_packets()

    def __iter__(self) -> Iterator[av.VideoFrame]:
        if self._started:
            raise InputError(f"{self.name}: the stream was already read")
        self._started = True
        time_base = self.format.time_base
        frames = iter(self._reader)
        while True:
            try:
                frame = next(frames, None)
            except (FormatError, UnsupportedError) as exc:  # a frame that does not decode
                if self.strict:
                    raise
                self._failure = str(exc)
                log.warning("%s", exc)
                return
            if frame is None:
                break
            vf = to_av_frame(frame)  # pts from the stream: every .lotto frame has one
            if frame.time_base is None:
                vf.time_base = time_base
            yield vf
        if self._reader.damage and self.strict:
            raise FormatError(f"{self.name}: {self._reader.damage}")

    def close(self) -> None:
        self._resources.close()

    def __enter__(self) -> "LottoAVDecoder":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def decode_av_frames(source: Source, name: str | None = None, frames: range | None = None,
                     *, strict: bool = True) -> Iterator[av.VideoFrame]:
    """The frames of a ``.lotto`` stream as ``av.VideoFrame`` (pts and time base set), in display
    order. ``source``: a path, bytes or a readable binary file object; ``frames``: a selection
    by frame number. The stream is opened now (a missing file or a bad header raises here, not
    at the first frame). A damaged stream yields every intact frame, then raises FormatError
    (``strict=False``: stops there and logs the loss as a warning instead)."""
    decoder = LottoAVDecoder(source, name, frames, strict=strict)

    def generate() -> Iterator[av.VideoFrame]:
        with decoder:
            yield from decoder

    return generate()
