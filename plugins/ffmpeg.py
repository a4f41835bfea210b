"""ffmpeg on either side of lotto-media: command lines built with ffmpeg-python, and runners that
pipe ffmpeg into the encoder or the decoder into ffmpeg.

Why this exists: lotto-media reads and writes only what it must (files PyAV opens, y4m and NUT on
pipes) and has no filters. Everything else a media person does around a codec (scaling, cropping,
a pixel-format change, another container, putting the source's audio back) is ffmpeg's job, and
the argv for it is easy to get subtly wrong: NUT's default video codec is lossy MPEG-4 (a NUT
pipe must say ``-c:v rawvideo``), a 10-bit y4m pipe needs ``-strict -1``, ffmpeg reads the
terminal unless told ``-nostdin``, and it prompts before overwriting. The builders here
(:func:`to_y4m_pipe`, :func:`to_nut_pipe`, :func:`mux_decoded`) get those right and return a
plain ``list[str]`` to run with :mod:`subprocess` or print with :func:`shlex.join`; the runners
(:func:`encode_with_ffmpeg`, :func:`decode_with_ffmpeg`) run them against the codec with pipes
and turn ffmpeg's failures into :class:`FFmpegError` (a ``LottoError``) with one line naming the
input and ffmpeg's own last message. The README's "ffmpeg recipes" are the shell form of the same
jobs.

This is the only module that imports ffmpeg-python (``pip install 'lotto-media[ffmpeg]'``) or
runs the ffmpeg binary: the codec core and the other plugins never need either.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import secrets
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Union

from lotto_media.errors import FormatError, InputError, LottoError, UnsupportedError
from lotto_media.options import DEFAULT_GOP, EncodeOptions

try:
    import ffmpeg as _ffmpeg_python
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name != "ffmpeg":
        raise
    raise ModuleNotFoundError(
        "lotto_media.plugins.ffmpeg needs ffmpeg-python: pip install 'lotto-media[ffmpeg]'",
        name="ffmpeg") from exc
if not hasattr(_ffmpeg_python, "input"):  # pragma: no cover - a different package named "ffmpeg"
    raise ImportError("the installed 'ffmpeg' module is not ffmpeg-python "
                      "(pip uninstall ffmpeg && pip install 'lotto-media[ffmpeg]')")

__all__ = [
    "CODED_PIX_FMTS", "DEFAULT_CRF", "FFmpegError", "FFmpegJobResult", "FFmpegNotFoundError", "Y4M_PIX_FMTS",
    "decode_with_ffmpeg", "encode_with_ffmpeg", "find_ffmpeg", "mux_decoded", "to_nut_pipe", "to_y4m_pipe",
]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
#: one side of a scale or crop: pixels, or an ffmpeg expression such as ``"iw/2"``
Dimension = Union[int, str]
#: ``(width, height)``, or ffmpeg's own ``"W:H"``; -1 keeps the aspect ratio, -2 too, rounded to even
Scale = Union[tuple[Dimension, Dimension], str]
#: ``(width, height)`` (centred), ``(width, height, x, y)``, or ffmpeg's ``"W:H[:X:Y]"``
Crop = Union[tuple[Dimension, Dimension], tuple[Dimension, Dimension, Dimension, Dimension], str]

#: pixel formats lotto-media codes natively; asking ffmpeg for another would only add a conversion
CODED_PIX_FMTS = ("gray", "yuv420p", "yuv420p10le", "rgb24")
#: the ones y4m can carry (y4m has no RGB)
Y4M_PIX_FMTS = ("gray", "yuv420p", "yuv420p10le")
#: constant rate factor used by :func:`mux_decoded` when none is given (visually lossless-ish: the
#: decoded pictures are the thing being delivered, so re-encoding them should cost little)
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libaom-av1": 24, "libsvtav1": 24}
#: how long a failure on lotto-media's side waits for ffmpeg to exit, to learn whether ffmpeg
#: failed first (its death ends the pipe, which is what lotto-media then reports)
_EXIT_GRACE_S = 1.0
#: lines of ffmpeg's stderr kept for the error message and the debug log
_STDERR_TAIL = 20
#: "[Parsed_crop_0 @ 0x55aa4f7a7f80] message" -> "Parsed_crop_0: message"
_LOG_PREFIX = re.compile(r"\[([^\]@]+?) @ 0x[0-9a-f]+\] ")


class FFmpegError(LottoError):
    """ffmpeg failed (bad input, a filter or option it refused, a codec it lacks). The message is
    one line: what was being read, ffmpeg's exit status and the last line it wrote on stderr."""

    def __init__(self, message: str, *, argv: Sequence[str] = (), returncode: int | None = None,
                 stderr: str = "") -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


