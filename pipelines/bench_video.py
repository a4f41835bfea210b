"""``lotto-media bench video``: clips coded with x264/x265 (all-intra and inter) and with
lotto-media (as one stream in groups of frames) on native 4:2:0 planes, decoded and measured;
video_summary.md, video_bd.json and RD plots at the end."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from lotto_media.errors import InputError
from lotto_media.frame import Frame, VideoFormat
from lotto_media.metrics import bpp, plane_names, psnr, psnr_yuv
from lotto_media.plugins.anchors import encode_video_anchor, planes_of
from lotto_media.search.presets import DEFAULT_PRESET

from . import bench_report as report
from .bench_jobs import (PointSink, Record, _codec_order, _command_line, _effective_threads, _error_record,
                         _exit_status, _json_ready, _lotto_codec, _run_all, _same_pixels, _unique_names)


@dataclass(eq=False)
class Clip:
    """The frames of a clip as native planes (yuv420p or yuv420p10le), pts 0, 1, ..., and the
    format they share (its frame rate always known)."""

    name: str
    frames: list[Frame]
    video: VideoFormat
    note: str = ""


def read_clip(path: Path, max_frames: int | None = None, name: str | None = None) -> Clip:
    """Decode up to ``max_frames`` frames of a clip with PyAV, keeping native 4:2:0 planes.

    8-bit and 10-bit 4:2:0 stay as they are; any other format is converted to yuv420p by swscale
    (noted in the records).
    """
    import av

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    planes: list[list[np.ndarray]] = []
    note = ""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
            for frame in container.decode(stream):
                fmt = frame.format.name
                if fmt in ("yuv420p", "yuvj420p", "yuv420p10le"):
                    pix_fmt = "yuv420p10le" if fmt == "yuv420p10le" else "yuv420p"
                else:
                    note = f"converted from {fmt} to yuv420p"
                    frame, pix_fmt = frame.reformat(format="yuv420p"), "yuv420p"
                planes.append(planes_of(frame))
                if max_frames is not None and len(planes) >= max_frames:
                    break
    except av.FFmpegError as exc:
        raise InputError(f"{path}: not a readable clip ({exc})") from exc
    if not planes:
        raise InputError(f"{path}: contains no frames")
    frames = [Frame(p, pix_fmt, pts=index) for index, p in enumerate(planes)]
    name = name or path.stem
    return Clip(name, frames, VideoFormat.of(frames[0], time_base=1 / rate, frame_rate=rate, source=name), note)


@dataclass(eq=False)
class VideoTask:
    clip: Clip
    codec: str  # "x264", "x265" or "lotto-<preset>"
    mode: str  # "intra" or "inter"
    param: str
    setting: float
    preset: str | None = None
    steps: int | None = None
    threads: int | None = None
    gop: int = 1

    @property
    def label(self) -> str:
        if self.codec.startswith("lotto"):
            return f"{self.codec}-intra" if self.gop == 1 else f"{self.codec}-gop{self.gop}"
        return f"{self.codec}-{self.mode}"

    def base_record(self) -> Record:
        clip, video = self.clip, self.clip.video
        return {
            "kind": "video", "clip": clip.name, "codec": self.label, "encoder": self.codec, "mode": self.mode,
            "param": self.param, "setting": self.setting, "quality": self.setting if self.param == "quality" else None,
            "width": video.width, "height": video.height, "pix_fmt": video.pix_fmt, "frames": len(clip.frames),
            "fps": float(video.frame_rate), "note": clip.note,
        }


def video_tasks(clips: Sequence[Clip], qps: Sequence[float], qualities: Sequence[float], anchors: Sequence[str],
                preset: str, *, lotto: bool = True, steps: int | None = None,
                threads: int | None = None, gops: Sequence[int] = (1,)) -> list[VideoTask]:
    tasks = []
    for clip in clips:
        if lotto:
            tasks += [VideoTask(clip, f"lotto-{preset}", "intra" if gop == 1 else "group", "quality", float(q), preset,
                                steps, threads, gop)
                      for gop in gops for q in qualities]
        tasks += [VideoTask(clip, anchor, mode, "qp", float(qp))
                  for anchor in anchors for mode in ("intra", "inter") for qp in qps]
    return tasks


def _video_quality(clip: Clip, decoded: Sequence[Sequence[np.ndarray]]) -> Record:
    """Mean over frames of each plane's PSNR, and PSNR-YUV from those means."""
    names = plane_names("yuv420p")
    per_plane = {n: [] for n in names}
    for source, test in zip(clip.frames, decoded):
        for n, a, b in zip(names, source.planes, test):
            per_plane[n].append(psnr(a, b, source.max_value))
    means = {n: float(np.mean(v)) for n, v in per_plane.items()}
    return {**{f"psnr_{n}": v for n, v in means.items()}, "psnr_yuv": psnr_yuv(means)}


