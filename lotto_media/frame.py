"""A picture as it travels through lotto-media: planes, pixel format, timestamp, colour tags.

Frames keep their native representation: what is coded is what was read, never a silent
colour conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .errors import InputError

#: pixel format -> (number of planes, bit depth, chroma subsampled)
PIXEL_FORMATS: dict[str, tuple[int, int, bool]] = {
    "gray": (1, 8, False),
    "rgb24": (3, 8, False),
    "yuv420p": (3, 8, True),
    "yuv420p10le": (3, 10, True),
}


@dataclass(frozen=True)
class ColorTags:
    """Colour description using ITU-T H.273 code points (2 = unspecified)."""

    color_range: int = 0  # 0 unspecified, 1 limited (tv), 2 full (pc) - FFmpeg's AVColorRange
    matrix: int = 2
    primaries: int = 2
    transfer: int = 2
    chroma_location: int = 0  # FFmpeg's AVChromaLocation, 0 unspecified


@dataclass
class Frame:
    """One picture. ``planes`` are 2-D arrays (uint8, or uint16 for >8 bit) in plane order
    (R,G,B for rgb24 planar view; Y,U,V for yuv). For rgb24 the planes are the three colour
    channels split out of the interleaved image."""

    planes: list[np.ndarray]
    pix_fmt: str
    pts: int | None = None
    time_base: Fraction | None = None
    color: ColorTags = field(default_factory=ColorTags)
    #: display duration in ``time_base`` units; None when unknown
    duration: int | None = None

    def __post_init__(self) -> None:
        if self.pix_fmt not in PIXEL_FORMATS:
            raise InputError(f"unsupported pixel format {self.pix_fmt!r}")
        n_planes, _, subsampled = PIXEL_FORMATS[self.pix_fmt]
        if len(self.planes) != n_planes:
            raise InputError(f"{self.pix_fmt} needs {n_planes} planes, got {len(self.planes)}")
        h, w = self.planes[0].shape
        if h < 1 or w < 1:
            raise InputError("empty picture")
        for plane in self.planes[1:]:
            expected = ((h + 1) // 2, (w + 1) // 2) if subsampled else (h, w)
            if plane.shape != expected:
                raise InputError(f"plane of shape {plane.shape}, expected {expected}")

    @property
    def width(self) -> int:
        return int(self.planes[0].shape[1])

    @property
    def height(self) -> int:
        return int(self.planes[0].shape[0])

    @property
    def bit_depth(self) -> int:
        return PIXEL_FORMATS[self.pix_fmt][1]

    @property
    def max_value(self) -> int:
        return (1 << self.bit_depth) - 1

    @classmethod
    def from_array(cls, array: np.ndarray, pts: int | None = None) -> "Frame":
        """An interleaved HxWx3 (rgb24) or HxW / HxWx1 (gray) uint8 array."""
        array = np.asarray(array)
        if array.dtype != np.uint8:
            raise InputError(f"expected uint8 pixels, got {array.dtype}")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim == 2:
            return cls([np.ascontiguousarray(array)], "gray", pts=pts)
        if array.ndim == 3 and array.shape[2] == 3:
            return cls([np.ascontiguousarray(array[:, :, c]) for c in range(3)], "rgb24", pts=pts)
        raise InputError(f"expected an HxW or HxWx3 image, got shape {array.shape}")

    def to_array(self) -> np.ndarray:
        """Interleaved HxWx3 (rgb24) or HxW (gray) array."""
        if self.pix_fmt == "gray":
            return self.planes[0]
        if self.pix_fmt == "rgb24":
            return np.stack(self.planes, axis=2)
        raise InputError(f"{self.pix_fmt} has no interleaved array form")


@dataclass(frozen=True)
class VideoFormat:
    """What every frame of a stream shares, as a reader found it and a writer needs it.

    ``frame_rate`` None means unknown or variable (the frames' pts are then the only timing);
    ``rotation`` is the display rotation in degrees, counter-clockwise, as FFmpeg's display
    matrix gives it (0, 90, 180, -90, ...); ``source`` names the file it came from (informative).
    """

    width: int
    height: int
    pix_fmt: str
    time_base: Fraction = Fraction(1, 25)
    frame_rate: Fraction | None = None
    color: ColorTags = ColorTags()
    rotation: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if self.pix_fmt not in PIXEL_FORMATS:
            raise InputError(f"unsupported pixel format {self.pix_fmt!r}")
        if self.width < 1 or self.height < 1:
            raise InputError(f"empty picture size {self.width}x{self.height}")

    @classmethod
    def of(cls, frame: Frame, **fields: object) -> "VideoFormat":
        """The format of ``frame`` (its size, pixel format, time base and colour), plus ``fields``."""
        values: dict[str, object] = dict(width=frame.width, height=frame.height, pix_fmt=frame.pix_fmt, color=frame.color)
        if frame.time_base is not None:
            values["time_base"] = frame.time_base
        values.update(fields)
        return cls(**values)  # type: ignore[arg-type]

    def matches(self, frame: Frame) -> bool:
        return (frame.width, frame.height, frame.pix_fmt) == (self.width, self.height, self.pix_fmt)
