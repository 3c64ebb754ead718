"""SLImE's trainable torch modules: the two projection heads and the DCN-v2 tag ranker.

Imported on first use (training or loading a retriever), so listing plugins loads no torch.
"""

from __future__ import annotations

import torch


def build_heads(hidden: int, dim: int) -> torch.nn.ModuleDict:
    """The caption and tag projection heads (LayerNorm + Linear) over frozen encoder features."""

    def head():
        return torch.nn.Sequential(torch.nn.LayerNorm(hidden), torch.nn.Linear(hidden, dim))

    return torch.nn.ModuleDict({"caption": head(), "tag": head()})


class DCNv2(torch.nn.Module):
    """DCN-v2 ranker (Wang et al. 2021): a parallel cross network v2 and deep MLP over pair features."""

    def __init__(self, d_in: int, cross_layers: int = 2, hidden: tuple[int, ...] = (256, 128)):
        super().__init__()
        self.cross = torch.nn.ModuleList(torch.nn.Linear(d_in, d_in) for _ in range(cross_layers))
        layers, prev = [], d_in
        for h in hidden:
            layers += [torch.nn.Linear(prev, h), torch.nn.ReLU()]
            prev = h
        self.deep = torch.nn.Sequential(*layers)
        self.out = torch.nn.Linear(d_in + prev, 1)

    def forward(self, x0):
        x = x0
        for layer in self.cross:  # x_{l+1} = x0 * (W x_l + b) + x_l
            x = x0 * layer(x) + x
        return self.out(torch.cat([x, self.deep(x0)], dim=-1)).squeeze(-1)


def pair_features(q, t):
    """Ranker input for query rows q [n, d] and candidate tags t [n, c, d]: [q, t, q*t, cos]."""
    qe = q.unsqueeze(1).expand_as(t)
    cos = (qe * t).sum(-1, keepdim=True)
    return torch.cat([qe, t, qe * t, cos], dim=-1)
