"""Torch permutation scorer: an MLP on the 20 standardised features of one permutation.

The network maps the features of one jet-parton assignment to a logit. It is trained listwise (see
:mod:`agc_ttbar.ml.training`): the logits of all permutations of an event go through a softmax and
the loss is the cross entropy with the correct permutation, so the network learns to rank the
permutations of an event, which is exactly what inference uses (the argmax). The standardisation
(mean, std of the training features) is stored in the module as buffers; NaN features become 0
after standardisation (the training mean).

Saved files are ``torch.save`` dicts of tensors, numbers and strings only, loaded with
``weights_only=True``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

#: Identifies the file layout written by :func:`save`.
FORMAT = "agc_ttbar.permutation_mlp.v1"


class PermutationMLP(torch.nn.Module):
    """Standardisation, then Linear-ReLU blocks of the given widths, then a linear output (logit)."""

    def __init__(self, n_features: int, hidden: Sequence[int], mean=None, std=None):
        super().__init__()
        self.hidden = [int(h) for h in hidden]
        mean = torch.zeros(n_features) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        std = torch.ones(n_features) if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        layers: list[torch.nn.Module] = []
        width = n_features
        for h in self.hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, 1))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.nan_to_num((x - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0)
        return self.net(z).squeeze(-1)


def standardisation(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per feature (NaN ignored; a constant feature gets std 1)."""
    mean = np.nanmean(features, axis=0)
    std = np.nanstd(features, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def save(model: PermutationMLP, path: str, metadata: dict | None = None) -> None:
    """Write the network (weights, normalisation, layout) to ``path`` (not atomic by itself)."""
    torch.save({"format": FORMAT, "n_features": int(model.mean.numel()), "hidden": list(model.hidden),
                "state_dict": model.state_dict(), "metadata": dict(metadata or {})}, path)


def load(path: str) -> PermutationMLP:
    """Read a network written by :func:`save`, in eval mode."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a torch permutation scorer written by agc_ttbar "
                         f"(expected format {FORMAT!r})")
    model = PermutationMLP(blob["n_features"], blob["hidden"])
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model
