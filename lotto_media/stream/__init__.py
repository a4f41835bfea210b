"""Streams of frames, shaped like a codec context: an encoder that takes frames and gives packets
(``encode`` / ``flush``), a decoder that takes packets and gives frames, and the .lotto file
reader and writer built on them.

A stream has one random synthesis network (from the sequence header's seed). Frames are coded in
groups: an intra frame, then predicted frames (the previous decoded frame, motion-compensated,
plus a residual). The group header carries the small networks (ARM, upsampler, modulation) of
its intra frame and of its predicted frames; each frame packet carries its mask (whole, or as a
delta from the previous frame's), its motion (a vector, or a field of block vectors) when
predicted, and its latents. A group decodes without the others.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import torch

from .. import __version__
from ..coding import entropy
from ..model import chroma
from ..model.chroma import Distortion
from ..audio import AudioPacket, AudioParams
from ..coding.bitstream import FramePayload, FrameType, GroupHeader, MaskCoding, pack_frame, pack_group, unpack_frame, unpack_group
from ..model.config import ModelConfig
from ..search.presets import ENCODER_MOD_HIDDEN, arm_hidden_for, fine_grids_for, mask_ratio_for
from ..container import (
    DEFAULT_MAX_PIXELS,
    AudioHeaderChunk,
    AudioPacketsChunk,
    ContainerWriter,
    FrameChunk,
    FramePacket,
    GroupChunk,
    SequenceHeader,
    StreamReader,
    check_pixel_limit,
)
from ..errors import FormatError, InputError, UnsupportedError
from ..frame import PIXEL_FORMATS, Frame, VideoFormat
from ..metrics import mse, psnr_planes, psnr_rgb, psnr_yuv
from ..options import DEFAULT_GOP, MAX_GOP, EncodeOptions, check_gop, check_threads
from ..model.random_weights import random_synthesis_weights
from ..model.motion import MotionField, compensate, estimate_field, is_scene_cut
from ..model.reconstruct import Synthesis, reconstruct, synthesis_output, to_samples
from ..reports import Progress
from ..coding.params import QuantizedNetworks
from ..search.arm_fit import refit_arm
from ..search.inter import RESTART_GROUP, RestartGroup, search_predicted_group
from ..search.train import FrameSolution, ProgressCallback, search_group
from .overlap import decode_picture

log = logging.getLogger(__name__)

SUPPORTED_PIX_FMTS = ("rgb24", "gray", "yuv420p", "yuv420p10le")
#: frames per group unless the user says otherwise: the group header (~0.5-1.4 KB of networks) is
#: shared by 16 frames, and a damaged or skipped-to group costs at most 16 frames


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise InputError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count for the duration of a block (restored afterwards)."""
    if threads is None:
        yield
        return
    check_threads(threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def is_420(pix_fmt: str) -> bool:
    return PIXEL_FORMATS[pix_fmt][2]


def check_samples(frame: Frame) -> None:
    """Refuse planes whose integers do not fit the format (e.g. 16-bit samples labelled 10-bit)."""
    for plane in frame.planes:
        if plane.dtype.kind not in "ui":
            raise InputError(f"{frame.pix_fmt} planes must hold integers, got {plane.dtype}")
        low, high = int(plane.min()), int(plane.max())
        if low < 0 or high > frame.max_value:
            value = low if low < 0 else high
            raise InputError(f"{frame.pix_fmt} sample value {value} outside 0..{frame.max_value}")


def _motion_plane(planes: list[np.ndarray], pix_fmt: str) -> np.ndarray:
    """The plane motion is estimated on: luma, or the mean of R, G and B."""
    if pix_fmt == "rgb24":
        return np.mean(np.stack(planes), axis=0)
    return planes[0]


def search_target(frame: Frame) -> torch.Tensor:
    """The search's (C, H, W) target on [0, 1]; 4:2:0 chroma in chroma.pack_target's layout."""
    if is_420(frame.pix_fmt):
        return chroma.pack_target(frame.planes, frame.max_value)
    return torch.from_numpy(np.stack(frame.planes).astype(np.float32) / float(frame.max_value))


def _weighted_mse(source: Frame, planes: list[np.ndarray]) -> float:
    """The search's distortion of decoded planes on [0, 1]: 4:2:0 planes weighted as
    ``chroma.distortion`` weighs them, other formats every sample alike."""
    errors = [mse(s, p) for p, s in zip(planes, source.planes)]
    weights = chroma.PLANE_WEIGHTS if is_420(source.pix_fmt) else [1.0] * len(errors)
    return sum(w * e for w, e in zip(weights, errors)) / sum(weights) / float(source.max_value) ** 2


def frame_psnr(source: Frame, reconstruction: Frame) -> tuple[float, dict[str, float]]:
    """The headline PSNR (RGB pooled, PSNR-YUV 6:1:1, or gray's) and the per-plane PSNRs."""
    by_plane = psnr_planes(source, reconstruction)
    if source.pix_fmt == "rgb24":
        return psnr_rgb(source, reconstruction), by_plane
    if is_420(source.pix_fmt):
        return psnr_yuv(by_plane), by_plane
    return by_plane["y"], by_plane


@dataclass
class ZeroResponse:
    """The synthesis output for all-zero latents, which a predicted frame's residual is taken
    from: fixed while the group's networks for predicted frames and the mask stay the same."""

    nets: QuantizedNetworks
    mask: np.ndarray
    planes: list[torch.Tensor]

    @classmethod
    def of(cls, nets: QuantizedNetworks, weights: list[np.ndarray], mask: np.ndarray,
           header: SequenceHeader) -> "ZeroResponse":
        shapes = header.model.grid_shapes(header.height, header.width)
        zeros = [np.zeros(shape, dtype=np.int64) for shape in shapes]
        planes = synthesis_output(zeros, nets, weights, mask, header.height, header.width, is_420(header.pix_fmt),
                                  n_levels=header.model.n_levels)
        return cls(nets, mask.copy(), planes)

    def matches(self, nets: QuantizedNetworks, mask: np.ndarray) -> bool:
        return nets is self.nets and np.array_equal(mask, self.mask)


@dataclass
class Packet:
    """What the encoder emits, in decode order: a group header or a frame packet.

    For frames, the encoder's own knowledge comes along: the reconstruction (which the decoder
    will reproduce exactly), its PSNR, the search steps and seconds spent on it."""

    kind: str  # "group" or "frame"
    data: bytes
    group: int
    index: int = 0  # frame number in the stream (decode order = display order)
    pts: int = 0
    duration: int = 0
    frame_type: FrameType = FrameType.INTRA
    reconstruction: Frame | None = None
    psnr: float = math.nan
    psnr_planes: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    #: the coder's ideal code length of the latents (what the search's rate estimate aims at)
    estimated_latent_bits: float = 0.0


def sequence_header(video: VideoFormat, options: EncodeOptions, gop: int, n_frames: int = 0,
                    inter: bool = True) -> SequenceHeader:
    """The header an encoder with these settings writes (validates the settings); ``inter``: its
    groups of more than one frame have predicted frames."""
    if video.pix_fmt not in SUPPORTED_PIX_FMTS:
        raise UnsupportedError(
            f"pixel format {video.pix_fmt} is not supported yet (supported: {', '.join(SUPPORTED_PIX_FMTS)})"
        )
    check_gop(gop)
    lmbda = options.resolved_lmbda()
    schedule = options.schedule()  # refuses a bad preset or step count before any work
    fine_grids = fine_grids_for(lmbda, schedule)
    model = ModelConfig(
        seed=int(options.seed),
        arm_hidden=arm_hidden_for(lmbda),
        mod_hidden=ENCODER_MOD_HIDDEN,
        fine_grids=fine_grids,
        out_channels=1 if video.pix_fmt == "gray" else 3,
        mask_ratio=float(options.mask_ratio if options.mask_ratio is not None
                         else mask_ratio_for(lmbda, predicted=inter and gop > 1 and n_frames != 1)),
    )
    return SequenceHeader(
        width=video.width, height=video.height, pix_fmt=video.pix_fmt, model=model,
        time_base=video.time_base, frame_rate=video.frame_rate, color=video.color,
        preset=options.preset, lmbda=lmbda, quality=options.effective_quality(), n_frames=n_frames, gop=gop,
        rotation=video.rotation, source=video.source,
    )


def frame_count_hint(frames: Iterable[Frame]) -> tuple[int, Iterator[Frame]]:
    """(``n_frames`` for a ``StreamEncoder``, the same frames): 1 when the input holds a single
    frame, else 0 (unknown), found by reading at most two frames ahead. The sequence header is
    written before any frame is coded; with the hint a one-frame video is coded with a picture's
    choices (``mask_ratio_for``: no predicted frames follow) and recorded as one frame."""
    iterator = iter(frames)
    ahead = [frame for _, frame in zip(range(2), iterator)]
    return (1 if len(ahead) == 1 else 0), itertools.chain(ahead, iterator)


#: A predicted frame whose D + lambda R exceeds this multiple of its group's intra frame's (that
#: frame's mask and networks included) is dropped and starts a new group, coded intra: a picture
#: that the motion and the held networks cannot follow (CiscoVT2people's frame 7, which moves too
#: much for the motion fields, came out 27.7 dB against the intra frame's 35.0 at `fast` quality
#: 45, 2.4x its cost). Elsewhere the shared clips' predicted frames measured 0.6-1.15x.
RESTART_COST_RATIO = 1.5


class StreamEncoder:
    """Frames in, packets out. Frames are buffered until a group is complete (``gop`` frames),
    then the group is searched and its packets returned; ``flush()`` codes the frames left (one
    shorter group, or more where a group restarts). ``n_frames`` (0 = unknown) is recorded as a
    hint and sizes the progress reports.

    With ``inter`` (the default) a group is an intra frame followed by frames predicted from the
    previous decoded frame; a scene cut (``model.motion.is_scene_cut``) starts a new group
    early, and so does a predicted frame that costs far more than its group's intra frame
    (``RESTART_COST_RATIO``: it is coded again as the next group's intra frame). Without
    ``inter`` every frame is intra, sharing the group's networks."""

    def __init__(self, video: VideoFormat, options: EncodeOptions, *, gop: int = DEFAULT_GOP,
                 n_frames: int = 0, progress: ProgressCallback | None = None, inter: bool = True) -> None:
        self.video = video
        self.inter = inter
        self.options = options
        self.gop = gop
        self.header = sequence_header(video, options, gop, n_frames, inter)
        self.schedule = options.schedule()
        self.device = resolve_device(options.device)
        self.progress = progress
        self._pending: list[Frame] = []
        self._n_groups = 0
        self._n_frames = 0
        self._weights = random_synthesis_weights(self.header.model)
        self._zero_response: ZeroResponse | None = None

    def encode(self, frame: Frame) -> list[Packet]:
        if not self.video.matches(frame):
            raise InputError(
                f"frame {self._n_frames + len(self._pending)} is {frame.width}x{frame.height} {frame.pix_fmt}, "
                f"the stream is {self.video.width}x{self.video.height} {self.video.pix_fmt}"
            )
        check_samples(frame)
        packets = []
        if self.inter and self._pending and is_scene_cut(_motion_plane(self._pending[-1].planes, frame.pix_fmt),
                                                         _motion_plane(frame.planes, frame.pix_fmt)):
            log.info("scene cut before frame %d: it starts a new group", self._n_frames + len(self._pending))
            while self._pending:  # more than one group when a predicted frame restarts one
                packets += self._encode_group()
        self._pending.append(frame)
        while len(self._pending) >= self.gop:
            packets += self._encode_group()
        return packets

    def flush(self) -> list[Packet]:
        packets = []
        while self._pending:
            packets += self._encode_group()
        return packets

    def _default_pts(self, index: int) -> int:
        rate = self.header.frame_rate
        if rate is None:
            return index
        step = 1 / (rate * self.header.time_base)
        return round(index * step)

    def _encode_group(self) -> list[Packet]:
        """Code the pending frames as one group, or their first ones when a predicted frame
        restarts the group (``_search_predicted``): the rest stay pending, to start the next."""
        frames, self._pending = self._pending, []
        header, group_index, first = self.header, self._n_groups, self._n_frames
        config = header.model
        distortion = chroma.distortion if is_420(header.pix_fmt) else None
        progress = None
        if self.progress is not None:
            total = max(header.n_frames, first + len(frames))
            progress = lambda p: self.progress(replace(p, frame=first + p.frame, frames=total))  # noqa: E731
        targets = [search_target(f) for f in frames]
        with torch_threads(self.options.threads):
            if self.inter:
                group, solutions, decoded, motions = self._search_predicted(frames, targets, progress, distortion)
                self._pending, frames = frames[len(solutions):], frames[: len(solutions)]
            else:
                group, solutions, decoded = self._search_shared(targets, progress, distortion)
                motions = [MotionField.translation(0, 0)] * len(frames)
            packets = [Packet("group", pack_group(group), group_index, index=first)]
            intra_arm = group.nets.integer_arm()
            predicted_arm = group.predicted_nets.integer_arm() if group.predicted_nets is not None else None
            previous_mask: np.ndarray | None = None
            for k, (frame, solution, planes) in enumerate(zip(frames, solutions, decoded)):
                frame_type = FrameType.PREDICTED if self.inter and k else FrameType.INTRA
                arm = predicted_arm if frame_type == FrameType.PREDICTED else intra_arm
                assert arm is not None
                mask_code, mask_coding = entropy.encode_mask(solution.mask), MaskCoding.ABSOLUTE
                if previous_mask is not None:
                    delta = entropy.encode_mask_delta(solution.mask, previous_mask)
                    if len(delta) < len(mask_code):
                        mask_code, mask_coding = delta, MaskCoding.DELTA
                refers = mask_coding == MaskCoding.DELTA or frame_type == FrameType.PREDICTED
                payload = FramePayload(mask_code, b"", frame_type=frame_type, mask_coding=mask_coding,
                                       reference=1 if refers else 0, motion=motions[k])
                # a predicted frame's ARM may read the latents of the frame before it, when that
                # one is predicted too (docs/FORMAT.md 3.3)
                previous = solutions[k - 1].latents if frame_type == FrameType.PREDICTED and k > 1 else None
                payload = replace(payload, latents=entropy.encode_latents(solution.latents, arm, previous=previous))
                previous_mask = solution.mask
                pts = frame.pts if frame.pts is not None else self._default_pts(first + k)
                reconstruction = Frame(list(planes), frame.pix_fmt, pts=pts, time_base=header.time_base,
                                       color=frame.color, duration=frame.duration)
                psnr, by_plane = frame_psnr(frame, reconstruction)
                packets.append(Packet(
                    "frame", pack_frame(payload), group_index, index=first + k, pts=pts,
                    duration=frame.duration or 0, frame_type=frame_type, reconstruction=reconstruction, psnr=psnr,
                    psnr_planes=by_plane, steps=solution.steps, seconds=solution.seconds,
                    estimated_latent_bits=entropy.estimate_latent_bits(solution.latents, arm, previous=previous),
                ))
        self._n_groups += 1
        self._n_frames += len(frames)
        return packets

    def _reconstruct(self, nets: QuantizedNetworks, solution: FrameSolution,
                     prediction: list[np.ndarray] | None = None) -> list[np.ndarray]:
        header = self.header
        zero = None
        if prediction is not None:
            if self._zero_response is None or not self._zero_response.matches(nets, solution.mask):
                self._zero_response = ZeroResponse.of(nets, self._weights, solution.mask, header)
            zero = self._zero_response.planes
        return reconstruct(solution.latents, nets, self._weights, solution.mask, header.height, header.width,
                           bit_depth=header.bit_depth, chroma_420=is_420(header.pix_fmt), prediction=prediction,
                           zero_response=zero, n_levels=header.model.n_levels)

    def _search_predicted(self, frames: list[Frame], targets: list[torch.Tensor], progress: ProgressCallback | None,
                          distortion: Distortion | None
                          ) -> tuple[GroupHeader, list[FrameSolution], list[list[np.ndarray]], list[MotionField]]:
        """An intra frame, then frames predicted from the previous decoded one, each displaced by
        the motion field that block matching finds between that picture and the frame's source."""
        header = self.header
        chroma_420 = is_420(header.pix_fmt)
        decoded: list[list[np.ndarray]] = []
        predictions: list[list[np.ndarray]] = []
        motion_vectors = [MotionField.translation(0, 0)]
        kept: list[FrameSolution] = []
        intra_cost = math.inf

        def predict_next(k: int, nets: QuantizedNetworks, solution: FrameSolution) -> torch.Tensor | RestartGroup | None:
            nonlocal intra_cost
            planes = self._reconstruct(nets, solution, predictions[-1] if k else None)
            previous = kept[-1].latents if k > 1 else None
            cost = self._frame_cost(frames[k], planes, nets, solution, previous, intra=not k)
            if not k:
                intra_cost = cost
            elif cost > RESTART_COST_RATIO * intra_cost:
                # the held ARM knows the first predicted frame only and no temporal taps: price the
                # frame as the group's refit ARM (search_predicted_group's last step) would
                refit = refit_arm(nets, [s.latents for s in kept[1:]] + [solution.latents]).nets
                cost = self._frame_cost(frames[k], planes, refit, solution, previous, intra=False)
                if cost > RESTART_COST_RATIO * intra_cost:
                    log.info("frame %d costs %.2fx its group's intra frame as a predicted frame: it starts a new group",
                             self._n_frames + k, cost / intra_cost)
                    return RESTART_GROUP
            decoded.append(planes)
            kept.append(solution)
            if k + 1 == len(frames):
                return None
            motion = estimate_field(_motion_plane(decoded[-1], header.pix_fmt),
                                    _motion_plane(frames[k + 1].planes, header.pix_fmt),
                                    header.lmbda, (1 << header.bit_depth) - 1)
            motion_vectors.append(motion)
            predictions.append(compensate(decoded[-1], motion, chroma_420))
            return search_target(Frame(list(predictions[-1]), header.pix_fmt))

        result = search_predicted_group(targets, header.model, self.schedule, header.lmbda, self.device,
                                        predict_next, progress, distortion=distortion)
        arm_hidden = header.model.arm_hidden
        group = GroupHeader(arm_hidden, result.intra_nets, arm_hidden if result.predicted_nets else 0,
                            result.predicted_nets)
        return group, result.frames, decoded, motion_vectors

    def _frame_cost(self, frame: Frame, planes: list[np.ndarray], nets: QuantizedNetworks, solution: FrameSolution,
                    previous: list[np.ndarray] | None, *, intra: bool) -> float:
        """D + lambda R of one coded frame, as the search weighs them (distortion on [0, 1], bits a
        pixel): the latents' code length under ``nets``' ARM and, for an intra frame, its mask and
        its group's intra networks, which a new group pays again."""
        header = self.header
        bits = entropy.estimate_latent_bits(solution.latents, nets.integer_arm(), previous=previous)
        if intra:
            bits += 8 * (len(entropy.encode_mask(solution.mask)) + len(pack_group(GroupHeader(header.model.arm_hidden, nets))))
        return _weighted_mse(frame, planes) + header.lmbda * bits / (header.width * header.height)

    def _search_shared(self, targets: list[torch.Tensor], progress: ProgressCallback | None,
                       distortion: Distortion | None) -> tuple[GroupHeader, list[FrameSolution], list[list[np.ndarray]]]:
        """Intra frames sharing the group's networks."""
        header = self.header
        result = search_group(targets, header.model, self.schedule, header.lmbda, self.device, progress,
                              distortion=distortion)
        return GroupHeader(header.model.arm_hidden, result.nets), result.frames, [
            self._reconstruct(result.nets, solution) for solution in result.frames
        ]


@dataclass
class _GroupState:
    index: int
    header: GroupHeader
    config: ModelConfig
    masks: list[np.ndarray] = field(default_factory=list)
    #: the last decoded picture, which a predicted frame adds its residual to
    previous: list[np.ndarray] | None = None
    #: the last decoded frame's latents when it was predicted (the next one's temporal taps read
    #: them), else None
    previous_latents: list[np.ndarray] | None = None
    zero_response: "ZeroResponse | None" = None


class StreamDecoder:
    """Packets in, frames out (decode order is display order). Feed it the group header before
    the frames of that group; a group needs nothing from any other group.

    ``max_pixels`` (None: what the format allows) refuses, with LimitError when it is made, a
    stream whose frames are larger: a few hundred bytes of a hostile file can claim the
    format's largest picture, and decoding costs memory and time per pixel."""

    def __init__(self, header: SequenceHeader, name: str = "<stream>", *,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        if header.pix_fmt not in SUPPORTED_PIX_FMTS:
            raise UnsupportedError(f"{name}: pixel format {header.pix_fmt} is not supported by this build")
        if header.model.out_channels != (1 if header.pix_fmt == "gray" else 3):
            raise FormatError(f"{name}: {header.model.out_channels} synthesis outputs cannot make {header.pix_fmt} pictures")
        check_pixel_limit(header, max_pixels, name)
        self.header = header
        self.name = name
        self._random_weights: list[np.ndarray] | None = None
        self._group: _GroupState | None = None

    @property
    def _weights(self) -> list[np.ndarray]:
        # Made when a frame's mask and first band of latents have decoded, not when the header is read: the
        # widest network the header allows takes seconds and ~100 MB to generate.
        if self._random_weights is None:
            self._random_weights = random_synthesis_weights(self.header.model)
        return self._random_weights

    def add_group(self, index: int, payload: bytes) -> None:
        try:
            group = unpack_group(payload, self.header.model, self.header.format_version)
        except (FormatError, UnsupportedError) as exc:  # unsupported: a newer group version
            raise type(exc)(f"{self.name}: group {index}: {exc}") from None
        self._group = _GroupState(index, group, self.header.model.with_arm_hidden(group.arm_hidden))

    def _frame_parts(self, packet: FramePacket) -> tuple[_GroupState, FramePayload, np.ndarray]:
        group = self._group
        if group is None or group.index != packet.group:
            raise FormatError(f"{self.name}: frame at pts {packet.pts} needs group {packet.group}, which was not given")
        payload = unpack_frame(packet.payload, self.header.format_version)
        config, version = group.config, self.header.format_version
        if payload.reference > len(group.masks):
            raise FormatError(f"refers to frame {payload.reference} back, but its group has {len(group.masks)} before it")
        if payload.mask_coding == MaskCoding.DELTA:
            mask = entropy.decode_mask_delta(payload.mask, group.masks[-payload.reference], config.n_kept())
        else:
            mask = entropy.decode_mask(payload.mask, config.n_random_weights(), config.n_kept(), version=version)
        group.masks.append(mask)
        del group.masks[: -255]  # a reference reaches at most 255 frames back
        return group, payload, mask

    def skip(self, packet: FramePacket) -> None:
        """Follow a frame without showing it: what a later frame needs from it (its mask for a mask
        delta; in a group with predicted frames, its picture)."""
        group = self._group
        if group is not None and group.index == packet.group and group.header.predicted_nets is not None:
            self.decode(packet)
            return
        try:
            self._frame_parts(packet)
        except (FormatError, UnsupportedError) as exc:
            raise type(exc)(f"{self.name}: frame at pts {packet.pts}: {exc}") from None

    def decode(self, packet: FramePacket) -> Frame:
        header = self.header
        try:
            group, payload, mask = self._frame_parts(packet)
            nets = group.header.nets
            if payload.frame_type == FrameType.PREDICTED:
                if group.header.predicted_nets is None:
                    raise FormatError("a predicted frame in a group without networks for predicted frames")
                nets = group.header.predicted_nets
                if group.previous is None:
                    raise FormatError("its reference frame was not decoded")
                if isinstance(payload.motion, MotionField):
                    expected = MotionField.grid(payload.motion.block, header.height, header.width)
                    if payload.motion.vectors.shape[:2] != expected:
                        raise FormatError(f"a motion field of {payload.motion.vectors.shape[0]}x"
                                          f"{payload.motion.vectors.shape[1]} blocks, where the picture has "
                                          f"{expected[0]}x{expected[1]}")
            shapes = group.config.grid_shapes(header.height, header.width)
            predicted = payload.frame_type == FrameType.PREDICTED
            decoding = entropy.LatentDecoding(payload.latents, shapes, nets.integer_arm(),
                                              version=header.format_version,
                                              previous=group.previous_latents if predicted else None)
            synthesis = decode_picture(decoding, lambda: Synthesis(
                decoding.views(), nets, self._weights, mask, header.height, header.width, is_420(header.pix_fmt),
                n_levels=header.model.n_levels))
        except (FormatError, UnsupportedError) as exc:  # unsupported: a newer frame packet version
            raise type(exc)(f"{self.name}: frame at pts {packet.pts}: {exc}") from None
        prediction = None
        if predicted:
            assert group.previous is not None
            prediction = compensate(group.previous, payload.motion, is_420(header.pix_fmt))
            if group.zero_response is None or not group.zero_response.matches(nets, mask):
                group.zero_response = ZeroResponse.of(nets, self._weights, mask, header)
        planes = to_samples(synthesis.planes(), header.bit_depth, prediction,
                            group.zero_response.planes if prediction is not None else None)
        group.previous = planes
        group.previous_latents = decoding.latents() if predicted else None
        return Frame(list(planes), header.pix_fmt, pts=packet.pts, time_base=header.time_base, color=header.color,
                     duration=packet.duration or None)


def encode_frames(encoder: StreamEncoder, frames: Iterable[Frame], writer: "LottoWriter") -> list[Packet]:
    """Encode every frame and flush, writing the packets as they come; returns the frame packets."""
    coded: list[Packet] = []

    def write(packets: list[Packet]) -> None:
        writer.write(packets)
        coded.extend(p for p in packets if p.kind == "frame")

    for frame in frames:
        write(encoder.encode(frame))
    write(encoder.flush())
    return coded


class LottoWriter:
    """Writes an encoder's packets to a .lotto stream (file or pipe), with the source's audio
    interleaved as it comes, and per-frame encoder statistics in the metadata chunk."""

    def __init__(self, stream: BinaryIO, header: SequenceHeader, audio: AudioParams | None = None,
                 metadata: dict | None = None) -> None:
        self._writer = ContainerWriter(stream, header)
        self._frames: list[dict] = []
        self._metadata = dict(metadata or {})
        self._steps = 0
        if audio is not None:
            self._writer.write_audio_header(audio)
        self._has_audio = audio is not None

    def __enter__(self) -> "LottoWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._writer.__exit__(exc_type, exc, traceback)

    @property
    def bytes_written(self) -> int:
        return self._writer.bytes_written

    def write(self, packets: list[Packet]) -> None:
        for packet in packets:
            if packet.kind == "group":
                self._writer.write_group(packet.data)
                continue
            self._writer.write_frame(packet.data, packet.group, pts=packet.pts, duration=packet.duration)
            self._steps = max(self._steps, packet.steps)
            # no search seconds: the same input and options must give the same file, byte for byte
            record: dict = {"bytes": len(packet.data), "steps": packet.steps}
            if math.isfinite(packet.psnr):
                # 1/1000 dB is more than any PSNR means; full doubles would cost ~50 bytes a frame
                record["psnr"] = round(packet.psnr, 3)
                record["psnr_planes"] = {k: round(v, 3) for k, v in packet.psnr_planes.items()}
            self._frames.append(record)

    def write_audio(self, packets: list[AudioPacket]) -> None:
        if packets and not self._has_audio:
            raise InputError("audio packets given, but the stream was opened without audio")
        self._writer.write_audio_packets(packets)

    def close(self) -> None:
        meta = {"encoder": f"lotto-media {__version__}", **self._metadata}
        if len(self._frames) == 1:
            # one picture: keep its metadata as small as format version 1's
            meta["frames"] = [{k: v for k, v in self._frames[0].items() if k.startswith("psnr")}]
            meta["steps"] = self._steps
        else:
            meta["frames"] = self._frames
        self._writer.write_metadata(meta)
        self._writer.close()


class LottoReader:
    """Frames out of a .lotto stream (bytes, a file or a pipe), decoded one at a time.

    ``frames`` selects frames by number (decode order): frames before the selection are read and
    followed for their masks only (a later mask delta needs them; no latent is decoded, no pixel
    made), and reading stops after the selection. Seeking straight to the group through the index
    is not done yet. Audio packets met on the way are kept for
    ``take_audio_packets()``. After iteration ``damage`` says what was lost (None: intact)."""

    def __init__(self, source: bytes | bytearray | BinaryIO, name: str = "<stream>", frames: range | None = None,
                 *, read_to_end: bool = False, warn: bool = True,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        """``read_to_end``: after the selection, read (without decoding) to the end of the stream,
        so that damage anywhere is reported. ``warn``: log the damage as a warning when iteration
        ends (False for a caller that reports ``damage`` itself, so the loss is named once).
        ``max_pixels``: see ``StreamDecoder`` (LimitError before any frame is read)."""
        self.name = name
        self.read_to_end = read_to_end
        self.warn = warn
        self._reader = StreamReader(source, name)
        self.header = self._reader.header
        self.decoder = StreamDecoder(self.header, name, max_pixels=max_pixels)
        self.selection = frames
        self.audio: AudioParams | None = None
        self._audio_packets: list[AudioPacket] = []
        self._chunks = self._reader.chunks()
        self._lookahead: list = []
        self.frames_read = 0
        self.stopped_early = False
        self.damage: str | None = None
        # the audio header comes before the first group: read it now so that writers can be opened
        for item in self._chunks:
            self._lookahead.append(item)
            if isinstance(item, AudioHeaderChunk):
                self.audio = item.params
            if isinstance(item, (GroupChunk, FrameChunk)):
                break

    @property
    def metadata(self) -> dict:
        return self._reader.metadata

    @property
    def total_bytes(self) -> int:
        return self._reader.total_bytes

    def take_audio_packets(self) -> list[AudioPacket]:
        packets, self._audio_packets = self._audio_packets, []
        return packets

    def __iter__(self) -> Iterator[Frame]:
        selection = self.selection
        n = 0
        for item in self._items():
            if isinstance(item, AudioHeaderChunk):
                self.audio = item.params
            elif isinstance(item, AudioPacketsChunk):
                self._audio_packets.extend(item.packets)
            elif isinstance(item, GroupChunk):
                self.decoder.add_group(item.index, item.payload)
            else:
                index = n
                n += 1
                if selection is not None and index >= selection.stop:
                    if self.read_to_end:
                        continue
                    self.stopped_early = True
                    break
                if selection is None or index in selection:
                    self.frames_read += 1
                    yield self.decoder.decode(item.packet)
                else:
                    self.decoder.skip(item.packet)
        self.damage = self._reader.damage if not self.stopped_early else None
        if self.damage and self.frames_read and self.warn:  # with no frame at all, the caller's error says it
            log.warning("%s: %s", self.name, self.damage)

    def _items(self) -> Iterator:
        while self._lookahead:
            yield self._lookahead.pop(0)
        yield from self._chunks
