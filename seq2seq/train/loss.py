"""Label-smoothed cross-entropy (§5.4, ε_ls = 0.1).

The target distribution puts 1 − ε on the reference piece and spreads ε uniformly over all V pieces
(as `torch.nn.functional.cross_entropy(label_smoothing=ε)` does; fairseq spreads it over V − 1).
Positions whose label is PAD carry no loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seq2seq.data.tokenizer import PAD


def label_smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, epsilon: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed smoothed loss and summed plain NLL over non-pad labels (divide by their count for means)."""
    flat_logits, flat_labels = logits.reshape(-1, logits.size(-1)).float(), labels.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=PAD, label_smoothing=epsilon, reduction="sum")
    with torch.no_grad():
        nll = F.cross_entropy(flat_logits, flat_labels, ignore_index=PAD, reduction="sum")
    return loss, nll
