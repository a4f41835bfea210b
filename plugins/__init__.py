"""Readers and writers of other software's file formats (built on PyAV), installed as
``lotto_media.plugins``. The codec core never imports from here."""

from .image_io import encode_png_bytes, read_image, read_image_bytes, write_image

__all__ = ["encode_png_bytes", "read_image", "read_image_bytes", "write_image"]
