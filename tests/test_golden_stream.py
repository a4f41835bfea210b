"""Format pins: a committed .lotto file must keep decoding to the same pixels, and the entropy
coder's probability tables must not change. A failure here is a format break (bump the version)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lotto_media.codec import decode_frame, inspect
from lotto_media.coding.entropy import laplace_tables

GOLDEN = Path(__file__).parent / "golden" / "kodim23_24x16_v1.lotto"
DECODED_SHA256 = "c8d0c9d0ccadf06ec44cea1cac08d29be160be6948bd64c6a432cdfa79c6f7fb"
TABLES_SHA256 = "2365c144a61ef47ca3d899fabcbfbc9dc07c25fdb9fc2a1bf00ba83fa1ab428f"


def test_golden_stream_decodes_to_pinned_pixels():
    data = GOLDEN.read_bytes()
    frame = decode_frame(data, name=GOLDEN.name)
    assert (frame.width, frame.height, frame.pix_fmt) == (24, 16, "rgb24")
    assert hashlib.sha256(b"".join(p.tobytes() for p in frame.planes)).hexdigest() == DECODED_SHA256
    info = inspect(data)
    assert info.bytes == len(data) and info.damage is None


def test_probability_tables_are_pinned():
    table = laplace_tables()
    assert table.shape == (32 * 73, 64)
    assert (table >= 1).all() and (table == table.round()).all()
    assert hashlib.sha256(table.astype("<i8").tobytes()).hexdigest() == TABLES_SHA256
