"""WordNet 3.0 as a dataset: synset example sentences (targets), definitions (the retrieval corpus)."""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from bench.api import SPLIT_ORDER, Dataset, DatasetParams, DatasetSplits, RetrievalTask, Split
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.splits import ShortSplit, deal

WORDNET_FILES = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}  # data.<file> -> id letter
DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # adjective position markers: galore(ip), asleep(p)
_QUOTED = re.compile(r'"([^"]*)"')
_ALNUM = re.compile(r"[A-Za-z0-9]")
_VERSION = re.compile(r"WordNet (\d+(?:\.\d+)*) Copyright")
DEV_SIZE = 1000  # sentences in the dev split (a constant, not a parameter: cell ids stay as they were)


@dataclass(frozen=True)
class Synset:
    key: str  # "<file letter>:<offset>", e.g. "n:00217014"; unique across the four files
    pos: str  # the synset type as in the file: n, v, a, s (satellite adjective) or r
    lemmas: tuple[str, ...]  # underscores turned into spaces, position markers removed
    definition: str  # the gloss before its first quoted example, without trailing ';'
    examples: tuple[str, ...]  # the gloss's double-quoted parts, stripped


@dataclass(frozen=True)
class WordNetData:
    directory: str
    version: str
    sha256: str  # of the four data files, in the order noun, verb, adj, adv
    synsets: tuple[Synset, ...]  # in file order (noun, verb, adj, adv; by offset within a file)
    n_examples: int
    n_dropped: int  # quoted fragments without a letter or digit (artifacts of unbalanced quotes)


def wordnet_dir(path: str | None = None) -> Path:
    """The WordNet data folder: ``path``, else $WNHOME, else $WORDNET_DIR, else /usr/share/wordnet.

    A classic WordNet install keeps its data files in ``$WNHOME/dict``; that folder is used when
    the given one has no data files of its own.
    """
    raw = path or os.environ.get("WNHOME") or os.environ.get("WORDNET_DIR") or DEFAULT_WORDNET_DIR
    directory = Path(raw).expanduser()
    if not (directory / "data.noun").is_file() and (directory / "dict" / "data.noun").is_file():
        directory = directory / "dict"
    return directory


def parse_gloss(gloss: str) -> tuple[str, list[str], int]:
    """(definition, examples, dropped) of a gloss: the examples are its double-quoted parts."""
    gloss = gloss.strip()
    first = gloss.find('"')
    definition = (gloss if first < 0 else gloss[:first]).rstrip("; \t")
    examples, dropped = [], 0
    for part in _QUOTED.findall(gloss):
        part = part.strip().rstrip("; \t")
        if _ALNUM.search(part):
            examples.append(part)
        else:
            dropped += 1
    return definition, examples, dropped


