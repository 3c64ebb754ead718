"""SLImE's tag retriever: contrastive caption/tag projection heads over frozen encoder features, a
faiss index of the tag vocabulary, and the DCN-v2 re-ranker trained with hard negatives.

A mixin of the attack (``Slime`` inherits it): it reads ``self.params``, ``self.vocab`` and the
feature methods ``_query_features`` / ``_tag_features`` the attack provides, and keeps the trained
state (``heads``, ``ranker``, ``tag_emb``, ``report``) that ``fit`` builds or loads.
"""

from __future__ import annotations

import json

import numpy as np

from bench.api import AttackContext
from bench.cache import load_arrays, save_arrays
from bench.metrics import set_prf
from bench.vectors import unit


class TagRetriever:
    """Train, save, load and query SLImE's retriever (see the module docstring)."""

    def _project(self, feats: np.ndarray, which: str) -> np.ndarray:
        import torch

        dev = next(self.heads.parameters()).device
        out = []
        with torch.inference_mode():
            for i in range(0, len(feats), 4096):
                out.append(self.heads[which](torch.tensor(feats[i : i + 4096]).to(dev)).cpu().numpy())
        return unit(np.concatenate(out), np.float32) if out else np.zeros((0, self.params.proj_dim), np.float32)

    # ------------------------------------------------------------ training

    def _train(self, queries: list[str], tags: list[list[str]], ctx: AttackContext) -> None:
        import torch
        from scipy.sparse import csr_matrix

        from bench_plugins.attacks.slime_ranker import DCNv2, build_heads

        p = self.params
        torch.manual_seed(ctx.seed)
        gen = torch.Generator().manual_seed(ctx.seed)
        rng = np.random.default_rng(ctx.seed)
        keep = [i for i, t in enumerate(tags) if t]
        queries, tags = [queries[i] for i in keep], [tags[i] for i in keep]
        vidx = {t: i for i, t in enumerate(self.vocab)}
        cap_f = torch.tensor(self._query_features(queries))
        tag_f = torch.tensor(self._tag_features(self.vocab))
        rows = [i for i, ts in enumerate(tags) for t in ts]
        cols = [vidx[t] for ts in tags for t in ts]
        pos = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(queries), len(self.vocab)))
        pos.sum_duplicates()
        pos.data[:] = 1
        # hold out 10% of the captions to report what the ranker adds (never used for training)
        n = len(queries)
        perm = rng.permutation(n)
        n_hold = max(1, n // 10) if n >= 20 else 0
        hold, train = perm[:n_hold], perm[n_hold:]
        train_set = set(train.tolist())
        pr = np.array([r for r in rows if r in train_set])
        pc = np.array([c for r, c in zip(rows, cols) if r in train_set])
        self.heads = build_heads(cap_f.shape[1], p.proj_dim)
        opt = torch.optim.AdamW(self.heads.parameters(), lr=p.lr, weight_decay=1e-4)
        steps = p.epochs * max(1, (len(pr) + p.batch_size - 1) // p.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=steps + 1, pct_start=min(0.5, max(0.1, 2.5 / (steps + 1))))
        losses = []
        for _ in range(p.epochs):
            order = torch.randperm(len(pr), generator=gen).numpy()
            tot = 0.0
            for s in range(0, len(order), p.batch_size):
                b = order[s : s + p.batch_size]
                if len(b) < 2:
                    continue
                ci, ti = pr[b], pc[b]
                c = torch.nn.functional.normalize(self.heads["caption"](cap_f[ci]), dim=-1)
                t = torch.nn.functional.normalize(self.heads["tag"](tag_f[ti]), dim=-1)
                logits = c @ t.T / p.temperature
                other_pos = torch.tensor(pos[ci][:, ti].toarray() > 0) & ~torch.eye(len(b), dtype=torch.bool)
                logits = logits.masked_fill(other_pos, -1e4)  # in-batch duplicates are not negatives
                target = torch.arange(len(b))
                loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss.detach()) * len(b)
            losses.append(tot / max(1, len(pr)))
        self.heads.eval()
        self.report["contrastive_loss"] = [round(losses[0], 4), round(losses[-1], 4)]
        q = self._project(cap_f.numpy(), "caption")
        t_emb = self._project(tag_f.numpy(), "tag")
        self.tag_emb = t_emb
        self.ranker = DCNv2(3 * p.proj_dim + 1)
        if p.ranker_epochs > 0:
            self.report["ranker_loss"] = self._train_ranker(q[train], pos[train], t_emb, gen)
        self.ranker.eval()
        if n_hold:
            self.report.pop("holdout_tag_f1_ranker", None)
            truth = [set(pos[i].indices.tolist()) for i in hold]
            cos_top = self._search(q[hold], p.k)
            rank_top = self._retrieve(q[hold])
            self.report["holdout_tag_f1_cosine"] = float(np.mean([set_prf(set(a.tolist()), t)[2] for a, t in zip(cos_top, truth)]))
            self.report["holdout_tag_f1_ranker"] = float(np.mean([set_prf(set(a), t)[2] for a, t in zip(rank_top, truth)]))

    def _train_ranker(self, q: np.ndarray, pos, t_emb: np.ndarray, gen) -> list[float]:
        """Hard-negative mining: each query's positives against its highest-scoring wrong candidates."""
        import torch

        from bench_plugins.attacks.slime_ranker import pair_features

        p = self.params
        cand = self._search(q, p.candidates)
        rows_t, rows_l, rows_q = [], [], []
        for i in range(len(q)):
            positives = pos[i].indices.tolist()
            if not positives:
                continue
            ps = set(positives)
            hard = [j for j in cand[i] if j >= 0 and j not in ps][: p.hard_negatives * len(positives)]
            items = positives + hard
            rows_q.append(i)
            rows_t.append(items)
            rows_l.append([1.0] * len(positives) + [0.0] * len(hard))
        width = max(len(r) for r in rows_t)
        idx = np.zeros((len(rows_t), width), np.int64)
        lab = np.full((len(rows_t), width), -1.0, np.float32)  # -1: padding
        for r, (items, labels) in enumerate(zip(rows_t, rows_l)):
            idx[r, : len(items)] = items
            lab[r, : len(labels)] = labels
        qt, tt = torch.tensor(q[rows_q]), torch.tensor(t_emb)
        idx_t, lab_t = torch.tensor(idx), torch.tensor(lab)
        opt = torch.optim.AdamW(self.ranker.parameters(), lr=1e-3, weight_decay=1e-4)
        losses = []
        bs = 128
        for _ in range(p.ranker_epochs):
            order = torch.randperm(len(rows_q), generator=gen)
            tot = 0.0
            for s in range(0, len(order), bs):
                b = order[s : s + bs]
                scores = self.ranker(pair_features(qt[b], tt[idx_t[b]]))
                y, valid = lab_t[b], lab_t[b] >= 0
                bce = torch.nn.functional.binary_cross_entropy_with_logits(scores[valid], y[valid])
                # pairwise hinge: every positive above the hardest negative by a margin
                neg = scores.masked_fill(y != 0, -1e4).max(dim=1, keepdim=True).values
                hinge = torch.relu(p.margin - scores + neg)[y == 1].mean()
                loss = bce + hinge
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(b)
            losses.append(round(tot / len(rows_q), 4))
        return losses

    # ------------------------------------------------------------ retrieval

    def _search(self, q: np.ndarray, k: int) -> np.ndarray:
        from bench.retrieval import search

        return search(q, self.tag_emb, min(k, len(self.vocab)), "cpu")

    @property
    def use_ranker(self) -> bool:
        """The DCN-v2 re-ranking is used unless it did worse than cosine on the held-out captions (auto)."""
        if self.params.ranker_epochs == 0:
            return False
        if self.params.rerank == "always":
            return True
        r = self.report
        return not ("holdout_tag_f1_ranker" in r and r["holdout_tag_f1_ranker"] <= r.get("holdout_tag_f1_cosine", -1))

    def _retrieve(self, q: np.ndarray) -> list[list[int]]:
        """Top-k vocabulary indices per query: faiss candidates re-scored by the ranker."""
        import torch

        from bench_plugins.attacks.slime_ranker import pair_features

        p = self.params
        cand = self._search(q, p.candidates)
        if not self.use_ranker:
            return [[int(j) for j in row[: p.k] if j >= 0] for row in cand]
        out = []
        with torch.inference_mode():
            tt = torch.tensor(self.tag_emb)
            for s in range(0, len(q), 256):
                c = torch.tensor(np.maximum(cand[s : s + 256], 0))
                scores = self.ranker(pair_features(torch.tensor(q[s : s + 256]), tt[c])).numpy()
                scores[cand[s : s + 256] < 0] = -np.inf
                for row, sc in zip(cand[s : s + 256], scores):
                    order = np.argsort(-sc, kind="stable")[: p.k]
                    out.append([int(row[j]) for j in order if row[j] >= 0])
        return out

    # ------------------------------------------------------------ artifacts

    def _save(self, folder) -> None:
        save_arrays(folder / "heads.safetensors", {k: v.detach().cpu().numpy() for k, v in self.heads.state_dict().items()})
        save_arrays(folder / "ranker.safetensors", {k: v.detach().cpu().numpy() for k, v in self.ranker.state_dict().items()})
        (folder / "retriever.json").write_text(json.dumps({"vocab": self.vocab, "report": self.report}))

    def _load(self, folder) -> None:
        import torch

        from bench_plugins.attacks.slime_ranker import DCNv2, build_heads

        meta = json.loads((folder / "retriever.json").read_text())
        self.vocab, self.report = meta["vocab"], meta.get("report", {})
        heads = load_arrays(folder / "heads.safetensors")
        self.heads = build_heads(heads["caption.1.weight"].shape[1], heads["caption.1.weight"].shape[0])
        self.heads.load_state_dict({k: torch.tensor(v) for k, v in heads.items()})
        self.heads.eval()
        ranker = load_arrays(folder / "ranker.safetensors")
        self.ranker = DCNv2(3 * self.params.proj_dim + 1)
        self.ranker.load_state_dict({k: torch.tensor(v) for k, v in ranker.items()})
        self.ranker.eval()

