"""Toy embedder and dataset for fast tests (a random hashed bag of words: not pretrained)."""

import hashlib

import numpy as np
from pydantic import Field

from bench.api import Dataset, DatasetParams, DatasetSplits, Embedder, Params, RetrievalTask, Split
from bench.hookspecs import hookimpl

WORDS = (
    "the a cat dog bird fish runs eats sleeps sings swims red blue green small big old young "
    "house tree river road park city quickly slowly happily under over near far with".split()
)


class ToyDataset(Dataset):
    """Random sentences over a 30-word vocabulary; the document of a sentence is its word list."""

    name = "toy"

    class Params(DatasetParams):
        attacker: int = Field(600, ge=1)
        leaked: int = Field(50, ge=0)
        target: int = Field(80, ge=1)

    def load(self):
        p = self.params
        rng = np.random.default_rng(p.split_seed)
        n = p.attacker + p.leaked + p.target
        texts = [" ".join(rng.choice(WORDS, size=rng.integers(4, 8), replace=False)) for _ in range(n)]
        ids = [f"t{i}" for i in range(n)]

        def split(a, b):
            return Split(ids[a:b], texts[a:b], [{"entities": [{"label": "first_name", "text": texts[i].split()[0]}]} for i in range(a, b)])

        target = split(0, p.target)
        corpus_ids = [f"doc-{i}" for i in target.ids]
        corpus = [" ".join(sorted(t.split())) for t in target.texts]
        task = RetrievalTask(corpus_ids, corpus, {q: {d} for q, d in zip(target.ids, corpus_ids)})
        return DatasetSplits(
            attacker=split(p.target + p.leaked, n), leaked=split(p.target, p.target + p.leaked), target=target, retrieval=task
        )


class HashEmbedder(Embedder):
    """Sum of fixed random word vectors, normalised (deterministic, instant)."""

    name = "toy-hash"
    pretrained = False

    class Params(Params):
        dim: int = Field(64, ge=2)

    def _vec(self, word):
        seed = int(hashlib.sha256(word.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal(self.params.dim)

    def embed(self, texts):
        out = np.stack([sum(self._vec(w) for w in t.split()) if t.split() else np.zeros(self.params.dim) for t in texts])
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)).astype(np.float32)

    @property
    def dim(self):
        return self.params.dim

    def fingerprint(self):
        return {"embedder": self.name, "dim": self.params.dim, "weights_sha256": None}


@hookimpl
def register_datasets(register):
    register(ToyDataset)


@hookimpl
def register_embedders(register):
    register(HashEmbedder)
