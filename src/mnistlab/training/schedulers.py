"""Learning-rate schedules, called as scheduler(optimizer, steps_per_epoch=..., total_steps=...)."""

import math

from torch.optim.lr_scheduler import LambdaLR, OneCycleLR


def exponential_decay(
    optimizer, steps_per_epoch: int, total_steps: int, rate: float = 0.99, decay_steps=None, staircase: bool = True
) -> LambdaLR:
    """TF's exponential_decay: lr * rate ** (step / decay_steps), floored with staircase."""
    decay_steps = decay_steps or steps_per_epoch

    def factor(step: int) -> float:
        return rate ** (step // decay_steps if staircase else step / decay_steps)

    return LambdaLR(optimizer, factor)


def cosine(
    optimizer, steps_per_epoch: int, total_steps: int, warmup_steps: int = 0, final_factor: float = 0.0
) -> LambdaLR:
    """Linear warm-up, then a half cosine from lr down to lr * final_factor at the last step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def one_cycle(
    optimizer,
    steps_per_epoch: int,
    total_steps: int,
    pct_start: float = 0.25,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> OneCycleLR:
    """Smith's one-cycle policy peaking at the optimizer's lr (cosine up, cosine down, momentum cycled)."""
    peak = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(
        optimizer,
        max_lr=peak,
        total_steps=total_steps,
        pct_start=pct_start,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )
