"""The search on a CUDA device makes ordinary streams: the CPU's integer decoder reads them to
exactly the reconstruction the encoder reported, for a picture and for a group with predicted
frames. Skipped where no CUDA device is present (CI); run on a GPU machine with
``python -m pytest tests/test_cuda.py``."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lotto_media.codec import EncodeOptions, decode_frame, encode_frame
from lotto_media.coding.bitstream import FrameType
from lotto_media.frame import Frame
from lotto_media.stream import LottoReader, resolve_device
from test_codec import photo
from test_inter import moving_window
from test_stream import encode, same_planes, to_yuv420

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FAST_CUDA = dict(preset="fast", steps=200, quality=50, device="cuda")


def test_auto_picks_cuda_when_present():
    assert resolve_device("auto").type == "cuda"


def test_a_picture_searched_on_cuda_decodes_on_the_cpu_to_the_reported_reconstruction():
    source = Frame.from_array(photo(61, 37))  # odd sizes on purpose
    result = encode_frame(source, EncodeOptions(**FAST_CUDA))
    decoded = decode_frame(result.data)
    assert all(np.array_equal(a, b) for a, b in zip(decoded.planes, result.reconstruction.planes))
    assert result.info.psnr > 22  # a search that went wrong on the device lands far below


@pytest.mark.parametrize("bits", [8, 10])
def test_predicted_frames_searched_on_cuda_decode_without_drift_on_the_cpu(bits):
    frames = [to_yuv420(f, bits) for f in moving_window([0, 2, 5, 8, 12, 16])]
    data, coded = encode(frames, gop=6, options=EncodeOptions(**FAST_CUDA, threads=1))
    assert [p.frame_type for p in coded] == [FrameType.INTRA] + [FrameType.PREDICTED] * 5
    decoded = list(LottoReader(io.BytesIO(data), "window.lotto"))
    assert len(decoded) == 6
    assert all(same_planes(d, c.reconstruction) for d, c in zip(decoded, coded))
    # a search gone wrong on the device still decodes exactly, but to a poor picture
    assert all(c.psnr > 24 for c in coded), [round(c.psnr, 2) for c in coded]
