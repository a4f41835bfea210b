"""The decoder's picture: latents -> pixels in exact integer (fixed-point) arithmetic.

The encoder calls ``reconstruct``, the decoder the same arithmetic band by band (``Synthesis``,
then ``to_samples``); because every intermediate value is an integer below 2^53 held in float64,
each operation is exact whatever the summation order or the bands, so the result is bit-identical
on any machine, thread count or SIMD path, and equals what the encoder reports. Tensors are
channels-first (C, H*W) torch float64 and updated in place where possible: the decoder's cost is
mostly memory traffic.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import torch

from . import chroma, pixel_kernels
from .latents import UPSAMPLE_PAD
from .synthesis import SYNTH_FRAC, coordinate_axis
from ..coding.params import QuantizedNetworks
from .random_weights import WEIGHT_FRAC

_ONE = float(1 << SYNTH_FRAC)

#: pixels per tile of the per-pixel networks: tiles stay in cache and avoid huge allocations
TILE = 4096


def _floor_act_(a: torch.Tensor) -> torch.Tensor:
    """In place: the floor of a layer's (unrounded) output, then x * clamp(x + 2, 0, 4) / 4 on
    SYNTH_FRAC fixed point, rounded half up, bounded (``pixel_kernels.floor_act_``: one pass)."""
    pixel_kernels.floor_act_(a.numpy())
    return a


class _Affine:
    """rshift(W x + b * 2^S, frac) for (in, P) inputs.

    Evaluated as floor((W / 2^frac) x + (b * 2^S / 2^frac + 1/2)): the power-of-two scaling and the
    rounding half are folded into the weights and bias, so one addmm and one floor replace a
    matmul and four array passes. Exact: only the exponents of the operands change."""

    def __init__(self, weight: torch.Tensor, frac: int, bias: torch.Tensor | None = None) -> None:
        scale = 0.5**frac
        self.weight = (weight.reshape(weight.shape[0], -1) * scale).contiguous()
        base = bias * (_ONE * scale) if bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
        self.bias = (base + 0.5).view(-1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, self.weight, x).floor_()

    def activated(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output through the activation (``_floor_act_``)."""
        return _floor_act_(torch.addmm(self.bias, self.weight, x))

    def activated_into(self, out: torch.Tensor, x: torch.Tensor) -> None:
        """``activated`` written into ``out``, a C-contiguous (out, P) tensor or block of rows."""
        _floor_act_(torch.addmm(self.bias, self.weight, x, out=out))


def _residual_conv3x3_into(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                           frac: int, rows: tuple[int, int] | None = None) -> None:
    """out = x + act(rshift(conv3x3(x; weight) + bias * 2^S, frac)), bounded, for x and out
    (C, H, W), C-contiguous: the residual blocks of docs/FORMAT.md 3.4 step 2 (repeated-edge
    padding, no kernel flip). ``rows``: only output rows lo..hi-1 (they read x's rows lo-1..hi)."""
    lo, hi = rows if rows is not None else (0, x.shape[1])
    scale = 0.5**frac
    padded = pixel_kernels.edge_padded(x.numpy(), 1, lo, hi)
    pixel_kernels.conv3x3_residual_into(out.numpy(), padded, x.numpy(), np.ascontiguousarray(weight.numpy() * scale),
                                        bias.numpy() * (_ONE * scale) + 0.5, lo, hi)


def _upsample(u: torch.Tensor, kernel: torch.Tensor, frac: int, out_hw: tuple[int, int]) -> torch.Tensor:
    """2x transposed convolution of (c, h, w) to (c, H, W), rounded and bounded."""
    out = torch.empty(u.shape[0], *out_hw, dtype=torch.float64)
    _upsample_into(out, u, kernel, frac)
    return out


