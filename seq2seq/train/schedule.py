"""The learning-rate schedule of §5.3 (eq. 3):

    lrate = d_model^-0.5 · min(step^-0.5, step · warmup_steps^-1.5)

linear warm-up for `warmup` steps, then decay with the inverse square root of the step. `scale`
multiplies it (1 in the paper); `peak_lr`, when given, picks the scale that makes the peak (at
step = warmup) equal to it.
"""

from __future__ import annotations


def noam_scale(d_model: int, warmup: int, peak_lr: float | None, scale: float = 1.0) -> float:
    if peak_lr is None:
        return scale
    return peak_lr / (d_model**-0.5 * warmup**-0.5)


def noam_lr(step: int, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """Eq. 3 at optimizer step `step` (counted from 1)."""
    step = max(step, 1)
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
