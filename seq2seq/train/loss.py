"""Label-smoothed cross-entropy (§5.4, ε_ls = 0.1).

The target distribution puts 1 − ε on the reference piece and spreads ε uniformly over all V pieces,
as `torch.nn.functional.cross_entropy(label_smoothing=ε)` does (fairseq spreads it over V − 1):

    loss = (1 − ε) · (−log p(y)) + ε · mean_v(−log p(v))

computed from one log-softmax. Positions whose label is PAD carry no loss.
"""

from __future__ import annotations

import torch

from seq2seq.data.tokenizer import PAD


def label_smoothed_loss(logits: torch.Tensor, labels: torch.Tensor,
                        epsilon: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed smoothed loss and summed plain NLL over non-pad labels (divide by their count for means)."""
    lprobs = logits.float().log_softmax(-1)
    keep = labels != PAD
    nll = -lprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    nll = nll.masked_fill(~keep, 0.0).sum()
    if epsilon == 0:
        return nll, nll.detach()
    uniform = -lprobs.mean(-1).masked_fill(~keep, 0.0).sum()
    return (1 - epsilon) * nll + epsilon * uniform, nll.detach()
