"""Private torch names mnistlab uses, each behind a public function with its fallback. Checked with torch 2.14."""

from typing import List

import torch


def lerp_all(targets: List[torch.Tensor], sources: List[torch.Tensor], weight: float) -> None:
    """targets[i] += weight * (sources[i] - targets[i]) for every i, in place: the EMA update of all weights."""
    if hasattr(torch, "_foreach_lerp_"):  # one multi-tensor kernel for all of them (no public name)
        torch._foreach_lerp_(targets, sources, weight)
    else:  # the same arithmetic, one tensor at a time
        for target, source in zip(targets, sources):
            target.lerp_(source, weight)


def add_scaled_all(targets: List[torch.Tensor], sources: List[torch.Tensor], scale: float) -> None:
    """targets[i] += scale * sources[i] for every i, in place, the product rounded before the sum as autograd's
    is (`add_(source, alpha=scale)` may fuse the two: other numbers)."""
    if hasattr(torch, "_foreach_add_") and hasattr(torch, "_foreach_mul"):  # two multi-tensor kernels
        torch._foreach_add_(targets, torch._foreach_mul(sources, scale))
    else:  # the same arithmetic, one tensor at a time
        for target, source in zip(targets, sources):
            target.add_(source * scale)