def measure_video_point(task: VideoTask) -> Record:
    base = task.base_record()
    clip, video = task.clip, task.clip.video
    try:
        if task.codec.startswith("lotto"):
            measured = _lotto_video_point(task)
        else:
            result = encode_video_anchor(task.codec, [f.planes for f in clip.frames], video.pix_fmt,
                                         int(task.setting), intra=task.mode == "intra", rate=video.frame_rate)
            measured = {"bytes": result.bytes, "file_bytes": result.file_bytes, "encode_s": result.encode_s,
                        "decode_s": result.decode_s, **_video_quality(clip, result.decoded),
                        "note": "; ".join(n for n in (clip.note, result.note) if n)}
    except Exception as exc:  # one failing point must not stop the benchmark
        return _error_record(base, exc)
    n = len(clip.frames)
    seconds = n / float(video.frame_rate)
    return {**base, **measured, "status": "ok", "error": None,
            "kbps": measured["bytes"] * 8 / seconds / 1000.0,
            "bpp": bpp(int(measured["bytes"]), video.width, video.height) / n,
            "encode_s_per_frame": measured["encode_s"] / n,
            "decode_fps": n / measured["decode_s"] if measured["decode_s"] > 0 else None}


def _lotto_video_point(task: VideoTask) -> Record:
    """The clip coded as one .lotto stream in groups of ``task.gop`` frames (gop 1: every frame on
    its own) on native 4:2:0 planes. The bytes counted are the stream's critical chunks, container
    framing included, without the encoder's statistics and the index (``coded_bytes``;
    ``file_bytes``: the whole file). The stream is decoded back and compared with the encoder's
    reconstructions."""
    import io

    from lotto_media.coding.bitstream import FrameType
    from lotto_media.stream import LottoReader, LottoWriter, StreamEncoder, encode_frames

    codec = _lotto_codec()
    clip = task.clip
    options = codec.EncodeOptions(quality=task.setting, preset=task.preset or DEFAULT_PRESET,
                                  steps=task.steps, threads=task.threads)
    encoder = StreamEncoder(clip.video, options, gop=task.gop, n_frames=len(clip.frames))
    buffer = io.BytesIO()
    start = time.perf_counter()
    with LottoWriter(buffer, encoder.header) as writer:
        coded = encode_frames(encoder, clip.frames, writer)
    encode_s = time.perf_counter() - start
    data = buffer.getvalue()
    with codec.torch_threads(task.threads):  # as in _lotto_image_point
        start = time.perf_counter()
        decoded = list(LottoReader(data, clip.name))
        decode_s = time.perf_counter() - start
    bit_exact = len(decoded) == len(coded) and all(_same_pixels(d, p.reconstruction) for d, p in zip(decoded, coded))
    firsts = [p for p in coded if p.frame_type == FrameType.INTRA]  # a group's first frame
    laters = [p for p in coded if p.frame_type != FrameType.INTRA]
    return {"bytes": codec.coded_bytes(data), "file_bytes": len(data), "encode_s": encode_s, "decode_s": decode_s,
            "bit_exact": bit_exact,
            "gop": task.gop, "steps": int(coded[0].steps),
            "intra_frames": len(firsts),
            "first_frame_s": sum(p.seconds for p in firsts) / len(firsts),
            "later_frame_s": sum(p.seconds for p in laters) / len(laters) if laters else None,
            "first_frame_bytes": sum(len(p.data) for p in firsts) / len(firsts),
            "later_frame_bytes": sum(len(p.data) for p in laters) / len(laters) if laters else None,
            **_video_quality(clip, [d.planes for d in decoded])}


def _describe_video(record: Record) -> str:
    head = f"{record['clip']} {record['codec']} {record['param']}={record['setting']:g}"
    if record.get("status") != "ok":
        return f"{head}: {record['status']}: {record.get('error')}"
    return (f"{head}: {record['kbps']:.1f} kbps, PSNR-YUV {record['psnr_yuv']:.2f} dB, "
            f"{record['encode_s_per_frame']:.3f} s/frame, {record['decode_fps']:.0f} fps decode")


def run_video(args: argparse.Namespace) -> int:
    """``lotto-media bench video``."""
    paths = [Path(p) for p in args.paths]
    clips = [read_clip(p, args.frames, name) for p, name in zip(paths, _unique_names(paths))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = video_tasks(clips, args.qp, args.quality, args.anchors, args.preset, lotto=not args.no_lotto,
                        steps=args.steps, threads=_effective_threads(args.threads, args.jobs), gops=args.gop)
    sink = PointSink(out / "video_points.jsonl", len(tasks), args.quiet, _describe_video)
    try:
        _run_all(tasks, measure_video_point, args.jobs, sink)
    finally:
        sink.close()
    write_video_report(sink.records, out, [f"{a}-{m}" for a in args.anchors for m in ("intra", "inter")],
                       _command_line())
    return _exit_status(sink.records, out / "video_summary.md", args.quiet)


def write_video_report(records: Sequence[Record], out: Path, anchors: Sequence[str], command: str) -> None:
    codecs = _codec_order(records)
    anchors = [a for a in anchors if a in codecs]
    curves = report.curves_by(records, "clip", "kbps", "psnr_yuv")
    matrix = report.bd_matrix(curves, anchors)
    (out / "video_bd.json").write_text(json.dumps(_json_ready(report.bd_to_json(matrix)), indent=1, allow_nan=False))
    (out / "video_summary.md").write_text(report.video_summary(records, matrix, codecs, anchors, command,
                                                               report.machine_info()))
    for clip, per_codec in curves.items():
        report.plot_rd(per_codec, out / f"rd_video_{report.safe_name(clip)}.png", f"{clip}: rate-distortion",
                       xlabel="kbps", ylabel="PSNR-YUV (dB)")