def load_wordnet(path: str | None = None) -> WordNetData:
    """Parse the WordNet data files (cached in memory per folder and file size/mtime)."""
    directory = wordnet_dir(path)
    files = [directory / f"data.{name}" for name in WORDNET_FILES]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise BenchError(
            f"WordNet data not found in {directory} (no {', '.join(missing)}): install it with "
            f"`apt-get install wordnet-base` (Debian/Ubuntu) or pass --dataset wordnet:path=DIR"
        )
    stamp = tuple((f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _parse_wordnet(str(directory.resolve()), stamp)


@functools.lru_cache(maxsize=4)
def _parse_wordnet(directory: str, stamp: tuple) -> WordNetData:
    digest = hashlib.sha256()
    synsets: list[Synset] = []
    version, n_examples, n_dropped = "unknown", 0, 0
    for name, letter in WORDNET_FILES.items():
        path = Path(directory) / f"data.{name}"
        raw = path.read_bytes()
        digest.update(raw)
        for lineno, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
            if line.startswith("  "):  # the license header
                m = _VERSION.search(line)
                if m and version == "unknown":
                    version = f"WordNet {m.group(1)}"
                continue
            if not line.strip():
                continue
            head, sep, gloss = line.partition(" | ")
            fields = head.split()
            try:
                offset, pos, n_words = fields[0], fields[2], int(fields[3], 16)
                words = fields[4 : 4 + 2 * n_words : 2]
                if not offset.isdigit() or len(words) != n_words or not sep:
                    raise ValueError
            except (IndexError, ValueError):
                raise BenchError(
                    f"{path}:{lineno} is not a WordNet data line: point --dataset wordnet:path= at "
                    f"the folder of an unmodified WordNet 3.0 (`apt-get install wordnet-base`)"
                ) from None
            definition, examples, dropped = parse_gloss(gloss)
            lemmas = tuple(_MARKER.sub("", w).replace("_", " ") for w in words)
            synsets.append(Synset(f"{letter}:{offset}", pos, lemmas, definition, tuple(examples)))
            n_examples += len(examples)
            n_dropped += dropped
    return WordNetData(directory, version, digest.hexdigest(), tuple(synsets), n_examples, n_dropped)


class WordNet(Dataset):
    """WordNet 3.0 example sentences as private texts, split by synset; utility: sentence -> gloss.

    Every example sentence (a double-quoted part of a gloss) is a text; all sentences of a synset
    land in the same split. The synsets that have examples are shuffled with ``split_seed`` and
    dealt out to the target, leaked and attacker splits in that order (``bench.splits.deal``); a synset cut at a split's
    end loses its remaining sentences. A sentence whose exact text already sits in a split (115
    recur in two synsets in WordNet 3.0) is skipped, so the splits share no text. Retrieval task: each
    target sentence must find its synset's definition among the target synsets' definitions and
    ``distractors`` definitions of other synsets.

    Every split's ``groups`` is its synsets (intervals resample synsets, not sentences). After the
    attacker split, the next ``DEV_SIZE`` sentences (whole synsets, as far as they remain) form the
    ``dev`` split on which defaults and ablations are chosen: filled last, so the other splits are
    exactly as without it.
    """

    name = "wordnet"

    class Params(DatasetParams):
        path: str | None = Field(
            None,
            description="folder with WordNet's data.{noun,verb,adj,adv} "
            "(default: $WNHOME, else $WORDNET_DIR, else /usr/share/wordnet)",
        )
        distractors: int = Field(
            4000, ge=0, description="definitions of non-target synsets added to the retrieval corpus"
        )

    def load(self) -> DatasetSplits:
        p = self.params
        data = load_wordnet(p.path)
        with_examples = [s for s in data.synsets if s.examples]
        n_distinct = len({t for s in with_examples for t in s.examples})
        by_key = {s.key: s for s in with_examples}
        flat = [(f"{s.key}:{j}", text, s.key) for s in with_examples for j, text in enumerate(s.examples)]
        ids, texts, groups = (list(col) for col in zip(*flat))
        order = (*SPLIT_ORDER, "dev")  # dev last: the other splits are exactly as without it
        sizes = {"target": p.target, "leaked": p.leaked, "attacker": p.attacker, "dev": DEV_SIZE}
        try:
            dealt = deal(ids, texts, groups, sizes, p.split_seed, "wordnet", order=order, partial=("dev",))
        except ShortSplit as e:
            raise self._too_small(data, n_distinct, e.split, sizes, e.got) from None
        used = {k: [by_key[g] for g in dict.fromkeys(dealt[k].groups)] for k in order}  # synsets, in dealing order

        def split_of(name: str) -> Split:
            d = dealt[name]
            return Split(
                ids=d.ids,
                texts=d.texts,
                meta=[{"synset": g, "pos": by_key[g].pos, "lemmas": list(by_key[g].lemmas)} for g in d.groups],
                groups=list(d.groups),
            )

        retrieval, n_distractors = self._retrieval(data, dealt["target"], used["target"])
        info = {
            "source": data.directory,
            "version": data.version,
            "sha256": data.sha256,
            "n_total": data.n_examples,
            "n_distinct": n_distinct,
            "n_synsets": len(data.synsets),
            "n_synsets_with_examples": len(with_examples),
            "split_by": "synset",
            "synsets": {k: len(v) for k, v in used.items()},
            "n_distractors": n_distractors,
        }
        return DatasetSplits(
            attacker=split_of("attacker"),
            leaked=split_of("leaked"),
            target=split_of("target"),
            retrieval=retrieval,
            info=info,
            dev=split_of("dev") if dealt["dev"].ids else None,
        )

    def _too_small(self, data: WordNetData, n_distinct: int, split: str, sizes: dict, got: dict[str, int]) -> BenchError:
        total = sum(v for k, v in sizes.items() if k != "dev")
        has = f"wordnet has {data.n_examples:,} example sentences in {data.directory}"
        if n_distinct != data.n_examples:
            has += f" ({n_distinct:,} distinct)"
        if split == "attacker":  # the attacker split is filled last: exactly this much fits
            fix = f"lower --dataset wordnet:attacker={got['attacker']} (or fewer)"
        else:
            fix = f"lower --dataset wordnet:target=...,leaked=... (at most {n_distinct:,} together)"
        return BenchError(
            f"{has}; attacker+leaked+target = {total:,} does not fit (each synset goes to one split): {fix}"
        )

    def _retrieval(self, data: WordNetData, target: Split, target_synsets: list[Synset]):
        target_keys = {s.key for s in target_synsets}
        taken = {s.definition for s in target_synsets}
        candidates = []  # other synsets, one per distinct definition text not used by the target
        for s in data.synsets:
            if s.key not in target_keys and s.definition and s.definition not in taken:
                taken.add(s.definition)
                candidates.append(s)
        k = min(self.params.distractors, len(candidates))
        rng = np.random.default_rng([self.params.split_seed, 1])
        picked = sorted(rng.choice(len(candidates), size=k, replace=False).tolist()) if k else []
        docs = target_synsets + [candidates[i] for i in picked]
        task = RetrievalTask(
            corpus_ids=[f"def:{s.key}" for s in docs],
            corpus_texts=[s.definition for s in docs],
            qrels={tid: {f"def:{key}"} for tid, key in zip(target.ids, target.groups)},
        )
        return task, k


@hookimpl
def register_datasets(register):
    register(WordNet)
