"""What the codec reports: search progress and the description of a stream.

Plain records with no PyTorch dependency, so that the CLI and tools can use them cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from .frame import Frame


@dataclass
class Progress:
    """A snapshot of the search, handed to the progress callback."""

    step: int
    total: int
    phase: str
    loss: float
    psnr: float
    bpp: float
    elapsed_s: float
    eta_s: float
    #: the frame being searched (0-based, within its group) and the group's frame count
    frame: int = 0
    frames: int = 1


@dataclass
class FrameInfo:
    """One frame of a stream as ``inspect`` sees it (PSNR as the encoder measured it)."""

    index: int
    group: int
    pts: int
    duration: int
    frame_type: str
    bytes: int
    psnr: float
    psnr_planes: dict[str, float]
    steps: int = 0


@dataclass
class StreamInfo:
    width: int
    height: int
    pix_fmt: str
    frames: int
    bytes: int
    bpp: float
    psnr: float
    psnr_planes: dict[str, float]
    preset: str
    lmbda: float
    quality: float | None
    mask_ratio: float
    seed: int
    kmac_per_pixel: float
    synth_widths: tuple[int, int, int]
    format_version: int
    damage: str | None = None
    #: hidden widths of the modulation network and of the ARM (both chosen by the encoder)
    mod_hidden: int | None = None
    arm_hidden: int | None = None
    #: latent pyramid levels and full-resolution grids (2: a second one, ``ModelConfig.fine_grids``)
    n_levels: int | None = None
    fine_grids: int | None = None
    groups: int = 1
    gop: int = 0
    time_base: Fraction | None = None
    frame_rate: Fraction | None = None
    rotation: int = 0
    source: str = ""
    frame_details: list[FrameInfo] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["synth_widths"] = list(self.synth_widths)
        for key in ("time_base", "frame_rate"):
            value = getattr(self, key)
            d[key] = None if value is None else f"{value.numerator}/{value.denominator}"
        return d


@dataclass
class EncodeResult:
    """A coded picture with what the encoder knows about it."""

    data: bytes
    reconstruction: Frame
    info: StreamInfo
    steps: int
    search_seconds: float
    encode_seconds: float
    latent_bytes: int = 0
    estimated_latent_bits: float = 0.0
