"""The sequence header (SHDR): picture format, timing, colour, network and settings, and its
layout in format versions 1 and 2 (docs/FORMAT.md, Part 1)."""

from __future__ import annotations

import math
import operator
import struct
from dataclasses import dataclass
from fractions import Fraction

from ..errors import FormatError, InputError, LimitError, UnsupportedError
from ..frame import PIXEL_FORMATS, ColorTags
from ..model.config import ModelConfig
from .chunks import FORMAT_VERSION, _U32_MAX, _is_printable_ascii

MAX_DIMENSION = 16384
MAX_PIXELS = 1 << 26
#: the pixels per frame a decoder admits unless told otherwise (``max_pixels``, ``--max-pixels``):
#: 8K UHD (7680x4320, 33.2 Mpx) and DCI 8K (8192x4320, 35.4 Mpx) pass, the format's largest
#: pictures (up to 2^26 = 67.1 Mpx, e.g. 16384x4096) need the limit raised. A range coder codes a
#: huge flat picture in a few hundred bytes, so the file's size cannot bound what decoding it
#: costs (several hundred bytes of memory per pixel); this limit does, as Pillow's
#: MAX_IMAGE_PIXELS and libavcodec's max_pixels do.
DEFAULT_MAX_PIXELS = 40_000_000

#: pixel format codes stored in the sequence header; the names are those of ``frame.PIXEL_FORMATS``.
PIX_FMT_CODES: dict[str, int] = {"gray": 0, "rgb24": 1, "yuv420p": 2, "yuv420p10le": 3}
PIX_FMT_NAMES: dict[int, str] = {code: name for name, code in PIX_FMT_CODES.items()}
assert set(PIX_FMT_CODES) == set(PIXEL_FORMATS), "every pixel format needs a code in the container"

_MAX_COLOR_RANGE = 2  # AVColorRange: unspecified, limited, full
_MAX_CHROMA_LOCATION = 6  # AVChromaLocation: unspecified, left, center, topleft, top, bottomleft, bottom

# version, flags, width, height, pix_fmt, time base (2), frame rate (2), colour (5), seed,
# synth widths (3), n_levels, mod_hidden, arm_hidden, out_channels, mask_ratio, lmbda, quality,
# n_frames, preset length; the preset name follows.
_SHDR_FIXED_V1 = struct.Struct(">BHIIBIIII5BQ3HBHHBdddIB")
# version 2: version, flags, width, height, pix_fmt, time base (2), frame rate (2), colour (5),
# rotation, seed, synth widths (3), n_levels, mod_hidden, out_channels, mask_ratio, lmbda,
# quality, n_frames, gop, preset length, source length; the preset name and the source name
# follow. The ARM width moved to the group header.
_SHDR_FIXED = struct.Struct(">BHIIBIIII5BhQ3HBHBdddIIBH")
#: sequence header flag bits (version 2): a second full-resolution latent grid
#: (``ModelConfig.fine_grids`` 2, docs/FORMAT.md Part 1 §4, Part 3 §3.3-3.4)
SECOND_FINE_GRID = 0x0001
KNOWN_FLAGS = SECOND_FINE_GRID
SHDR_MIN_LENGTH = min(_SHDR_FIXED_V1.size, _SHDR_FIXED.size)
MAX_SOURCE_NAME = 1024
SHDR_MAX_LENGTH = _SHDR_FIXED.size + 255 + MAX_SOURCE_NAME


def picture_size_problem(width: int, height: int) -> str | None:
    """Why a picture of this size cannot be coded in a .lotto stream, or None if it can."""
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        return f"picture size {width}x{height} is outside the format's 1..{MAX_DIMENSION} per side"
    if width * height > MAX_PIXELS:
        return f"picture size {width}x{height} exceeds the format's {MAX_PIXELS} pixels"
    return None


def check_pixel_limit(header: "SequenceHeader", max_pixels: int | None, name: str) -> None:
    """Refuse (LimitError) a stream whose frames have more than ``max_pixels`` pixels, before
    any of its frames is decoded; None admits what the format allows."""
    if max_pixels is None:
        return
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise LimitError(f"{name}: picture {header.width}x{header.height} ({pixels} pixels) exceeds the "
                         f"decoder's limit of {max_pixels} pixels per frame (raise max_pixels, "
                         f"--max-pixels on the command line, to decode it)")


def _as_fraction(value: object, what: str) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Fraction(value)
    raise InputError(f"sequence header: {what} must be a Fraction, got {value!r}")


def _check_fraction(value: Fraction, what: str) -> str | None:
    if value <= 0:
        return f"{what} {value} must be positive"
    if value.numerator > _U32_MAX or value.denominator > _U32_MAX:
        return f"{what} {value} does not fit in 32-bit numerator/denominator (use e.g. Fraction(30000, 1001))"
    return None