class FFmpegNotFoundError(FFmpegError):
    """The ffmpeg binary is not installed (or not where ``cmd`` says)."""


def find_ffmpeg(cmd: str = "ffmpeg") -> str:
    """The full path of the ffmpeg binary ``cmd`` (a name looked up on PATH, or a path).

    Raises :class:`FFmpegNotFoundError` with what to install, before anything is started, so that a
    missing binary is not reported as an empty or truncated pipe."""
    found = shutil.which(cmd)
    if found is None:
        raise FFmpegNotFoundError(
            f"{cmd}: the ffmpeg program is not installed or not on PATH "
            f"(install FFmpeg, e.g. apt-get install ffmpeg or brew install ffmpeg, or pass cmd=PATH)")
    return found


# ============================================================================ command lines


def to_y4m_pipe(input: PathLike, *, scale: Scale | None = None, crop: Crop | None = None,
                pix_fmt: str | None = None, frames: int | None = None, cmd: str = "ffmpeg",
                loglevel: str = "error") -> list[str]:
    """argv of an ffmpeg that reads ``input`` (a file, URL or ``"-"`` for stdin) and writes y4m to
    stdout, for ``lotto-media encode -`` or :func:`lotto_media.plugins.media_io.open_video`.

    ``scale`` is applied first, then ``crop`` (so the crop is in scaled pixels); ``pix_fmt`` must
    be one y4m carries (gray, yuv420p, yuv420p10le); ``frames`` stops after that many. y4m keeps
    no timestamps and no audio: :func:`to_nut_pipe` keeps both. ``-strict -1`` is always given,
    because ffmpeg calls 10-bit y4m unofficial and refuses it otherwise (a 10-bit source with no
    ``pix_fmt`` would fail)."""
    if pix_fmt is not None and pix_fmt not in Y4M_PIX_FMTS:
        hint = "use to_nut_pipe for rgb24" if pix_fmt == "rgb24" else f"lotto-media codes {', '.join(CODED_PIX_FMTS)}"
        raise ValueError(f"y4m cannot carry pix_fmt {pix_fmt!r} for lotto-media ({hint})")
    video = _filtered_video(input, scale, crop)
    options: dict[str, object] = {"format": "yuv4mpegpipe", "strict": -1}
    options.update(_frame_options(pix_fmt, frames))
    return _argv(cmd, loglevel, _ffmpeg_python.output(video, "pipe:", **options))


def to_nut_pipe(input: PathLike, *, scale: Scale | None = None, crop: Crop | None = None,
                pix_fmt: str | None = None, frames: int | None = None, audio: bool = False,
                cmd: str = "ffmpeg", loglevel: str = "error") -> list[str]:
    """argv of an ffmpeg that reads ``input`` and writes NUT to stdout: raw frames (``-c:v
    rawvideo``; NUT's default would be lossy MPEG-4) with their exact timestamps, so variable
    frame rates survive, and with ``audio`` the source's first audio track, copied unchanged
    (``lotto-media`` carries it into the .lotto and back out).

    ``scale``, ``crop``, ``pix_fmt`` and ``frames`` as in :func:`to_y4m_pipe`; any of gray,
    yuv420p, yuv420p10le and rgb24 is allowed. ``audio`` with ``frames`` is refused: ``-frames:v``
    does not cut the audio, and the .lotto would carry the whole track."""
    if pix_fmt is not None and pix_fmt not in CODED_PIX_FMTS:
        raise ValueError(f"pix_fmt {pix_fmt!r} is not one lotto-media codes ({', '.join(CODED_PIX_FMTS)})")
    if audio and frames is not None:
        raise ValueError("audio=True with frames: -frames:v does not cut the audio track; pass audio=False")
    source = _input_node(input)
    video = _filtered_video(input, scale, crop, source=source)
    options: dict[str, object] = {"format": "nut", "c:v": "rawvideo"}
    options.update(_frame_options(pix_fmt, frames))
    streams = [video]
    if audio:
        streams.append(source["a:0?"])  # a source without audio is not an error
        options["c:a"] = "copy"
    return _argv(cmd, loglevel, _ffmpeg_python.output(*streams, "pipe:", **options))


def mux_decoded(decoded: PathLike, source_with_audio: PathLike | None, output: PathLike, *,
                video_codec: str = "libx264", crf: int | None = None, pix_fmt: str | None = None,
                audio_codec: str = "copy", shortest: bool = False, overwrite: bool = False,
                cmd: str = "ffmpeg", loglevel: str = "error") -> list[str]:
    """argv of an ffmpeg that takes decoded frames (a file, or ``"-"`` for ``lotto-media decode
    X.lotto -o -`` on stdin), encodes them with ``video_codec`` into ``output`` (its suffix picks
    the container) and puts back the audio of ``source_with_audio``, normally the original file:
    ``-map 0:v -map 1:a -c:a copy``. Copying keeps the audio bit for bit; a stream coded from a y4m
    pipe has none of its own. With ``source_with_audio=None`` the decoded input's own audio, if
    any (a NUT pipe from :func:`decode_with_ffmpeg`), is kept.

    ``crf`` defaults to :data:`DEFAULT_CRF` for the codecs listed there and is left out for others
    (ffv1 is lossless: the decoded pixels exactly). ``shortest`` ends the output with the shorter
    stream (the video of a ``--frames`` selection is shorter than the source's audio). An existing
    ``output`` is kept (``-n``, ffmpeg fails) unless ``overwrite``."""
    video_in = _input_node(decoded)
    streams = [video_in["v:0"]]
    if source_with_audio is not None:
        streams.append(_input_node(source_with_audio)["a:0"])
    else:
        streams.append(video_in["a:0?"])
    options: dict[str, object] = {"c:v": video_codec, "c:a": audio_codec}
    if crf is None:
        crf = DEFAULT_CRF.get(video_codec)
    if crf is not None:
        options["crf"] = crf
    if pix_fmt is not None:
        options["pix_fmt"] = pix_fmt
    if shortest:
        options["shortest"] = None
    node = _ffmpeg_python.output(*streams, os.fspath(output), **options)
    return _argv(cmd, loglevel, node, overwrite="-y" if overwrite else "-n")


def _input_node(source: PathLike):
    text = os.fspath(source)
    return _ffmpeg_python.input("pipe:" if text == "-" else text)


def _filtered_video(input: PathLike, scale: Scale | None, crop: Crop | None, *, source=None):
    video = (source if source is not None else _input_node(input))["v:0"]
    if scale is not None:
        width, height = _dimensions(scale, (2,), "scale")
        video = video.filter("scale", width, height)
    if crop is not None:
        video = video.filter("crop", *_dimensions(crop, (2, 4), "crop"))
    return video


def _dimensions(value: Scale | Crop, counts: tuple[int, ...], what: str) -> tuple[Dimension, ...]:
    parts = tuple(value.split(":")) if isinstance(value, str) else tuple(value)
    if len(parts) not in counts or any(isinstance(p, bool) or not isinstance(p, (int, str)) or p == ""
                                       for p in parts):
        shape = " or ".join(f"{n} values" for n in counts)
        raise ValueError(f"{what}={value!r}: expected {shape} (pixels or ffmpeg expressions)")
    return parts


