"""The torch modules of the prefix-conditioned text inverters (vec2text's hypothesizer and
corrector, GEIA's decoder): EmbToSeq projections and the PrefixLM around a causal LM.

Imported on first use (building a model), so listing plugins loads no torch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn


class EmbToSeq(nn.Module):
    """EmbToSeq(e) = W2 σ(W1 e), reshaped to ``s`` vectors of the LM's hidden size."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, s: int):
        super().__init__()
        self.s, self.out_dim = s, out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, s * out_dim))
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, e):
        return self.norm(self.net(e).view(e.shape[0], self.s, self.out_dim))


class PrefixLM(nn.Module):
    """A causal LM conditioned on projected embeddings given as an ``inputs_embeds`` prefix."""

    def __init__(self, lm, tokenizer, in_dim: int, prefix_len: int, corrector: bool, bottleneck: int | None = None):
        super().__init__()
        self.lm = lm
        self.tok = tokenizer
        self.corrector = corrector
        d = int(getattr(lm.config, "hidden_size", 0) or lm.config.n_embd)
        hidden = bottleneck or in_dim
        self.proj = nn.ModuleList([EmbToSeq(in_dim, hidden, d, prefix_len) for _ in range(3 if corrector else 1)])
        emb = lm.get_input_embeddings().weight
        scale = float(emb.detach().float().std())  # prefix vectors start at the token embeddings' scale
        self.scale = nn.Parameter(torch.tensor(scale if scale > 0 else 1.0))
        self.sep = nn.Parameter(torch.randn(d) * scale)
        self.hyp_sep = nn.Parameter(torch.randn(d) * scale)

    @property
    def device(self):
        return self.scale.device

    def embed_tokens(self, ids):
        return self.lm.get_input_embeddings()(ids)

    def prefix(self, e, e_hyp=None):
        """[B, P, d] conditioning prefix (projections only; the hypothesis tokens come after)."""
        parts = [self.proj[0](e)]
        if self.corrector:
            parts += [self.proj[1](e_hyp), self.proj[2](e - e_hyp)]
        return torch.cat(parts, 1) * self.scale

    def context(self, e, e_hyp=None, hyp_ids: list[list[int]] | None = None):
        """Per-sample context embeddings up to and including the start separator: list of [L_i, d]."""
        pre = self.prefix(e, e_hyp)
        sep = self.sep.to(pre.dtype)
        out = []
        for i in range(len(pre)):
            parts = [pre[i]]
            if self.corrector:
                ids = torch.tensor(hyp_ids[i], dtype=torch.long, device=pre.device)
                parts += [self.hyp_sep.to(pre.dtype)[None], self.embed_tokens(ids).to(pre.dtype)]
            parts.append(sep[None])
            out.append(torch.cat(parts, 0))
        return out

    def loss(self, e, target_ids: list[list[int]], e_hyp=None, hyp_ids=None):
        """Mean token cross-entropy of the targets (each ending in eos) given the context."""
        ctx = self.context(e, e_hyp, hyp_ids)
        tgt = [torch.tensor(t, dtype=torch.long, device=self.device) for t in target_ids]
        seqs = [torch.cat([c, self.embed_tokens(t).to(c.dtype)], 0) for c, t in zip(ctx, tgt)]
        n = max(len(s) for s in seqs)
        d = seqs[0].shape[1]
        x = seqs[0].new_zeros((len(seqs), n, d))
        mask = torch.zeros((len(seqs), n), dtype=torch.long, device=self.device)
        labels = torch.full((len(seqs), n), -100, dtype=torch.long, device=self.device)
        for i, (s, c, t) in enumerate(zip(seqs, ctx, tgt)):
            x[i, : len(s)] = s
            mask[i, : len(s)] = 1
            labels[i, len(c) : len(s)] = t  # HF shifts labels: position j predicts token j
        out = self.lm(inputs_embeds=x, attention_mask=mask, labels=labels)
        return out.loss

    @torch.no_grad()
    def generate(self, e, max_new_tokens: int, num_return: int = 1, e_hyp=None, hyp_ids=None) -> list[list[str]]:
        """Greedy (num_return 1) or token-level beam search returning the ``num_return`` best."""
        ctx = self.context(e, e_hyp, hyp_ids)
        n = max(len(c) for c in ctx)
        d = ctx[0].shape[1]
        x = ctx[0].new_zeros((len(ctx), n, d))
        mask = torch.zeros((len(ctx), n), dtype=torch.long, device=self.device)
        for i, c in enumerate(ctx):  # left padding: generation continues every row at the end
            x[i, n - len(c) :] = c
            mask[i, n - len(c) :] = 1
        kw: dict[str, Any] = dict(
            inputs_embeds=x, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id,
        )
        if num_return > 1:
            kw.update(num_beams=num_return, num_return_sequences=num_return, early_stopping=True, length_penalty=1.0)
        else:
            kw.update(num_beams=1)
        ids = self.lm.generate(**kw)
        texts = [" ".join(t.split()) for t in self.tok.batch_decode(ids, skip_special_tokens=True)]
        return [texts[i * num_return : (i + 1) * num_return] for i in range(len(ctx))]
