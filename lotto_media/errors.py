"""Exceptions that mean "the user gave us something we cannot use".

The CLI turns any ``LottoError`` into a one-line message and exit status 1; anything
else escaping is a bug and keeps its traceback.
"""


class LottoError(Exception):
    """A user-facing failure: bad input, damaged file, impossible request."""


class InputError(LottoError):
    """The input media cannot be coded (unsupported format, empty image, ...)."""


class FormatError(LottoError):
    """A .lotto stream is damaged, truncated or not a .lotto stream at all."""


class UnsupportedError(LottoError):
    """A valid stream that uses a feature this version does not implement."""


class LimitError(LottoError):
    """A stream (or picture) larger than a limit the caller set, e.g. a decoder's ``max_pixels``:
    refused before anything of that size is allocated."""
