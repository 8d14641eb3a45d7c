"""Learning-rate schedules, called as scheduler(optimizer, steps_per_epoch=..., total_steps=...)."""

import math

from torch.optim.lr_scheduler import LambdaLR


def exponential_decay(optimizer, steps_per_epoch: int, total_steps: int, rate: float = 0.99,
                      decay_steps=None, staircase: bool = True) -> LambdaLR:
    """TF's exponential_decay: lr * rate ** (step / decay_steps), floored with staircase."""
    decay_steps = decay_steps or steps_per_epoch

    def factor(step: int) -> float:
        return rate ** (step // decay_steps if staircase else step / decay_steps)

    return LambdaLR(optimizer, factor)


def cosine(optimizer, steps_per_epoch: int, total_steps: int, warmup_steps: int = 0,
           final_factor: float = 0.0) -> LambdaLR:
    """Linear warm-up, then a half cosine from lr down to lr * final_factor at the last step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