def _frame_options(pix_fmt: str | None, frames: int | None) -> dict[str, object]:
    options: dict[str, object] = {}
    if pix_fmt is not None:
        options["pix_fmt"] = pix_fmt
    if frames is not None:
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ValueError(f"frames={frames!r}: expected a number of frames >= 1")
        options["frames:v"] = frames
    return options


def _argv(cmd: str, loglevel: str, node, *, overwrite: str | None = None) -> list[str]:
    """Global options first (where people read them), then ffmpeg-python's inputs, graph and output.
    ``-nostdin``: ffmpeg must not read keys from the terminal or eat a script's stdin (reading a
    ``pipe:`` input is unaffected)."""
    head = [cmd, "-hide_banner", "-nostdin", "-loglevel", loglevel]
    if overwrite is not None:
        head.append(overwrite)
    return head + _ffmpeg_python.get_args(node)


# ============================================================================ runners


@dataclass
class FFmpegJobResult:
    """What a runner did: the file written, the ffmpeg command it ran, frames, bytes of the
    output, seconds, whether audio was carried, and (decoding) what a damaged stream lost."""

    output: Path
    argv: list[str]
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0
    audio: bool = False
    damage: str | None = None
    groups: int = 0
    psnr: list[float] = field(default_factory=list)


def encode_with_ffmpeg(input: PathLike, output: PathLike, options: EncodeOptions | None = None, *,
                       gop: int = DEFAULT_GOP, scale: Scale | None = None, crop: Crop | None = None,
                       pix_fmt: str | None = None, frames: int | None = None, audio: bool = True,
                       via: str = "nut", overwrite: bool = False,
                       progress: Callable[..., None] | None = None, cmd: str = "ffmpeg") -> FFmpegJobResult:
    """``ffmpeg -i input [filters] -f nut - | lotto-media encode - -o output``, in one process:
    ffmpeg decodes and filters anything it reads, and its frames go straight into a
    :class:`~lotto_media.stream.StreamEncoder` (no temporary video file, no second Python).

    ``via="nut"`` (the default) keeps timestamps and, with ``audio``, the source's audio track;
    ``via="y4m"`` sends frames only. ``audio`` is dropped (with a warning) when ``frames`` is
    given, as ``lotto-media encode --frames`` does. The .lotto is written under a temporary name
    and renamed when complete. ffmpeg's failures raise :class:`FFmpegError`; lotto-media's own
    (a pixel format it cannot code, ...) their usual LottoError."""
    from lotto_media.plugins import media_io
    from lotto_media.stream import LottoWriter, StreamEncoder, frame_count_hint

    if via not in ("nut", "y4m"):
        raise ValueError(f"via={via!r}: expected 'nut' or 'y4m'")
    if audio and frames is not None:
        log.warning("%s: frames=%d selects part of the video; the audio track is not cut and is left out",
                    _name(input), frames)
        audio = False
    options = options if options is not None else EncodeOptions()
    target = Path(output)
    _check_output(target, overwrite)
    binary = find_ffmpeg(cmd)
    if via == "nut":
        argv = to_nut_pipe(input, scale=scale, crop=crop, pix_fmt=pix_fmt, frames=frames, audio=audio, cmd=binary)
    else:
        argv = to_y4m_pipe(input, scale=scale, crop=crop, pix_fmt=pix_fmt, frames=frames, cmd=binary)
    name = _name(input)
    result = FFmpegJobResult(target, argv)
    start = time.perf_counter()
    part = _part_name(target)
    process = _FFmpegProcess(argv, name, stdin=None if os.fspath(input) == "-" else subprocess.DEVNULL,
                             stdout=subprocess.PIPE)
    try:
        with process.blame_on_failure():
            with media_io.open_video(process.stdout, name=name) as reader, open(part, "wb") as out:
                carried = reader.audio if audio else None
                n_frames, frames_in = frame_count_hint(reader.frames())
                encoder = StreamEncoder(reader.format, options, gop=gop, n_frames=n_frames, progress=progress)
                with LottoWriter(out, encoder.header, audio=carried) as writer:

                    def emit(packets) -> None:
                        writer.write(packets)
                        for packet in packets:
                            if packet.kind == "group":
                                result.groups += 1
                            else:
                                result.frames += 1
                                result.psnr.append(packet.psnr)

                    def pass_audio() -> None:
                        packets = reader.take_audio_packets()
                        if carried is not None:
                            writer.write_audio(packets)

                    for frame in frames_in:
                        emit(encoder.encode(frame))
                        pass_audio()
                    emit(encoder.flush())
                    pass_audio()
                if result.frames == 0:
                    raise InputError(f"{name}: ffmpeg gave no frame to encode")
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    result.audio = carried is not None
    result.bytes = target.stat().st_size
    result.seconds = time.perf_counter() - start
    log.info("%s: %d frames into %s (%d bytes) in %.1f s", name, result.frames, target, result.bytes, result.seconds)
    return result


