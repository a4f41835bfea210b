"""A picture decoded on two cores: its latents on one, the synthesis of their completed rows on the other.

The latent decoder is one chain of dependent steps (each latent's probabilities come from latents
decoded before it) and cannot use a second core; the synthesis is throughput work that can. The
wavefront walk completes the finest grids' rows in order, so while the decoder, on a thread of its
own (its compiled loop releases the GIL), decodes the rows below, the synthesis makes the pixel rows
that those already decoded determine (``Synthesis.advance``). Both are exact integer arithmetic:
the pixels are those of decoding first and synthesising after, whatever the timing.
"""

from __future__ import annotations

import threading
from typing import Callable

import torch

from ..coding.entropy import LatentDecoding
from ..model.reconstruct import Synthesis

#: wavefronts the latent decoder decodes between two reports to the synthesis: 16 rows of a full-
#: resolution grid (a row completes every 4 wavefronts), a band that pays the synthesis' costs per call
FRONTS_PER_REPORT = 64


class _Reports:
    """What the decoder thread tells the synthesis: the rows ready per grid, the end, or its error."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._rows: list[int] | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._news = False
        self.cancelled = False

    def post(self, rows: list[int], finished: bool) -> None:
        with self._changed:
            self._rows, self._finished, self._news = rows, finished, True
            self._changed.notify()

    def fail(self, error: BaseException) -> None:
        with self._changed:
            self._error, self._news = error, True
            self._changed.notify()

    @property
    def error(self) -> BaseException | None:
        with self._changed:
            return self._error

    def next(self) -> tuple[list[int] | None, bool]:
        """Wait for news: (rows ready per grid, whether decoding is finished); raises its error."""
        with self._changed:
            self._changed.wait_for(lambda: self._news)
            self._news = False
            if self._error is not None:
                raise self._error
            return self._rows, self._finished


def _decode_in_bands(decoding: LatentDecoding, reports: _Reports) -> None:
    try:
        for stop in range(FRONTS_PER_REPORT, decoding.n_fronts + FRONTS_PER_REPORT, FRONTS_PER_REPORT):
            if reports.cancelled:
                return
            decoding.decode_to(stop)
            finished = decoding.fronts_done >= decoding.n_fronts
            if finished:
                # the stream-end checks here too: a stream refused only there must fail with their
                # error, not with whatever the synthesis meets meanwhile
                decoding.finish()
            reports.post(decoding.rows_ready(), finished)
    except BaseException as exc:  # noqa: BLE001 - handed to the thread that raises it
        reports.fail(exc)


def decode_picture(decoding: LatentDecoding, make_synthesis: Callable[[], Synthesis]) -> Synthesis:
    """Decode every latent of ``decoding`` (its stream-end checks included) and make every row of
    the synthesis that ``make_synthesis`` builds on ``decoding.views()``. The synthesis (and the
    random network it needs) is made once the first band of latents has decoded (one after the
    other: once all have): a stream whose data runs out within its first band fails before
    anything picture-sized is made, and a stream refused later still fails with the decoder's
    error, whatever the synthesis was doing then.

    With two or more torch threads the latent decoder runs on a thread of its own and the synthesis
    on one torch thread fewer until the latents are decoded (torch's thread count is the process's:
    it is set back afterwards); with one, or a picture of a single band, one after the other."""
    threads = torch.get_num_threads()
    if threads < 2 or decoding.n_fronts <= FRONTS_PER_REPORT:
        decoding.decode_to(decoding.n_fronts)
        decoding.finish()
        synthesis = make_synthesis()
        synthesis.advance(decoding.rows_ready())
        return synthesis
    reports = _Reports()
    worker = threading.Thread(target=_decode_in_bands, args=(decoding, reports), name="lotto-latents", daemon=True)
    worker.start()
    synthesis = None
    try:
        torch.set_num_threads(threads - 1)
        try:
            finished = False
            while not finished:
                rows, finished = reports.next()
                if not finished and rows is not None:
                    synthesis = synthesis or make_synthesis()
                    synthesis.advance(rows)
        finally:
            torch.set_num_threads(threads)
            reports.cancelled = True
            worker.join()
    except Exception as exc:
        # a damaged stream is the cause to report, not what the synthesis met on the way (a
        # picture too large for memory, say)
        if reports.error is not None and reports.error is not exc:
            raise reports.error from exc
        raise
    synthesis = synthesis or make_synthesis()
    synthesis.advance(decoding.rows_ready())
    return synthesis
