"""Toy victim and data for testing attacks offline: a hashed bag-of-words embedder, a four-topic
dataset and two keyed signed-permutation defenses (one public, one secret).

The test copies this file into a temporary folder and loads it as a plugin with
``Host(plugins_dir=...)`` (the same loader as ``bench --plugins-dir``).
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np
from pydantic import Field

from bench.api import Dataset, DatasetSplits, Defense, Embedder, Params, RetrievalTask, Split
from bench.hookspecs import hookimpl
from bench.metrics import words

__version__ = "0.0.0"

DIM = 64

TOPICS: dict[str, list[str]] = {
    "pets": [
        "the cat sleeps on the warm sofa all afternoon",
        "my dog chases the cat around the garden",
        "the puppy and the kitten share a food bowl",
        "our cat purrs when the dog is asleep",
        "the vet checked the dog and the cat today",
        "a kitten climbed the curtains while the puppy barked",
        "the dog fetched the ball and the cat watched",
        "feed the cat and walk the dog before dinner",
        "the old dog naps next to the cat by the fire",
        "the cat hides under the bed when the dog barks",
        "a stray cat and a lost dog found a home",
        "the puppy chewed the cat toy in the garden",
        "the dog wags its tail when the cat comes home",
        "brush the cat and bathe the dog on sunday",
        "the kitten and the puppy play in the garden",
    ],
    "markets": [
        "stocks fell as investors sold shares in banks",
        "the market rallied after the bank cut interest rates",
        "investors bought bonds as stocks slipped",
        "bank shares rose on strong quarterly earnings",
        "the stock market closed higher on friday",
        "interest rates and inflation worry investors",
        "shares of the bank dropped after weak earnings",
        "bond yields climbed as the market priced higher rates",
        "investors expect the central bank to raise rates",
        "the stock index hit a record as shares rallied",
        "earnings season lifted bank stocks and bonds",
        "traders sold shares when inflation data surprised the market",
        "the bank reported record earnings and shares jumped",
        "falling rates pushed investors back into stocks",
        "market volatility sent investors toward bonds",
    ],
    "weather": [
        "heavy rain and strong wind hit the coast tonight",
        "the forecast says snow and cold wind tomorrow",
        "sunny skies and warm weather this weekend",
        "a storm brings rain and thunder to the valley",
        "cold weather with snow expected in the mountains",
        "the wind and rain eased after the storm",
        "forecasters warn of a storm with heavy snow",
        "warm sunny weather returns after days of rain",
        "thunder and lightning as the storm moves east",
        "the weather turns cold with frost and snow",
        "light rain and cloudy skies in the forecast",
        "strong wind knocked down trees during the storm",
        "the snow melted as warm weather arrived",
        "a cold front brings rain wind and falling temperatures",
        "the forecast promises sunny skies after the storm",
    ],
    "football": [
        "the striker scored a goal in the final minute",
        "the team won the match with a late goal",
        "the goalkeeper saved a penalty in the second half",
        "fans cheered as the team scored twice",
        "the coach praised the striker after the match",
        "a red card changed the match in the first half",
        "the team lost the final on penalties",
        "the striker missed a penalty but the team won",
        "the league leaders won the match by three goals",
        "the goalkeeper kept a clean sheet in the final",
        "the coach picked a new striker for the match",
        "fans sang as the team won the league",
        "a header from the striker gave the team the lead",
        "the match ended in a draw after a late goal",
        "the team trained hard before the cup final",
    ],
}


def toy_splits() -> DatasetSplits:
    """Per topic: sentences 0-8 attacker, 9-11 leaked, 12-14 target (60 sentences in all)."""
    attacker, leaked, target = Split([], []), Split([], []), Split([], [])
    topic_of_attacker: list[str] = []
    for topic, sentences in TOPICS.items():
        for i, text in enumerate(sentences):
            split = attacker if i < 9 else leaked if i < 12 else target
            split.ids.append(f"{topic}-{i}")
            split.texts.append(text)
            if split is attacker:
                topic_of_attacker.append(topic)
    # Utility: each target sentence should retrieve the attacker sentences of its own topic.
    qrels = {
        tid: {aid for aid, topic in zip(attacker.ids, topic_of_attacker) if tid.startswith(topic + "-")}
        for tid in target.ids
    }
    retrieval = RetrievalTask(corpus_ids=list(attacker.ids), corpus_texts=list(attacker.texts), qrels=qrels)
    return DatasetSplits(attacker=attacker, leaked=leaked, target=target, retrieval=retrieval, info={"topics": list(TOPICS)})


class ToyTopics(Dataset):
    """Four topics, 60 hand-written sentences; 36 attacker / 12 leaked / 12 target."""

    name = "toy-topics"
    Params: ClassVar[type[Params]] = Params  # fixed data: no size parameters

    def load(self) -> DatasetSplits:
        return toy_splits()


def bucket(word: str) -> int:
    return int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little") % DIM


class ToyHashEmbedder(Embedder):
    """Hashed bag of words: word counts in 64 sha256 buckets, L2-normalised."""

    name = "toy-hash"
    pretrained = True  # deterministic, nothing to train: its numbers are meaningful

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), np.float32)
        for row, text in enumerate(texts):
            for w in words(text):
                out[row, bucket(w)] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    @property
    def dim(self) -> int:
        return DIM

    def fingerprint(self) -> dict:
        return {"name": self.name, "dim": DIM, "hash": "sha256", "normalized": True, "version": 1}


def signed_permutation(key: str, dim: int) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    return (np.eye(dim)[rng.permutation(dim)] * rng.choice([-1.0, 1.0], size=dim)).astype(np.float32)


class ToyShuffle(Defense):
    """Public signed permutation of the coordinates: an adaptive attacker can reproduce it."""

    name = "toy-shuffle"

    def apply(self, emb, rng):
        return (emb @ signed_permutation("toy-shuffle", emb.shape[1])).astype(np.float32)


class ToySecretShuffle(Defense):
    """Secret signed permutation: an adaptive attacker must learn it back from leaked pairs.
    ``key=`` fixes the key (tests; records say "fixed key"), else the harness's per-run secret."""

    name = "toy-secret-shuffle"
    secret = True

    class Params(Params):
        key: str | None = Field(None, json_schema_extra={"secret": True}, description="a fixed key (None: per-run secret)")

    def keyed(self, key: bytes) -> dict[str, np.ndarray]:
        return super().keyed(self.params.key.encode() if self.params.key is not None else key)

    def apply(self, emb, rng, state=None):
        # ``state`` is what ``keyed(key)`` made of the cell's secret key (the harness's per-run secret).
        return (emb @ signed_permutation(bytes(state["key"]).hex(), emb.shape[1])).astype(np.float32)


@hookimpl
def register_datasets(register):
    register(ToyTopics)


@hookimpl
def register_embedders(register):
    register(ToyHashEmbedder)


@hookimpl
def register_defenses(register):
    register(ToyShuffle)
    register(ToySecretShuffle)
