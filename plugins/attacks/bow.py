"""Bag-of-words inversion (Song & Raghunathan, CCS 2020): embedding -> the set of its words."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from pydantic import Field

from bench.api import Attack, AttackContext, AttackParams
from bench.cache import load_arrays, save_arrays
from bench.hookspecs import hookimpl
from bench.metrics import set_prf, words

THRESHOLDS = np.round(np.arange(0.05, 0.61, 0.025), 3)


class BagOfWords(Attack):
    """Multi-label MLP from embedding to words, trained on the attacker split via victim queries."""

    name = "bow"
    output = "words"

    class Params(AttackParams):
        hidden: int = Field(2048, ge=16, description="hidden units of the MLP")
        epochs: int = Field(12, ge=1, description="training epochs")
        lr: float = Field(2e-3, gt=0, description="peak learning rate (AdamW, one-cycle)")
        batch_size: int = Field(256, ge=1)
        dropout: float = Field(0.2, ge=0, lt=1)
        min_count: int = Field(1, ge=1, description="vocabulary: words seen in at least this many attacker texts")
        holdout: int = Field(1000, ge=10, description="attacker texts held out to choose the decision threshold")
        max_train: int | None = Field(None, ge=1, description="use at most this many attacker texts")

    def fit(self, ctx: AttackContext) -> None:
        self.to_clean = ctx.to_clean()
        texts = ctx.attacker.texts[: self.params.max_train]
        if len(texts) <= self.params.holdout:
            from bench.errors import BenchError

            raise BenchError(
                f"bow needs more attacker texts ({len(texts)}) than its holdout ({self.params.holdout}): "
                f"raise the dataset's attacker size or lower bow:holdout"
            )
        clean = ctx.victim.query(texts, split="attacker")
        folder = ctx.artifact_dir()
        weights = folder / "bow.safetensors"
        if weights.exists():
            self._load(folder)
            return
        x = ctx.train_view(clean)
        # The split is ordered by synset/group, so a tail holdout shares no group with training.
        cut = len(texts) - self.params.holdout
        vocab = _vocab(texts[:cut], self.params.min_count)
        self.vocab = vocab
        self.net = self._train(x[:cut], _labels(texts[:cut], vocab), ctx)
        probs = self._probs(x[cut:])
        self.threshold = _best_threshold(probs, texts[cut:], vocab)
        state = {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        (folder / "bow.json").write_text(json.dumps({"vocab": vocab, "threshold": self.threshold}))
        save_arrays(weights, state)

    # ------------------------------------------------------------------ model

    def _build(self, dim: int, n_words: int):
        import torch

        p = self.params
        return torch.nn.Sequential(
            torch.nn.Linear(dim, p.hidden), torch.nn.GELU(), torch.nn.Dropout(p.dropout), torch.nn.Linear(p.hidden, n_words)
        )

    def _train(self, x: np.ndarray, y: np.ndarray, ctx: AttackContext):
        import torch
        from tqdm.auto import tqdm

        p = self.params
        torch.manual_seed(ctx.seed)
        gen = torch.Generator().manual_seed(ctx.seed)
        device = ctx.device
        net = self._build(x.shape[1], y.shape[1]).to(device)
        prior = np.clip(np.asarray(y.mean(0)).ravel(), 1e-5, 1 - 1e-5)
        with torch.no_grad():  # start from the word priors: faster, steadier training
            net[-1].bias.copy_(torch.tensor(np.log(prior / (1 - prior)), dtype=torch.float32))
        xt = torch.tensor(x)
        steps_per_epoch = (len(x) + p.batch_size - 1) // p.batch_size
        opt = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=p.epochs * steps_per_epoch, pct_start=0.1)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        for _ in tqdm(range(p.epochs), desc="bow: training", leave=False, disable=None):
            net.train()
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), p.batch_size):
                idx = perm[i : i + p.batch_size]
                target = torch.from_numpy(y[idx.numpy()].toarray()).to(device)
                loss = loss_fn(net(xt[idx].to(device)), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        net.eval()
        return net

    def _probs(self, x: np.ndarray) -> np.ndarray:
        import torch

        dev = next(self.net.parameters()).device
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), 4096):
                out.append(torch.sigmoid(self.net(torch.tensor(x[i : i + 4096]).to(dev))).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.vocab)), np.float32)

    def _load(self, folder) -> None:
        import torch

        meta = json.loads((folder / "bow.json").read_text())
        self.vocab, self.threshold = meta["vocab"], meta["threshold"]
        state = load_arrays(folder / "bow.safetensors")
        self.net = self._build(state["0.weight"].shape[1], len(self.vocab))
        self.net.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
        self.net.eval()

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[list[str]]:
        if self.to_clean is not None:
            emb = emb @ self.to_clean
        return _decide(self._probs(np.asarray(emb, np.float32)), self.threshold, self.vocab)


def _vocab(texts: list[str], min_count: int) -> list[str]:
    counts = Counter(w for t in texts for w in set(words(t)))
    return [w for w, n in counts.most_common() if n >= min_count]


def _labels(texts: list[str], vocab: list[str]):
    """Sparse [n, |vocab|] 0/1 matrix (dense would not fit for large vocabularies)."""
    from scipy.sparse import csr_matrix

    index = {w: i for i, w in enumerate(vocab)}
    rows, cols = [], []
    for i, t in enumerate(texts):
        for w in set(words(t)):
            if w in index:
                rows.append(i)
                cols.append(index[w])
    return csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), len(vocab)))


def _decide(probs: np.ndarray, threshold: float, vocab: list[str]) -> list[list[str]]:
    """Words above the threshold; at least the single most likely word."""
    out = []
    for row in probs:
        idx = np.flatnonzero(row >= threshold)
        if not len(idx):
            idx = [int(row.argmax())]
        out.append([vocab[j] for j in idx])
    return out


def _best_threshold(probs: np.ndarray, texts: list[str], vocab: list[str]) -> float:
    truth = [set(words(t)) for t in texts]
    scores = [np.mean([set_prf(set(p), t)[2] for p, t in zip(_decide(probs, th, vocab), truth)]) for th in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax(scores))])


@hookimpl
def register_attacks(register):
    register(BagOfWords)
