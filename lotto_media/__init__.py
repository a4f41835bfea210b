"""lotto-media: an overfitted neural codec (LotteryCodec family) for images and video.

The codec API is imported lazily so that ``lotto-media --help`` and other light uses do not pay
for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import FormatError, InputError, LimitError, LottoError, UnsupportedError
from .frame import ColorTags, Frame

__version__ = "0.1.0"

_CODEC_NAMES = (
    "EncodeOptions", "EncodeResult", "Progress", "StreamInfo",
    "decode_frame", "decode_image", "encode_frame", "encode_image", "inspect",
)

__all__ = [
    "ColorTags", "Frame", "FormatError", "InputError", "LimitError", "LottoError", "UnsupportedError", "__version__",
    *_CODEC_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _CODEC_NAMES:
        return getattr(importlib.import_module(".codec", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
