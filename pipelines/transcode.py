"""Video jobs: encode a clip into a .lotto stream, decode a stream into a video file, and the
``transcode`` command that does both (the user's usual job: a clip in, a .lotto and a playable
check copy out).

The codec core streams: frames are read one at a time, coded a group at a time, and the .lotto
is written as the groups come (to a temporary file renamed at the end, or to stdout).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from lotto_media.errors import FormatError, InputError, LottoError, UnsupportedError
from lotto_media.frame import Frame, VideoFormat

from .fileio import check_output, display_name, is_stdio, open_output

log = logging.getLogger(__name__)

#: suffixes read as one still picture (RGB or gray) rather than as a clip
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".ppm", ".pgm", ".pnm", ".gif"})
#: the stream starts of the video formats ``-`` accepts on stdin
STDIN_VIDEO_MAGIC = (b"YUV4MPEG2", b"nut/multimedia container")


def is_still_image(name: str) -> bool:
    return not is_stdio(name) and "%" not in name and Path(name).suffix.lower() in IMAGE_SUFFIXES


def stdin_holds_video() -> bool:
    """Whether stdin starts like a y4m or NUT stream (peeked, nothing consumed)."""
    peek = getattr(sys.stdin.buffer, "peek", None)
    head = peek(32)[:32] if peek is not None else b""
    return any(head.startswith(magic) for magic in STDIN_VIDEO_MAGIC)


@dataclass
class FrameReport:
    """One coded frame as the encoder saw it."""

    index: int
    group: int
    pts: int
    bytes: int
    psnr: float
    psnr_planes: dict[str, float]
    steps: int
    seconds: float


@dataclass
class EncodeSummary:
    output: str
    video: VideoFormat
    frames: list[FrameReport] = field(default_factory=list)
    bytes: int = 0
    groups: int = 0
    seconds: float = 0.0
    audio: bool = False

    @property
    def duration_s(self) -> float:
        """Playing time: from the frame rate when known, else from the pts span."""
        n = len(self.frames)
        if self.video.frame_rate:
            return n / float(self.video.frame_rate)
        if n > 1:
            span = (self.frames[-1].pts - self.frames[0].pts) * float(self.video.time_base)
            return span * n / (n - 1)
        return math.nan

    @property
    def kbit_per_s(self) -> float:
        return self.bytes * 8 / 1000 / self.duration_s if self.duration_s > 0 else math.nan

    def mean_psnr(self) -> tuple[float, dict[str, float]]:
        """Mean over frames of the headline PSNR and of each plane's PSNR."""
        if not self.frames:
            return math.nan, {}
        planes = {k: sum(f.psnr_planes[k] for f in self.frames) / len(self.frames) for k in self.frames[0].psnr_planes}
        return sum(f.psnr for f in self.frames) / len(self.frames), planes


def encode_video(reader, output: BinaryIO, options, *, gop: int, frames: range | None = None,
                 progress=None, decoded=None, on_frame: Callable[[FrameReport], None] | None = None,
                 output_name: str = "") -> EncodeSummary:
    """Code the frames of an open ``media_io`` reader into a .lotto stream on ``output``.

    ``frames`` selects frames by number; ``decoded``, an open video writer, receives the
    encoder's reconstructions (bit-identical to what decoding the stream gives)."""
    from lotto_media.stream import LottoWriter, StreamEncoder, frame_count_hint

    start = time.perf_counter()
    video = reader.format
    audio = reader.audio
    if audio is not None and frames is not None:
        log.warning("%s: --frames selects part of the video; the audio track is not cut and is left out", video.source)
        audio = None

    def selected() -> Iterator[Frame]:
        for index, frame in enumerate(reader.frames()):
            if frames is not None and index >= frames.stop:
                break
            if frames is None or index in frames:
                yield frame
            else:  # --frames leaves the audio out: drop what the skipped frames brought
                reader.take_audio_packets()

    n_frames, chosen = frame_count_hint(selected())
    encoder = StreamEncoder(video, options, gop=gop, n_frames=n_frames, progress=progress)
    summary = EncodeSummary(output=output_name, video=video, audio=audio is not None)

    def emit(writer, packets) -> None:
        writer.write(packets)
        for packet in packets:
            if packet.kind == "group":
                summary.groups += 1
                continue
            report = FrameReport(packet.index, packet.group, packet.pts, len(packet.data), packet.psnr,
                                 packet.psnr_planes, packet.steps, packet.seconds)
            summary.frames.append(report)
            if decoded is not None and packet.reconstruction is not None:
                decoded.write(packet.reconstruction)
            if on_frame is not None:
                on_frame(report)

    def pass_audio(writer) -> None:
        """The audio demuxed so far, into the stream and the decoded copy (or dropped)."""
        packets = reader.take_audio_packets()
        if audio is None:
            return
        writer.write_audio(packets)
        if decoded is not None:
            for packet in packets:
                decoded.write_audio(packet)

    with LottoWriter(output, encoder.header, audio=audio) as writer:
        n_read = 0
        for frame in chosen:
            n_read += 1
            emit(writer, encoder.encode(frame))
            pass_audio(writer)
        if n_read == 0:
            raise InputError(f"{video.source or 'input'}: no frame to encode" + (" in the selected range" if frames else ""))
        emit(writer, encoder.flush())
        pass_audio(writer)
    summary.bytes = writer.bytes_written
    summary.seconds = time.perf_counter() - start
    return summary


@dataclass
class DecodeSummary:
    frames: int
    damage: str | None
    seconds: float


