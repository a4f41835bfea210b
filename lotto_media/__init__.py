"""lotto-media: an overfitted neural codec (LotteryCodec family) for images and video."""

from .codec import (
    EncodeOptions,
    EncodeResult,
    Progress,
    StreamInfo,
    decode_frame,
    decode_image,
    encode_frame,
    encode_image,
    inspect,
)
from .errors import FormatError, InputError, LottoError, UnsupportedError
from .frame import ColorTags, Frame

__version__ = "0.1.0"

__all__ = [
    "ColorTags", "EncodeOptions", "EncodeResult", "Frame", "FormatError", "InputError", "LottoError",
    "Progress", "StreamInfo", "UnsupportedError", "__version__",
    "decode_frame", "decode_image", "encode_frame", "encode_image", "inspect",
]