def decode_with_ffmpeg(lotto: PathLike, output: PathLike, *, audio_from: PathLike | None = None,
                       video_codec: str = "libx264", crf: int | None = None, pix_fmt: str | None = None,
                       shortest: bool = False, overwrite: bool = False, threads: int | None = None,
                       cmd: str = "ffmpeg") -> FFmpegJobResult:
    """``lotto-media decode lotto -o - | ffmpeg -i - [-i audio_from] ... output``, in one process:
    the decoded frames go to ffmpeg as NUT (exact timestamps, and the .lotto's own audio when
    ``audio_from`` is None), and ffmpeg encodes them with ``video_codec`` into any container it
    writes, with the audio of ``audio_from`` (normally the original file) copied in.

    ``crf``, ``pix_fmt`` and ``shortest`` as in :func:`mux_decoded`; ``threads`` caps PyTorch's
    threads while decoding. The output is written under a temporary name (same suffix, so ffmpeg
    picks the same container) and renamed when complete. A damaged stream: every intact frame is
    written and ``damage`` says what was lost (also logged as a warning)."""
    from lotto_media.plugins import media_io
    from lotto_media.frame import VideoFormat
    from lotto_media.stream import LottoReader, torch_threads

    target = Path(output)
    _check_output(target, overwrite)
    binary = find_ffmpeg(cmd)
    part = target.with_name(f".{target.stem}.{secrets.token_hex(6)}.part{target.suffix}")
    argv = mux_decoded("-", audio_from, part, video_codec=video_codec, crf=crf, pix_fmt=pix_fmt,
                       shortest=shortest, overwrite=True, cmd=binary)
    name = _name(lotto)
    result = FFmpegJobResult(target, argv)
    start = time.perf_counter()
    try:
        with open(lotto, "rb") as source, torch_threads(threads):
            reader = LottoReader(source, name)
            h = reader.header
            video = VideoFormat(width=h.width, height=h.height, pix_fmt=h.pix_fmt, time_base=h.time_base,
                                frame_rate=h.frame_rate, color=h.color, rotation=h.rotation, source=h.source)
            carried = reader.audio if audio_from is None else None
            process = _FFmpegProcess(argv, name, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
            with process.blame_on_failure():
                writer = media_io.open_video_writer(process.stdin, video, carried, kind="nut")
                try:
                    frames = iter(reader)
                    while True:
                        try:
                            frame = next(frames, None)
                        except (FormatError, UnsupportedError) as exc:  # the stream ends where it is damaged
                            result.damage = str(exc)
                            log.warning("%s", exc)
                            break
                        if frame is None:
                            result.damage = reader.damage
                            break
                        writer.write(frame)
                        result.frames += 1
                        for packet in reader.take_audio_packets():
                            if carried is not None:
                                writer.write_audio(packet)
                    for packet in reader.take_audio_packets():
                        if carried is not None:
                            writer.write_audio(packet)
                except BaseException:
                    with contextlib.suppress(Exception):  # the pipe may be gone already
                        writer.abort()
                    raise
                writer.close()
                process.stdin.close()
                if result.frames == 0:
                    raise FormatError(f"{name}: no intact frame" + (f" ({result.damage})" if result.damage else ""))
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    result.audio = carried is not None or audio_from is not None
    result.bytes = target.stat().st_size
    result.seconds = time.perf_counter() - start
    log.info("%s: %d frames into %s (%d bytes) in %.1f s", name, result.frames, target, result.bytes, result.seconds)
    return result


def _name(source: PathLike) -> str:
    text = os.fspath(source)
    return "<stdin>" if text == "-" else text


def _check_output(target: Path, overwrite: bool) -> None:
    """Before the (long) work starts, as the command line does."""
    if target.is_dir():
        raise LottoError(f"{target}: is a directory")
    if target.exists() and not overwrite:
        raise LottoError(f"{target}: already exists (pass overwrite=True to replace it)")


def _part_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")


class _FFmpegProcess:
    """A running ffmpeg whose stderr is drained by a thread (a full stderr pipe would stall it)
    and kept, its last lines, for the error message."""

    def __init__(self, argv: list[str], name: str, *, stdin, stdout) -> None:
        self.argv = argv
        self.name = name
        log.info("running: %s", shlex.join(argv))
        try:
            self.process = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        except FileNotFoundError as exc:
            raise FFmpegNotFoundError(f"{argv[0]}: cannot run ffmpeg ({exc.strerror})", argv=argv) from exc
        self._tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL)
        self._first: str | None = None
        self._reader = threading.Thread(target=self._drain, name="ffmpeg-stderr", daemon=True)
        self._reader.start()

    @property
    def stdin(self) -> IO[bytes]:
        return self.process.stdin

    @property
    def stdout(self) -> IO[bytes]:
        return self.process.stdout

    def _drain(self) -> None:
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                if self._first is None:
                    self._first = line
                self._tail.append(line)
                log.debug("ffmpeg: %s", line)

    def blame_on_failure(self):
        return _Blame(self)

    def finish(self) -> None:
        """Wait for ffmpeg to end; a non-zero exit is an FFmpegError."""
        returncode = self.process.wait()
        self._close()
        if returncode != 0:
            raise self.error()

    def error(self) -> FFmpegError:
        """One line: the input, the exit status, ffmpeg's last line and, when that is a generic
        consequence ("Invalid argument", "Conversion failed!"), the first line, which is usually
        the cause. The whole tail is in ``stderr``."""
        returncode = self.process.returncode
        status = f"exit status {returncode}" if returncode >= 0 else f"killed by signal {-returncode}"
        last = _LOG_PREFIX.sub(r"\1: ", self._tail[-1]) if self._tail else "no message on stderr"
        first = _LOG_PREFIX.sub(r"\1: ", self._first) if self._first is not None else last
        message = last if first == last else f"{last} (first error: {first})"
        return FFmpegError(f"{self.name}: ffmpeg failed ({status}): {message}", argv=self.argv,
                           returncode=returncode, stderr="\n".join(self._tail))

    def stop(self) -> None:
        """End ffmpeg now (lotto-media failed or was interrupted): nothing more is wanted from it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:  # a pipe to an ffmpeg that died: its buffer cannot be flushed
                    pass


class _Blame:
    """The block talks to ffmpeg through a pipe. When it fails, whose failure is it? If ffmpeg
    has died (or dies at once), ffmpeg's: its end of the pipe went away, which is all the block
    saw, so its message is what the user needs. If ffmpeg is still running, the block's: ffmpeg
    is stopped and the block's error goes on. When the block succeeds, ffmpeg must still exit 0."""

    def __init__(self, process: _FFmpegProcess) -> None:
        self.process = process

    def __enter__(self) -> _FFmpegProcess:
        return self.process

    def __exit__(self, exc_type, exc, traceback) -> bool:
        process = self.process
        if exc is None:
            process.finish()
            return False
        if isinstance(exc, (LottoError, OSError, ValueError)) or _is_av_error(exc):
            try:
                process.process.wait(timeout=_EXIT_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            if process.process.returncode not in (None, 0):
                process._close()
                raise process.error() from exc
        process.stop()
        return False


def _is_av_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("av")