def video_format_of(header) -> VideoFormat:
    """What a writer needs to know of a decoded stream."""
    return VideoFormat(width=header.width, height=header.height, pix_fmt=header.pix_fmt, time_base=header.time_base,
                       frame_rate=header.frame_rate, color=header.color, rotation=header.rotation, source=header.source)


def decode_video(reader, writer, on_frame: Callable[[Frame], None] | None = None) -> DecodeSummary:
    """Every intact frame of an open ``LottoReader`` into an open video writer, with the audio.
    ``damage`` in the summary says what was lost, without the stream's name (as ``reader.damage``)."""
    start = time.perf_counter()
    n = 0
    frames = iter(reader)
    while True:
        try:
            frame = next(frames, None)
        except (FormatError, UnsupportedError) as exc:
            # A frame or group that fails to decode (damaged, or of a newer version) ends the
            # stream like damage does: what came before is kept. Only the reader's errors: the
            # writer's still abort the output.
            message = str(exc)
            prefix = f"{reader.name}: "
            return DecodeSummary(n, message[len(prefix):] if message.startswith(prefix) else message,
                                 time.perf_counter() - start)
        if frame is None:
            break
        writer.write(frame)
        n += 1
        for packet in reader.take_audio_packets():
            writer.write_audio(packet)
        if on_frame is not None:
            on_frame(frame)
    for packet in reader.take_audio_packets():
        writer.write_audio(packet)
    return DecodeSummary(n, reader.damage, time.perf_counter() - start)


# --------------------------------------------------------------------------- the command

def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser | None = None) -> None:
    from .cli import ExamplesFormatter, add_encoder_options, examples

    sub = commands.add_parser(
        "transcode", parents=[common] if common is not None else [], help="code a video file into a .lotto stream",
        description="Code a video (any file FFmpeg reads: mp4, mkv, webm, mov, y4m, image sequences) into "
                    "a .lotto stream beside it, optionally writing the decoded frames to a playable file. "
                    "Audio is carried along unchanged.",
        formatter_class=ExamplesFormatter,
        epilog=examples("lotto-media transcode clip.mp4 --preset fast --decoded check.mkv",
                        "lotto-media transcode clip.mkv -o clip.lotto --quality 70 --gop 32 --frames 0:100",
                        "ffmpeg -i in.mp4 -f nut -c:v rawvideo - | lotto-media transcode - -o clip.lotto"))
    sub.add_argument("input", metavar="IN", help="input video, or - for y4m/NUT on stdin")
    sub.add_argument("-o", "--output", metavar="OUT.lotto",
                     help="output stream (default: IN with suffix .lotto; - for stdout)")
    sub.add_argument("--decoded", metavar="OUT", help="also write the decoded frames (.mkv FFV1, .mp4 x264, .y4m, .nut)")
    add_encoder_options(sub)
    sub.set_defaults(func=run_transcode, parser=sub)


def run_transcode(args: argparse.Namespace) -> int:
    from lotto_media.plugins import media_io

    from .cli import EXIT_OK, encode_options, note, output_name
    from .progress import progress_callback

    if args.output is None and is_stdio(args.input):
        args.parser.error("-o is required when the video comes from stdin")
    output = args.output if args.output is not None else str(Path(args.input).with_suffix(".lotto"))
    check_output(output, overwrite=args.overwrite, input_name=args.input)
    if args.decoded is not None:
        check_output(args.decoded, overwrite=args.overwrite, input_name=args.input)
        if is_stdio(args.decoded) and is_stdio(output):
            args.parser.error("--decoded - and -o - would both write to stdout")
    name = display_name(args.input)
    options = encode_options(args)
    with media_io.open_video(args.input, name=name) as reader:
        with progress_callback(name, quiet=args.quiet, mode=args.progress) as bar, open_output(output, overwrite=args.overwrite) as stream:
            decoded = None
            if args.decoded is not None:
                decoded = media_io.open_video_writer(args.decoded, reader.format, reader.audio if args.frames is None else None,
                                                     overwrite=args.overwrite)
            try:
                summary = encode_video(reader, stream, options, gop=args.gop, frames=args.frames,
                                       progress=bar if bar.enabled else None, decoded=decoded, output_name=output)
            except BaseException:
                if decoded is not None:
                    decoded.abort()
                raise
            if decoded is not None:
                decoded.close()
    if not args.quiet:
        note(describe_encode(summary, output_name(output)))
    return EXIT_OK


def describe_encode(summary: EncodeSummary, output: str) -> str:
    """The summary line of a video encode: frames, rate, PSNRs, time."""
    psnr, planes = summary.mean_psnr()
    n = len(summary.frames)
    video = summary.video
    plane_text = ", ".join(f"{k.upper()} {v:.2f}" for k, v in planes.items())
    kind = "PSNR-YUV" if video.pix_fmt.startswith("yuv") else "PSNR"
    rate = f"{summary.kbit_per_s:.1f} kbit/s" if math.isfinite(summary.kbit_per_s) else f"{summary.bytes * 8 / max(n, 1) / 1000:.1f} kbit/frame"
    return (f"{output}: {n} frames {video.width}x{video.height} {video.pix_fmt} in {summary.groups} group(s), "
            f"{summary.bytes} bytes, {rate}, {kind} {psnr:.2f} dB ({plane_text}), "
            f"{summary.seconds:.1f} s ({summary.seconds / max(n, 1):.2f} s/frame)"
            + (", audio carried" if summary.audio else ""))
