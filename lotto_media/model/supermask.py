"""Global top-k supermask over the frozen random weights, with straight-through scores."""

from __future__ import annotations

import torch


def topk_mask(scores: torch.Tensor, n_kept: int) -> torch.Tensor:
    """1.0 for the n_kept highest scores, 0.0 elsewhere (ties broken by index, deterministic)."""
    mask = torch.zeros_like(scores)
    mask[torch.topk(scores, n_kept, sorted=False).indices] = 1.0
    return mask


def straight_through_mask(scores: torch.Tensor, n_kept: int) -> torch.Tensor:
    """Forward: the hard top-k mask. Backward: identity to the scores (edge-popup style), so a
    score grows when keeping its weight would lower the loss."""
    hard = topk_mask(scores.detach(), n_kept)
    return hard + scores - scores.detach()