@dataclass(frozen=True)
class SequenceHeader:
    """What a decoder needs before the first group: picture format, timing, colour, network, settings.

    ``frame_rate`` None means unknown (variable-frame-rate sources carry pts per frame instead);
    ``quality`` None means the encoder was given lambda directly; ``n_frames`` 0 means unknown (a
    hint only: readers never rely on it); ``gop`` is the longest group the encoder makes (0
    unknown, a hint). Bit depth is implied by ``pix_fmt``. ``rotation`` is the display rotation
    (degrees counter-clockwise) and ``source`` the name of the file the frames came from.

    ``model`` is the stream's network: one random synthesis network for the whole stream (its
    shape includes the modulation width, since the synthesis' last layer reads o0). In format
    version 2 each group header carries the ARM width, so ``model.arm_hidden`` of a version-2
    header is only the default and the groups' own widths apply. ``format_version`` is the
    version read (1 or 2); the writer always writes FORMAT_VERSION.
    """

    width: int
    height: int
    pix_fmt: str
    model: ModelConfig
    time_base: Fraction = Fraction(1, 1)
    frame_rate: Fraction | None = None
    color: ColorTags = ColorTags()
    preset: str = "medium"
    lmbda: float = 0.0
    quality: float | None = None
    n_frames: int = 0
    gop: int = 0
    rotation: int = 0
    source: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        # Normalise the numeric types once so that equality after a round trip is plain equality
        # (numpy integers and Fractions given as ints are welcome).
        for name in ("width", "height", "n_frames", "gop", "rotation"):
            value = getattr(self, name)
            if not isinstance(value, int) and hasattr(value, "__index__"):
                object.__setattr__(self, name, operator.index(value))
        object.__setattr__(self, "time_base", _as_fraction(self.time_base, "time_base"))
        if self.frame_rate is not None:
            object.__setattr__(self, "frame_rate", _as_fraction(self.frame_rate, "frame_rate"))
        object.__setattr__(self, "lmbda", float(self.lmbda))
        if self.quality is not None:
            object.__setattr__(self, "quality", float(self.quality))
        problem = self._first_problem()
        if problem:
            raise InputError(f"sequence header: {problem}")

    def _first_problem(self) -> str | None:
        """The first invalid field, described for a user; None when the header is valid."""
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= MAX_DIMENSION:
                return f"{name} {value} out of range 1..{MAX_DIMENSION}"
        problem = picture_size_problem(self.width, self.height)
        if problem:
            return problem
        if self.pix_fmt not in PIX_FMT_CODES:
            return f"pix_fmt {self.pix_fmt!r} unknown (choose from {', '.join(PIX_FMT_CODES)})"
        if not isinstance(self.model, ModelConfig):
            return f"model must be a ModelConfig, got {type(self.model).__name__}"
        problem = _check_fraction(self.time_base, "time_base")
        if problem:
            return problem
        if self.frame_rate is not None:
            problem = _check_fraction(self.frame_rate, "frame_rate")
            if problem:
                return problem
        if not isinstance(self.color, ColorTags):
            return f"color must be ColorTags, got {type(self.color).__name__}"
        for name, value in vars(self.color).items():
            if not isinstance(value, int) or not 0 <= value <= 255:
                return f"color {name} {value} out of range 0..255"
        if self.color.color_range > _MAX_COLOR_RANGE:
            return f"color color_range {self.color.color_range} out of range 0..{_MAX_COLOR_RANGE}"
        if self.color.chroma_location > _MAX_CHROMA_LOCATION:
            return f"color chroma_location {self.color.chroma_location} out of range 0..{_MAX_CHROMA_LOCATION}"
        if not isinstance(self.preset, str) or len(self.preset) > 255 or not _is_printable_ascii(self.preset):
            return f"preset {self.preset!r} must be at most 255 printable ASCII characters"
        if not math.isfinite(self.lmbda) or self.lmbda < 0:
            return f"lmbda {self.lmbda} must be finite and >= 0"
        if self.quality is not None and not 0.0 <= self.quality <= 100.0:
            return f"quality {self.quality} out of range 0..100"
        for name in ("n_frames", "gop"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= _U32_MAX:
                return f"{name} {value} out of range 0..{_U32_MAX}"
        if not isinstance(self.rotation, int) or not -360 < self.rotation < 360:
            return f"rotation {self.rotation} out of range -359..359"
        if not isinstance(self.source, str) or len(self.source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_NAME:
            return f"source name must be a string of at most {MAX_SOURCE_NAME} UTF-8 bytes"
        if self.format_version not in (1, FORMAT_VERSION):
            return f"format_version {self.format_version} unknown"
        return None

    @property
    def bit_depth(self) -> int:
        return PIXEL_FORMATS[self.pix_fmt][1]

    def to_bytes(self) -> bytes:
        """The SHDR payload of format version 2 (layout in docs/FORMAT.md, Part 1)."""
        if self.format_version != FORMAT_VERSION:
            raise InputError(f"this build writes format version {FORMAT_VERSION} only")
        model, color = self.model, self.color
        frame_rate = (0, 0) if self.frame_rate is None else (self.frame_rate.numerator, self.frame_rate.denominator)
        source = self.source.encode("utf-8", "replace")
        fixed = _SHDR_FIXED.pack(
            FORMAT_VERSION,
            SECOND_FINE_GRID if model.second_grid else 0,
            self.width,
            self.height,
            PIX_FMT_CODES[self.pix_fmt],
            self.time_base.numerator,
            self.time_base.denominator,
            *frame_rate,
            color.color_range,
            color.matrix,
            color.primaries,
            color.transfer,
            color.chroma_location,
            self.rotation,
            model.seed,
            *model.synth_widths,
            model.n_levels,
            model.mod_hidden,
            model.out_channels,
            model.mask_ratio,  # float64 bits: every Python float round-trips exactly
            self.lmbda,
            math.nan if self.quality is None else self.quality,
            self.n_frames,
            self.gop,
            len(self.preset),
            len(source),
        )
        return fixed + self.preset.encode("ascii") + source

    @classmethod
    def from_bytes(cls, payload: bytes) -> "SequenceHeader":
        """Parse and validate an SHDR payload of version 1 or 2; FormatError (UnsupportedError for
        a newer version)."""
        if not SHDR_MIN_LENGTH <= len(payload) <= SHDR_MAX_LENGTH:
            raise FormatError(
                f"sequence header: length {len(payload)} out of range {SHDR_MIN_LENGTH}..{SHDR_MAX_LENGTH}"
            )
        version = payload[0]
        if version == 0:
            raise FormatError("sequence header: format_version 0 is invalid")
        if version > FORMAT_VERSION:
            raise UnsupportedError(
                f"sequence header: format_version {version} is newer than this reader ({FORMAT_VERSION})"
            )
        layout = _SHDR_FIXED_V1 if version == 1 else _SHDR_FIXED
        if len(payload) < layout.size:
            raise FormatError(f"sequence header: length {len(payload)} is shorter than version {version}'s {layout.size}")
        fields = list(layout.unpack_from(payload))
        (version, flags, width, height, pix_code, tb_num, tb_den, fr_num, fr_den) = fields[:9]
        color_values = fields[9:14]
        if version == 1:
            rotation, gop, source_length = 0, 0, 0
            seed, w1, w2, w3, n_levels, mod_hidden, arm_hidden, out_channels = fields[14:22]
            mask_ratio, lmbda, quality, n_frames, preset_length = fields[22:]
        else:
            rotation = fields[14]
            seed, w1, w2, w3, n_levels, mod_hidden, out_channels = fields[15:22]
            arm_hidden = ModelConfig.arm_hidden
            mask_ratio, lmbda, quality, n_frames, gop, preset_length, source_length = fields[22:]
        unknown = flags & ~(KNOWN_FLAGS if version == FORMAT_VERSION else 0)
        if unknown:
            raise UnsupportedError(f"sequence header: flags 0x{unknown:04x} use features this reader lacks")
        if pix_code not in PIX_FMT_NAMES:
            raise FormatError(f"sequence header: pix_fmt code {pix_code} unknown (0..{len(PIX_FMT_NAMES) - 1})")
        if tb_num == 0 or tb_den == 0:
            raise FormatError(f"sequence header: time_base {tb_num}/{tb_den} must have non-zero terms")
        if (fr_num == 0) != (fr_den == 0):
            raise FormatError(f"sequence header: frame_rate {fr_num}/{fr_den} must be 0/0 (unknown) or positive")
        if len(payload) != layout.size + preset_length + source_length:
            raise FormatError(
                f"sequence header: preset length {preset_length} and source length {source_length} do not "
                f"match the {len(payload) - layout.size} bytes present"
            )
        try:
            preset = payload[layout.size : layout.size + preset_length].decode("ascii")
        except UnicodeDecodeError:
            raise FormatError("sequence header: preset name is not ASCII") from None
        try:
            source = payload[layout.size + preset_length :].decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("sequence header: source name is not UTF-8") from None
        try:
            model = ModelConfig(
                seed=seed,
                synth_widths=(w1, w2, w3),
                n_levels=n_levels,
                mod_hidden=mod_hidden,
                arm_hidden=arm_hidden,
                out_channels=out_channels,
                mask_ratio=mask_ratio,
                fine_grids=2 if flags & SECOND_FINE_GRID else 1,
            )
            return cls(
                width=width,
                height=height,
                pix_fmt=PIX_FMT_NAMES[pix_code],
                model=model,
                time_base=Fraction(tb_num, tb_den),
                frame_rate=None if fr_num == 0 else Fraction(fr_num, fr_den),
                color=ColorTags(*color_values),
                preset=preset,
                lmbda=lmbda,
                quality=None if math.isnan(quality) else quality,
                n_frames=n_frames,
                gop=gop,
                rotation=rotation,
                source=source,
                format_version=version,
            )
        except InputError as error:
            # The same checks that stop a user building a bad header reject a bad stream.
            message = str(error)
            prefix = "" if message.startswith("sequence header:") else "sequence header: model "
            raise FormatError(prefix + message) from None