def _upsample_into(out: torch.Tensor, u: torch.Tensor, kernel: torch.Tensor, frac: int,
                   rows: tuple[int, int] | None = None) -> None:
    """``_upsample`` written into ``out`` (c, H, W), a C-contiguous tensor or view. ``rows``: only
    output rows lo..hi-1 (they read u's rows up to ceil((hi - 1) / 2) + 1)."""
    lo, hi = rows if rows is not None else (0, out.shape[1])
    padded = pixel_kernels.edge_padded(u.numpy(), UPSAMPLE_PAD, lo // 2, hi // 2)
    pixel_kernels.upsample_into(out.numpy(), padded, np.ascontiguousarray(kernel.numpy()), 0.5**frac, lo, hi)


def _upsampled_rows(rows_in: int, height_in: int, height_out: int) -> int:
    """How many of the upsampler's output rows the first ``rows_in`` rows of its input determine:
    output row y reads input rows up to ceil(y / 2) + 1, the last row repeating below the grid."""
    if rows_in >= height_in:
        return height_out
    return min(height_out, max(0, 2 * (rows_in - 2) + 1))


def reconstruct(
    latents: list[np.ndarray],
    nets: QuantizedNetworks,
    random_weights: list[np.ndarray],
    mask: np.ndarray,
    height: int,
    width: int,
    bit_depth: int = 8,
    chroma_420: bool = False,
    prediction: list[np.ndarray] | None = None,
    zero_response: list[torch.Tensor] | None = None,
    *,
    n_levels: int,
) -> list[np.ndarray]:
    """Integer latents -> C planes, uint8 (or uint16 above 8 bits). With ``chroma_420`` channels 1
    and 2 become ceil(H/2) x ceil(W/2) chroma planes (2x2 integer average, see lotto_media.model.chroma).

    With a ``prediction`` (a predicted frame's motion-compensated reference, in the output's
    layout) the synthesis makes a residual instead of a picture: its output less its output for
    all-zero latents (``zero_response``, computed here when not given), so that zero latents copy
    the prediction (docs/FORMAT.md, Part 3 §3.6).

    ``n_levels``: the pyramid's levels among the latents; a latent grid after them is the second
    full-resolution grid (``ModelConfig.fine_grids``)."""
    planes = synthesis_output(latents, nets, random_weights, mask, height, width, chroma_420, n_levels=n_levels)
    if prediction is not None and zero_response is None:
        zero_response = synthesis_output([np.zeros_like(z) for z in latents], nets, random_weights, mask, height,
                                         width, chroma_420, n_levels=n_levels)
    return to_samples(planes, bit_depth, prediction, zero_response)


def to_samples(planes: list[torch.Tensor], bit_depth: int, prediction: list[np.ndarray] | None = None,
               zero_response: list[torch.Tensor] | None = None) -> list[np.ndarray]:
    """The synthesis' output planes (``synthesis_output``; overwritten) -> the picture's samples,
    uint8 (or uint16 above 8 bits); for a predicted frame the ``prediction`` plus the residual that
    the planes less the ``zero_response`` make (``reconstruct``)."""
    peak = (1 << bit_depth) - 1
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    if prediction is None:
        return [_to_samples_(plane, peak).numpy().astype(dtype) for plane in planes]
    if len(prediction) != len(planes) or any(p.shape != tuple(q.shape) for p, q in zip(prediction, planes)):
        raise ValueError("the prediction's planes do not match the picture's")
    if zero_response is None:
        raise ValueError("a predicted frame's samples need the synthesis' zero response")
    return [
        _add_residual_(plane.sub_(zero), ref, peak).numpy().astype(dtype)
        for plane, zero, ref in zip(planes, zero_response, prediction)
    ]


def synthesis_output(
    latents: list[np.ndarray],
    nets: QuantizedNetworks,
    random_weights: list[np.ndarray],
    mask: np.ndarray,
    height: int,
    width: int,
    chroma_420: bool = False,
    *,
    n_levels: int,
) -> list[torch.Tensor]:
    """The synthesis' fixed-point output planes (SYNTH_FRAC bits, float64 holding integers), 4:2:0
    chroma already reduced: what ``reconstruct`` maps to samples. ``n_levels`` as ``reconstruct``'s."""
    synthesis = Synthesis(latents, nets, random_weights, mask, height, width, chroma_420, n_levels=n_levels)
    synthesis.advance([grid.shape[0] for grid in latents])
    return synthesis.planes()


class Synthesis:
    """One picture's synthesis (docs/FORMAT.md 3.4), computed band of rows by band as its latent
    rows arrive (``advance``), so that it can run beside the latent decoder: every stage keeps the
    rows it has made and makes those its inputs now determine. Each stage reads a few rows beyond
    its own (the upsampler, the two 3x3 residual blocks), so its rows trail those of its input.
    Every value is the integer of the whole-picture evaluation: the bands change what is computed
    when, never a result.

    ``latents``: per grid, (h, w) integer arrays (or views of the decoder's buffer) whose rows are
    read only once ``advance`` reports them ready. ``n_levels`` as ``reconstruct``'s."""

    def __init__(self, latents: list[np.ndarray], nets: QuantizedNetworks, random_weights: list[np.ndarray],
                 mask: np.ndarray, height: int, width: int, chroma_420: bool = False, *, n_levels: int) -> None:
        if not n_levels <= len(latents) <= n_levels + 1:
            raise ValueError(f"{len(latents)} latent grids for a pyramid of {n_levels} levels")
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
        self._grids = latents
        self._n_levels = n_levels
        self._height, self._width, self._chroma_420 = height, width, chroma_420
        (self._kernel,) = [t(a) for a in nets.upsampler.exact()]
        self._upsampler_frac = nets.upsampler.frac
        self._second_grid = second_grid = len(latents) > n_levels
        # U_k: levels k..L-1, and at full resolution the second grid after them (docs/FORMAT.md
        # 3.4 step 1), each filled in place rather than concatenated (that would hold both copies)
        self._features = [
            torch.empty(n_levels - k + (k == 0 and second_grid), *latents[k].shape, dtype=torch.float64)
            for k in range(n_levels)
        ]
        self._feature_rows = [0] * n_levels

        w0, b0, w1, b1, self._wr2, self._br2, self._wr3, self._br3 = [t(a) for a in nets.modulation.exact()]
        self._mod_frac = nets.modulation.frac
        self._fc0, self._fc1 = _Affine(w0, self._mod_frac, b0), _Affine(w1, self._mod_frac, b1)
        pixels = height * width
        # [o3; o2; o1] in one tensor: synthesis layers 2..4 read its first 6, then all 9 rows after
        # their hidden input, without a concatenation
        self._modulations = torch.empty(9, pixels, dtype=torch.float64)
        self._modulation_rows = [0, 0, 0]  # o1, o2, o3

        layers, start = [], 0
        flat_mask = np.asarray(mask, dtype=bool)
        for w in random_weights:
            layers.append(t(np.where(flat_mask[start : start + w.size].reshape(w.shape), w, 0)))
            start += w.size
        # the first layer reads the pixel's coordinates (pixel_kernels.coordinate_layer_into)
        self._coordinate_weights = np.ascontiguousarray(layers[0].numpy() * 0.5**WEIGHT_FRAC)
        # layers 2..4 read [hidden; o3, o2, ...]: each reads one tile buffer whose first rows are
        # its hidden input and whose last its modulations (copied there), so a layer is one product
        self._rewound = [_Affine(w, WEIGHT_FRAC) for w in layers[1:]]
        self._hidden_widths = [w.shape[0] for w in layers[:-1]]
        # per layer 2..4: rows of its tile buffer, and how many of [o3; o2; o1] follow its hidden
        # input (the output layer reads o0 after them)
        n_modulations = self._modulations.shape[0]
        self._input_rows = [(w.shape[1], min(w.shape[1] - hidden, n_modulations))
                            for w, hidden in zip(layers[1:], self._hidden_widths)]
        self._o0_start = self._hidden_widths[2] + n_modulations  # in the output layer's buffer
        self._output_reads_o0 = layers[3].shape[1] > self._o0_start
        # coordinates per tile (those of the picture would be 16 bytes a pixel, held throughout)
        self._xs = coordinate_axis(width).astype(np.float64)
        self._ys = coordinate_axis(height).astype(np.float64)
        self._out = torch.empty(layers[3].shape[0], pixels, dtype=torch.float64)
        self.rows_done = 0

    def advance(self, rows_ready: list[int]) -> None:
        """Make every output row that the latent rows ready so far (per grid) determine."""
        n_levels, height = self._n_levels, self._height
        for k in reversed(range(n_levels)):
            grid = self._grids[k]
            if self._feature_rows[k] == grid.shape[0]:
                continue
            rows = min(rows_ready[k], grid.shape[0])
            if k == 0 and self._second_grid:
                rows = min(rows, rows_ready[n_levels])
            coarser = self._features[k + 1] if k + 1 < n_levels else None
            if coarser is not None:
                rows = min(rows, _upsampled_rows(self._feature_rows[k + 1], coarser.shape[1], grid.shape[0]))
            lo = self._feature_rows[k]
            if rows <= lo:
                continue
            u = self._features[k]
            np.multiply(grid[lo:rows], _ONE, out=u[0, lo:rows].numpy())
            if coarser is not None:
                _upsample_into(u[1 : coarser.shape[0] + 1], coarser, self._kernel, self._upsampler_frac, (lo, rows))
            if k == 0 and self._second_grid:
                np.multiply(self._grids[n_levels][lo:rows], _ONE, out=u[n_levels, lo:rows].numpy())
            self._feature_rows[k] = rows
            if rows == grid.shape[0] and coarser is not None:
                self._features[k + 1] = _RELEASED  # read by no later row

        width = self._width
        features = self._features[0].view(self._features[0].shape[0], -1)
        o3, o2, o1 = (self._modulations[i : i + 3].view(3, height, width) for i in (0, 3, 6))
        o1_rows, o2_rows, o3_rows = self._modulation_rows
        def modulate(tile: slice) -> None:
            self._modulations[6:9, tile] = self._fc1.activated(self._fc0.activated(features[:, tile]))

        _each_tile(modulate, _tiles(o1_rows * width, self._feature_rows[0] * width))
        o1_rows = self._feature_rows[0]
        # a residual block's row reads its input's rows above and below (the last repeating)
        rows = height if o1_rows == height else max(0, o1_rows - 1)
        if rows > o2_rows:
            _residual_conv3x3_into(o2, o1, self._wr2, self._br2, self._mod_frac, (o2_rows, rows))
            o2_rows = rows
        rows = height if o2_rows == height else max(0, o2_rows - 1)
        if rows > o3_rows:
            _residual_conv3x3_into(o3, o2, self._wr3, self._br3, self._mod_frac, (o3_rows, rows))
            o3_rows = rows
        self._modulation_rows = [o1_rows, o2_rows, o3_rows]

        _each_tile(lambda tile: self._layers_of_tile(tile, features), _tiles(self.rows_done * width, o3_rows * width))
        self.rows_done = o3_rows

    def _layers_of_tile(self, tile: slice, features: torch.Tensor) -> None:
        """The four synthesis layers for the pixels of ``tile``, into ``self._out``."""
        n = tile.stop - tile.start
        mods = self._modulations[:, tile]
        inputs = []
        for hidden, (rows, n_mods) in zip(self._hidden_widths, self._input_rows):
            x = torch.empty(rows, n, dtype=torch.float64)
            x[hidden : hidden + n_mods] = mods[:n_mods]
            inputs.append(x)
        second_in, third_in, output_in = inputs
        first_w, second_w, third_w = self._hidden_widths
        pixel_kernels.coordinate_layer_into(second_in[:first_w].numpy(), self._coordinate_weights, self._xs,
                                            self._ys, tile.start)
        if self._output_reads_o0:
            # recomputed here: cheaper than keeping 24 rows a pixel since the modulations' pass
            self._fc0.activated_into(output_in[self._o0_start :], features[:, tile])
        self._rewound[0].activated_into(third_in[:second_w], second_in)
        self._rewound[1].activated_into(output_in[:third_w], third_in)
        self._out[:, tile] = self._rewound[2](output_in)

    def planes(self) -> list[torch.Tensor]:
        """The output planes, once every row is done."""
        if self.rows_done < self._height:
            raise ValueError(f"the synthesis has {self.rows_done} of {self._height} rows")
        out = self._out.view(-1, self._height, self._width)
        planes = list(out)
        if self._chroma_420:
            # Averaging the fixed-point outputs (S fraction bits), not the samples, leaves the
            # rounding to the bit depth as chroma's only coarse rounding, as for luma.
            planes[1:] = list(chroma.integer_downsample(out[1:]))
        return planes


#: what a coarse level's features become once the level above it is complete
_RELEASED = torch.empty(0)


#: most threads the synthesis' tiles are shared out to (measured with two: more may contend)
MAX_TILE_THREADS = 4


def _each_tile(work: Callable[[slice], None], tiles: list[slice]) -> None:
    """``work(tile)`` for every tile. With two or more torch threads, the tiles are shared out in
    runs of consecutive tiles to that many threads (at most MAX_TILE_THREADS), each running torch
    on one thread: a tile's products are too small for torch's own threads to share well (a
    picture's synthesis on two of them took 0.85x its time on one), and whichever thread makes a
    tile, its values are the same. torch's thread count is the process's: it is set back
    afterwards. An error (or Ctrl-C) in any thread stops the others at their next tile and is
    raised here, the calling thread's own first."""
    torch_threads = torch.get_num_threads()
    threads = min(torch_threads, len(tiles), MAX_TILE_THREADS)
    if threads < 2:
        for tile in tiles:
            work(tile)
        return
    share = -(-len(tiles) // threads)
    runs = [tiles[i : i + share] for i in range(0, len(tiles), share)]
    stop = threading.Event()
    helper_errors: list[BaseException] = []

    def make(run_tiles: list[slice]) -> None:
        for tile in run_tiles:
            if stop.is_set():
                return
            work(tile)

    def helper(run_tiles: list[slice]) -> None:
        try:
            make(run_tiles)
        except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
            helper_errors.append(exc)
            stop.set()

    started: list[threading.Thread] = []
    torch.set_num_threads(1)
    try:
        for run_tiles in runs[1:]:
            thread = threading.Thread(target=helper, args=(run_tiles,), name="lotto-synthesis", daemon=True)
            thread.start()
            started.append(thread)
        make(runs[0])
    except BaseException:
        stop.set()
        raise
    finally:
        try:
            for thread in started:
                thread.join()
        except BaseException:
            stop.set()
            raise
        finally:
            torch.set_num_threads(torch_threads)
    if helper_errors:
        raise helper_errors[0]


def _tiles(start: int, stop: int) -> list[slice]:
    """[start, stop) in slices of at most TILE pixels."""
    return [slice(first, min(first + TILE, stop)) for first in range(start, stop, TILE)]


def _to_samples_(x: torch.Tensor, peak: int) -> torch.Tensor:
    """In place: fixed-point synthesis output -> clamp(floor((x + 2^S) * peak / 2^(S+1) + 1/2), 0, peak)."""
    return x.add_(_ONE).mul_(peak * 0.5 ** (SYNTH_FRAC + 1)).add_(0.5).floor_().clamp_(0, peak)


def _add_residual_(x: torch.Tensor, reference: np.ndarray, peak: int) -> torch.Tensor:
    """In place: fixed-point residual x -> clamp(reference + floor(x * peak / 2^(S+1) + 1/2), 0, peak):
    the residual scale is that of a picture (``_to_samples_``) without its mid-grey offset."""
    x.mul_(peak * 0.5 ** (SYNTH_FRAC + 1)).add_(0.5).floor_()
    return x.add_(torch.from_numpy(reference.astype(np.float64))).clamp_(0, peak)
