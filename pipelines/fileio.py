"""The user's files as the command line sees them: ``-`` for stdin/stdout, refusing to clobber,
and outputs that appear atomically (a temporary file in the same directory, then ``os.replace``),
so a crash, an error or Ctrl-C never leaves a partial file under the final name.
"""

from __future__ import annotations

import os
import secrets
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from lotto_media.errors import LottoError

STDIO = "-"


class OutputError(LottoError):
    """An output cannot or must not be written (exists, is a terminal, same as the input...)."""


def is_stdio(name: str | Path) -> bool:
    return str(name) == STDIO


def read_input(name: str | Path) -> bytes:
    """All bytes of a file, or of stdin for ``-``. OSError is left to the caller's error
    handler, which names the file."""
    if is_stdio(name):
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def display_name(name: str | Path) -> str:
    """How a file is named in messages."""
    return "<stdin>" if is_stdio(name) else str(name)


def check_output(name: str | Path, *, overwrite: bool, input_name: str | Path | None = None) -> None:
    """Fail early (before minutes of encoding) if ``name`` is not a place we may write to."""
    if is_stdio(name):
        if sys.stdout.isatty():
            raise OutputError("refusing to write binary data to a terminal (redirect stdout or use -o FILE)")
        return
    path = Path(name)
    if input_name is not None and not is_stdio(input_name) and _same_file(path, Path(input_name)):
        raise OutputError(f"{path}: output would overwrite the input")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (use -y to overwrite)")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: directory {path.parent} does not exist")


def write_output(name: str | Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to stdout (``-``) or atomically to a file."""
    with open_output(name, overwrite=overwrite) as stream:
        stream.write(data)


@contextmanager
def open_output(name: str | Path, *, overwrite: bool) -> Iterator[BinaryIO]:
    """A binary stream for an output written piece by piece: stdout for ``-``, otherwise a
    temporary file in the same directory that replaces ``name`` only when the block ends without
    an exception (so an interrupted encode never leaves a partial file under the final name).
    Errors name the output the user asked for, not the temporary file."""
    if is_stdio(name):
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(name)
    temp_name = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
    fd: int | None = None
    try:
        # opened inside the try: an interrupt just after the open still removes the file
        try:
            fd = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        try:
            # closing is inside: a buffered write that fails (a full disk) fails at the close
            with os.fdopen(fd, "wb") as temp:
                yield temp
                temp.flush()
                os.fsync(temp.fileno())
        except OSError as exc:
            if not _is_about(exc, temp_name):
                raise  # e.g. the input's own error, which names the input
            raise OutputError(f"{path}: write failed ({exc.strerror or exc})") from None
        if not overwrite and path.exists():
            raise OutputError(f"{path}: already exists (use -y to overwrite)")
        try:
            os.replace(temp_name, path)
        except OSError as exc:
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        # BaseException on purpose: KeyboardInterrupt must not leave the temporary file behind
        # (none was made when the open failed: a file of that name is not ours to remove)
        if fd is not None:
            Path(temp_name).unlink(missing_ok=True)
        raise


def _is_about(exc: OSError, temp_name: Path) -> bool:
    """Whether an error met while writing an output is the output's: one naming no file or the
    temporary file (the user never asked for that name), except a closed pipe, which the
    command line reports on its own."""
    if isinstance(exc, BrokenPipeError):
        return False
    return exc.filename is None or os.fspath(exc.filename) == os.fspath(temp_name)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
