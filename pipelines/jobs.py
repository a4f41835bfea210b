"""One file in, one file out: the unit of work of ``batch`` (and of any tool that codes files one
by one). A picture or a video becomes a ``.lotto``; a ``.lotto`` becomes a PNG (a picture) or a
video file. Outputs appear atomically (fileio.open_output), so a job that fails or is killed
never leaves a file under its final name.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from lotto_media.container.header import DEFAULT_MAX_PIXELS
from lotto_media.errors import FormatError, LottoError
from lotto_media.options import EncodeOptions

from .fileio import check_output, open_output, write_output

#: the pixel formats that decode to one PNG when the stream holds a single frame
PICTURE_PIX_FMTS = ("gray", "rgb24")


@dataclass
class FileResult:
    """What a job produced, as a report line records it."""

    input: str
    output: str
    kind: str  # "picture" or "video"
    bytes: int
    frames: int
    width: int
    height: int
    seconds: float
    bpp: float = math.nan
    psnr: float = math.nan
    psnr_planes: dict[str, float] = field(default_factory=dict)


def encode_file(input_path: str | Path, output_path: str | Path, options: EncodeOptions, *, gop: int,
                frames: range | None = None, overwrite: bool = False, progress=None) -> FileResult:
    """Code a picture or a video file into a ``.lotto`` file."""
    from .transcode import is_still_image

    input_name, output_name = str(input_path), str(output_path)
    check_output(output_name, overwrite=overwrite, input_name=input_name)
    start = time.perf_counter()
    if is_still_image(input_name):
        from lotto_media.codec import encode_frame
        from lotto_media.plugins.image_io import read_image

        if frames is not None and 0 not in frames:
            raise LottoError(f"{input_name}: a picture has one frame; --frames {frames.start}:{frames.stop} selects none")
        result = encode_frame(read_image(input_name), options, progress=progress)
        write_output(output_name, result.data, overwrite=overwrite)
        info = result.info
        return FileResult(input_name, output_name, "picture", len(result.data), 1, info.width, info.height,
                          time.perf_counter() - start, info.bpp, info.psnr, dict(info.psnr_planes))

    from lotto_media.plugins import media_io

    from .transcode import encode_video

    with media_io.open_video(input_name, name=input_name) as reader, \
            open_output(output_name, overwrite=overwrite) as stream:
        summary = encode_video(reader, stream, options, gop=gop, frames=frames, progress=progress,
                               output_name=output_name)
    video = summary.video
    n = len(summary.frames)
    psnr, planes = summary.mean_psnr()
    return FileResult(input_name, output_name, "video", summary.bytes, n, video.width, video.height,
                      time.perf_counter() - start, summary.bytes * 8 / (video.width * video.height * n), psnr, planes)


def decoded_suffix(input_path: str | Path, video_suffix: str) -> str:
    """The suffix a ``.lotto`` file decodes to: ``.png`` for a picture, ``video_suffix`` otherwise."""
    from lotto_media.codec import HEADER_PREFIX_BYTES, stream_header

    with open(input_path, "rb") as source:
        header = stream_header(source.read(HEADER_PREFIX_BYTES), str(input_path))
    return ".png" if _is_picture(header) else video_suffix


def decode_file(input_path: str | Path, output_path: str | Path, *, overwrite: bool = False,
                threads: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> FileResult:
    """Decode a ``.lotto`` file: a picture to PNG, a video to the container its name asks for (with
    the source's audio). A damaged video keeps every intact frame and raises a FormatError naming
    the loss once they are written."""
    from lotto_media.codec import decode_frame, torch_threads
    from lotto_media.plugins.image_io import encode_png_bytes
    from lotto_media.plugins import media_io
    from lotto_media.stream import LottoReader

    from .transcode import decode_video, video_format_of

    input_name, output_name = str(input_path), str(output_path)
    check_output(output_name, overwrite=overwrite, input_name=input_name)
    start = time.perf_counter()
    with torch_threads(threads), open(input_name, "rb") as source:
        reader = LottoReader(source, input_name, warn=False, max_pixels=max_pixels)
        header = reader.header
        if _is_picture(header):
            if Path(output_name).suffix.lower() != ".png":
                raise LottoError(f"{output_name}: a picture decodes to PNG; give the output a .png name")
            source.seek(0)
            frame = decode_frame(source.read(), input_name, max_pixels=max_pixels)
            data = encode_png_bytes(frame)
            write_output(output_name, data, overwrite=overwrite)
            return FileResult(input_name, output_name, "picture", len(data), 1, frame.width, frame.height,
                              time.perf_counter() - start)
        with media_io.open_video_writer(output_name, video_format_of(header), reader.audio,
                                        overwrite=overwrite) as writer:
            summary = decode_video(reader, writer)
            if summary.frames == 0:
                raise FormatError(f"{input_name}: no intact frame" + (f" ({summary.damage})" if summary.damage else ""))
    if summary.damage:
        raise FormatError(f"{input_name}: {summary.damage} ({summary.frames} intact frames written to {output_name})")
    return FileResult(input_name, output_name, "video", Path(output_name).stat().st_size, summary.frames,
                      header.width, header.height, time.perf_counter() - start)


def _is_picture(header) -> bool:
    return header.n_frames == 1 and header.pix_fmt in PICTURE_PIX_FMTS
