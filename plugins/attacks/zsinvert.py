"""Zero-shot victim-guided inversion (ZSInvert, Zhang, Morris & Shmatikov 2025; Zero2Text 2026).

No inverter is trained: a causal LM (default the real SmolLM2-135M-Instruct) proposes text and the
victim's own cosine to the target chooses, through ``ctx.oracle.query`` (every text asked is counted
against the threat model's query budget). Per target:

* **round 0, guided decoding**: the LM is asked for a sentence (prompted with the prior words when
  there are any); a beam search keeps the ``beam`` partial texts whose victim cosine (+
  ``lm_weight`` x mean LM log-prob) is highest, each beam proposing its ``top_k`` next tokens. The
  LM's key/value cache is reused across steps; every step's candidates are embedded in one batch.
* **rounds 1..R, refinement**: the LM re-decodes, prompted with "write a sentence similar to: <best so
  far>" (ZSInvert's later rounds), and then victim-judged word edits (delete a word, or insert one of
  the prior words or of the re-decoded text) climb ``cosine - length_penalty * words``.
* **the word prior**: the attacker's own trained ``bow`` model (fitted on its own corpus, as the
  ``bow`` attack does, sharing its cached artifact) predicts the target's words; its ``prior_words``
  most likely words bias the LM's logits (``prior_weight`` x probability) and form the edit pool.
* **length control**: decoding stops when the cosine has not improved for ``patience`` steps, and the
  edits pay ``length_penalty`` per word, so a text does not just grow to cover more of the embedding.

**The hybrid** (``seed=geia``): round 0 is the trained GEIA decoder's text for the target (one
query), which the later rounds refine: the learned guess, improved by victim-guided search.

Adaptive mode: a secret defense (rotation) is mapped back with ``ctx.target_view()`` (leaked pairs);
against a public defense such as noise the target is the defended vector in both modes and nothing
else changes, so the grid runs the adaptive cell against secret defenses only; the re-embedding of
the leaked pairs that learns the map is charged to the ``alignment`` phase (under the fit budget),
not to any target. A query budget (``query_budget`` here or ``bench run --query-budget``) is
enforced by the oracle per target; the search stops with its best text when the budget is spent. A
text is asked at most once per target (the attacker keeps the answers it paid for: repeats are never
sent, so never charged).

Queries by phase (the record's ``queries``): training the word prior embeds ``prior``'s attacker
texts (``fit``, 20,000 by default; bounded by ``--fit-query-budget``), the adaptive map ``alignment``,
the search ``inference`` (per target).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from bench.api import Attack, AttackContext, AttackParams, Inversion, Split
from bench.guided import GuidedDecoder, VictimScorer, edit_search
from bench.hookspecs import hookimpl
from bench.metrics import Metric, reconstruction_scores, words

ROUND_METRICS = ("token_f1", "bleu", "rouge_l", "word_f1")


class ZSInvert(Attack):
    """Zero-shot inversion: an LM proposes, the victim's cosine chooses, a bag-of-words prior guides."""

    name = "zsinvert"
    output = "text"
    query_access = "black-box"
    adapts_to: ClassVar[str] = "secret"
    default_limit: ClassVar[int | None] = 50
    headline: ClassVar[tuple[str, ...] | None] = ("token_f1", "bleu", "rouge_l", "cosine", "exact_match", "queries")
    metrics: ClassVar[tuple[Metric, ...]] = (
        Metric("victim_cos", True, "cosine between the target as the attacker sees it and the victim's embedding of the round's best text"),
    )

    class Params(AttackParams):
        lm: str = Field("smollm2", description='proposing causal LM: "smollm2" (real SmolLM2-135M-Instruct) or a local transformers folder / hub id')
        beam: int = Field(4, ge=1, description="beams kept per decoding step")
        top_k: int = Field(8, ge=1, description="next-token candidates proposed per beam and step")
        max_tokens: int = Field(12, ge=1, description="most tokens decoded per round")
        rounds: int = Field(3, ge=1, description="round 0 decodes; each later round re-decodes from the best text and edits words (3: chosen on WordNet's dev split, docs/results.md)")
        lm_weight: float = Field(0.05, ge=0, description="weight of the LM's mean log-prob beside the victim cosine in the beam score")
        patience: int | None = Field(3, ge=1, description="length control: stop decoding after this many steps without a better score (None: never)")
        length_penalty: float = Field(0.01, ge=0, description="length control: cosine an edit must gain per added word (0: off)")
        edit_steps: int = Field(12, ge=0, description="most word edits per refinement round (0: no edits)")
        prior: bool = Field(True, description="use the attacker's bag-of-words model as a word prior (logit bias and edit pool)")
        prior_words: int = Field(24, ge=1, description="most likely prior words used per target")
        prior_weight: float = Field(4.0, ge=0, description="logit bias per unit of prior probability")
        prior_features: int = Field(4096, ge=0, description="the prior bow model's random features (its `features`)")
        prior_holdout: int = Field(1000, ge=10, description="the prior bow model's calibration holdout (its `holdout`)")
        query_budget: int | None = Field(None, ge=1, description="victim queries per target (None: the run's --query-budget, else unlimited)")
        batch: int = Field(1024, ge=1, description="texts per victim query batch")
        seed: Literal["none", "geia"] = Field(
            "none", description="round 0: none = victim-guided decoding; geia = the trained GEIA decoder's text for the target, GEIA with this lm "
            "(shipped for minilm, else trained once on the attacker split), refined by the later rounds (the hybrid)",
        )

    def __init__(self, params=None):
        super().__init__(params)
        self._lms: dict[tuple, Any] = {}  # loaded LMs, reused across the cells of a grid
        self._bow = None

    # ------------------------------------------------------------ fit

    def fit(self, ctx: AttackContext) -> list[dict[str, Any]]:
        from dataclasses import replace

        from bench_plugins.llm import LocalLM

        p = self.params
        key = (p.lm, ctx.device)
        if key not in self._lms:
            lm = LocalLM(p.lm, device=ctx.device)
            if ctx.device.startswith("cuda"):
                import torch

                lm.model.to(torch.bfloat16)  # GPU path: bf16 (unmeasured here; CPU stays float32)
            self._lms[key] = lm
        lm = self._lms[key]
        self.decoder = GuidedDecoder(lm.model, lm.tokenizer, ctx.device)
        models = [{"role": "proposing LM", "name": lm.identity["name"], "pretrained": bool(lm.identity["pretrained"])}]
        self.prior_model = None
        if p.prior:
            from bench_plugins.attacks.bow import BagOfWords

            if self._bow is None:
                self._bow = BagOfWords({"adaptive": False, "features": p.prior_features, "holdout": p.prior_holdout})
            # The same artifact folder as the `bow` attack's own runs: trained once, shared.
            bow_ctx = replace(
                ctx, defense=None, artifact_root=ctx.artifact_root.parent / BagOfWords.name,
                artifact_key={**ctx.artifact_key, "attack": {"name": BagOfWords.name, "params": {
                    k: v for k, v in self._bow.config()["params"].items() if k != "adaptive"}}},
            )
            self._bow.fit(bow_ctx)
            self.prior_model = self._bow
        self.seeder = None
        if p.seed == "geia":
            models += self._fit_seeder(ctx)
        return models

    def _fit_seeder(self, ctx: AttackContext) -> list[dict[str, Any]]:
        """The GEIA decoder whose text starts each search: the ``geia`` attack with its defaults,
        sharing its artifact folder (and its shipped weights for minilm). It sees the targets as
        this attack does (``target_view`` already applied), so it is fitted as a naive attacker."""
        from dataclasses import replace

        from bench_plugins.attacks.geia import GEIA

        if getattr(self, "_geia", None) is None:
            self._geia = GEIA({"lm": self.params.lm})  # the same LM as the proposer (default: SmolLM2)
        params = {k: v for k, v in self._geia.config()["params"].items() if k not in ("adaptive", "via")}
        self.seed_ctx = replace(ctx, defense=None, artifact_root=ctx.artifact_root.parent / GEIA.name,
                                artifact_key={**ctx.artifact_key, "attack": {"name": GEIA.name, "params": params}})
        models = self._geia.fit(self.seed_ctx)
        self.seeder = self._geia
        return [{**m, "role": f"seed {m['role']}"} for m in models]

    # ------------------------------------------------------------ invert

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        """Per target the best text of the last round; extras keep every round's text, victim cosine and queries."""
        from bench.progress import track

        p = self.params
        target = np.asarray(ctx.target_view(emb), np.float32)  # a secret defense mapped back (adaptive)
        priors = self.priors(target) if self.prior_model is not None else [{} for _ in target]
        # the hybrid: the trained decoder's guesses (no victim query; each is asked once, in round 0)
        seeds = [inv.output for inv in self.seeder.invert(target, self.seed_ctx)] if self.seeder is not None else [None] * len(target)
        out = []
        oracle = ctx.oracle
        for i, (t, prior, seed) in enumerate(track(zip(target, priors, seeds), len(target), "zsinvert", "target",
                                                   enabled=ctx.settings.progress)):
            with oracle.for_target(i):
                scorer = VictimScorer(lambda x, i=i: oracle.query(x, split="zsinvert", cache=False, targets=i), t,
                                      lambda i=i: oracle.remaining(i), batch=p.batch)
                out.append(self.search(scorer, prior, seed))
        return out

    def priors(self, target: np.ndarray) -> list[dict[str, float]]:
        """The bag-of-words model's ``prior_words`` most likely words per target, with probabilities."""
        vocab, probs = self.prior_model.word_scores(target)
        k = min(self.params.prior_words, probs.shape[1])
        top = np.argsort(-probs, axis=1)[:, :k]
        return [{vocab[j]: float(row[j]) for j in idx} for row, idx in zip(probs, top)]

    def search(self, scorer: VictimScorer, prior: dict[str, float], seed: str | None = None) -> Inversion:
        """Round 0 decodes (or, given a ``seed`` text, asks its cosine); each later round re-decodes
        from the best text and edits its words."""
        p = self.params
        dec = self.decoder
        bias = dec.bias({w: p.prior_weight * v for w, v in prior.items()}) if prior else None
        pool = list(prior)
        rounds: list[dict[str, Any]] = []

        def record(text: str, cos: float) -> None:
            rounds.append({"text": text, "victim_cos": round(float(cos), 5) if np.isfinite(cos) else None, "queries": scorer.asked})

        if seed is not None and seed.strip():
            best, best_cos = seed, float(scorer([seed])[0])
        else:
            hint = f"Write one short sentence with the words: {', '.join(pool[:12])}." if pool else "Write one short sentence."
            first = dec.decode(hint, scorer, beam=p.beam, top_k=p.top_k, max_tokens=p.max_tokens, bias=bias,
                               lm_weight=p.lm_weight, patience=p.patience)
            best, best_cos = first.text, first.cosine
        record(best, best_cos)
        for _ in range(1, p.rounds):
            if scorer.exhausted:
                record(best, best_cos)
                continue
            again = dec.decode(f"Write a sentence similar to: {best}", scorer, beam=p.beam, top_k=p.top_k,
                               max_tokens=p.max_tokens, bias=bias, lm_weight=p.lm_weight, patience=p.patience)
            start = best if again.cosine <= best_cos else again.text
            extra = [w for w in dict.fromkeys(words(again.text)) if w not in prior]
            if p.edit_steps:
                ws, cos = edit_search(start.split(), pool + extra, scorer, penalty=p.length_penalty, max_steps=p.edit_steps)
                text = " ".join(ws)
            else:
                text, cos = start, max(best_cos, again.cosine)
            if cos > best_cos - p.length_penalty * (len(text.split()) - len(best.split())) or not np.isfinite(best_cos):
                best, best_cos = text, cos
            record(best, best_cos)
        return Inversion(best, {"rounds": rounds, "queries": scorer.asked, "prior": pool, **({"seed": seed} if seed is not None else {})})

    def extra_scores(self, inversions: list[Inversion], target: Split, ctx: AttackContext) -> list[dict[str, float | None]]:
        """Per round: the shared text metrics, the re-embedded cosine and the victim's cosine; per target: queries."""
        rows: list[dict[str, float | None]] = [{"queries": float(inv.extras["queries"])} for inv in inversions]
        n_rounds = max(len(inv.extras["rounds"]) for inv in inversions)
        clean = ctx.oracle.query(target.inputs("text"), split="target")  # scoring phase: outputs are fixed, not charged
        for r in range(n_rounds):
            texts = [inv.extras["rounds"][min(r, len(inv.extras["rounds"]) - 1)]["text"] for inv in inversions]
            scores = reconstruction_scores(texts, target.texts, "text")
            recon = ctx.oracle.query(texts, split="reconstructions")  # scoring phase, not an attacker query
            cos = _cos(recon, clean[: len(texts)])
            for i, (row, sc, inv) in enumerate(zip(rows, scores, inversions)):
                row.update({f"{m}@round{r}": float(sc[m]) for m in ROUND_METRICS})
                row[f"cosine@round{r}"] = float(cos[i])
                vc = inv.extras["rounds"][min(r, len(inv.extras["rounds"]) - 1)]["victim_cos"]
                row[f"victim_cos@round{r}"] = vc
        return rows


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from bench.metrics import cosine_rows

    return cosine_rows(a, b)


@hookimpl
def register_attacks(register):
    register(ZSInvert)
