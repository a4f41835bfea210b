"""MKL's vector-math functions resolved before a search's threads first call them.

torch routes contiguous float unary operations (exp, log2, tanh, sqrt, ...) to MKL's vector math
library (VML), each intra-op thread on its own chunk. The oneMKL that torch 2.13 bundles picks a
VML function's kernel on that function's first call, and where worker threads make that first
call together one of them can run a low-accuracy kernel for its whole chunk (pytorch/pytorch
issue 188792). For the search that made the first step's noise and soft rounding differ (by up to
~1,500 units in the last place in half of a 48x32 picture's latents) in about one fresh process in
four on two threads, and so the whole encode: the same picture and options gave other bytes. A
one-element call from one thread resolves the kernel for good, as the fix proposed upstream does.
"""

from __future__ import annotations

import torch

#: the unary functions that ATen hands to MKL's VML for float32 and float64 tensors
VML_FUNCTIONS = ("acos", "asin", "atan", "cos", "cosh", "erf", "erfc", "erfinv", "exp", "expm1", "lgamma",
                 "log", "log10", "log1p", "log2", "sin", "sinh", "sqrt", "tan", "tanh", "trunc")


def resolve_vector_math() -> None:
    """Call each VML function once on one element of each float type, on this thread alone, so
    that no later call picks its kernel while other threads run it. Cheap (about 40 tiny calls);
    needed once per process, harmless again."""
    for dtype in (torch.float32, torch.float64):
        sample = torch.full((1,), 0.5, dtype=dtype)
        for name in VML_FUNCTIONS:
            getattr(torch, name)(sample)
