"""Built-in datasets: WordNet 3.0 example sentences, synthetic clinical notes carrying PII, and
COCO-format image captions (``coco``, for image victims) from a local copy.

Both are deterministic given their parameters (``split_seed`` and the split sizes), their splits
are disjoint, and the target split is filled first, so growing the attacker split never changes
the target texts. ``DatasetSplits.info`` describes the data actually used (source, version,
content hash, counts) so results and caches can be keyed on it.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import os
import random
import re
import string
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from bench.api import Dataset, DatasetParams, DatasetSplits, RetrievalTask, Split
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.models import describe, one_line

_SPLIT_ORDER = ("target", "leaked", "attacker")  # the order in which splits are filled


def _split_seed_field() -> Any:  # DatasetParams.split_seed, made non-negative (numpy seeds must be)
    return Field(0, ge=0, description="seed of the split (fixed across cell seeds)")


# =============================================================== WordNet

WORDNET_FILES = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}  # data.<file> -> id letter
DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # adjective position markers: galore(ip), asleep(p)
_QUOTED = re.compile(r'"([^"]*)"')
_ALNUM = re.compile(r"[A-Za-z0-9]")
_VERSION = re.compile(r"WordNet (\d+(?:\.\d+)*) Copyright")


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
    dealt out to the target, leaked and attacker splits in that order; a synset cut at a split's
    end loses its remaining sentences. A sentence whose exact text already sits in a split (115
    recur in two synsets in WordNet 3.0) is skipped, so the splits share no text. Retrieval task: each
    target sentence must find its synset's definition among the target synsets' definitions and
    ``distractors`` definitions of other synsets.
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
        split_seed: int = _split_seed_field()

    def load(self) -> DatasetSplits:
        p = self.params
        data = load_wordnet(p.path)
        with_examples = [s for s in data.synsets if s.examples]
        n_distinct = len({t for s in with_examples for t in s.examples})
        sizes = {"target": p.target, "leaked": p.leaked, "attacker": p.attacker}
        order = np.random.default_rng(p.split_seed).permutation(len(with_examples))
        queue = iter(order.tolist())
        seen: set[str] = set()
        rows: dict[str, list[tuple[str, str, Synset]]] = {k: [] for k in _SPLIT_ORDER}
        used: dict[str, list[Synset]] = {k: [] for k in _SPLIT_ORDER}
        for split in _SPLIT_ORDER:
            out = rows[split]
            while len(out) < sizes[split]:
                i = next(queue, None)
                if i is None:
                    raise self._too_small(data, n_distinct, split, sizes, rows)
                syn = with_examples[i]
                took = False
                for j, text in enumerate(syn.examples):
                    if len(out) == sizes[split]:
                        break
                    if text in seen:
                        continue
                    seen.add(text)
                    out.append((f"{syn.key}:{j}", text, syn))
                    took = True
                if took:
                    used[split].append(syn)

        def split_of(name: str) -> Split:
            r = rows[name]
            return Split(
                ids=[i for i, _, _ in r],
                texts=[t for _, t, _ in r],
                meta=[{"synset": s.key, "pos": s.pos, "lemmas": list(s.lemmas)} for _, _, s in r],
            )

        retrieval, n_distractors = self._retrieval(data, rows["target"], used["target"])
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
        )

    def _too_small(self, data: WordNetData, n_distinct: int, split: str, sizes: dict, rows: dict) -> BenchError:
        total = sum(sizes.values())
        has = f"wordnet has {data.n_examples:,} example sentences in {data.directory}"
        if n_distinct != data.n_examples:
            has += f" ({n_distinct:,} distinct)"
        if split == "attacker":  # the attacker split is filled last: exactly this much fits
            fix = f"lower --dataset wordnet:attacker={len(rows['attacker'])} (or fewer)"
        else:
            fix = f"lower --dataset wordnet:target=...,leaked=... (at most {n_distinct:,} together)"
        return BenchError(
            f"{has}; attacker+leaked+target = {total:,} does not fit (each synset goes to one split): {fix}"
        )

    def _retrieval(self, data: WordNetData, target_rows: list, target_synsets: list[Synset]):
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
            qrels={tid: {f"def:{syn.key}"} for tid, _, syn in target_rows},
        )
        return task, k


# =============================================================== synthetic clinical notes

PII_NOTES_MAX = 100_000  # distinct patients the name pools give without long redraw loops
PII_LABELS = ("first_name", "last_name", "full_name", "date", "mrn", "doctor", "hospital")

# condition -> (symptoms, medications)
CONDITIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "type 2 diabetes": (
        ("increased thirst", "frequent urination", "blurred vision", "fatigue"),
        ("metformin", "insulin glargine", "empagliflozin", "sitagliptin"),
    ),
    "hypertension": (
        ("morning headaches", "dizziness", "blurred vision"),
        ("lisinopril", "amlodipine", "hydrochlorothiazide", "losartan"),
    ),
    "asthma": (
        ("wheezing", "shortness of breath", "a nighttime cough"),
        ("albuterol", "fluticasone", "montelukast", "budesonide"),
    ),
    "a COPD exacerbation": (
        ("worsening shortness of breath", "a productive cough", "chest tightness"),
        ("tiotropium", "prednisone", "azithromycin"),
    ),
    "community-acquired pneumonia": (
        ("fever", "a productive cough", "chest pain"),
        ("amoxicillin", "azithromycin", "ceftriaxone", "doxycycline"),
    ),
    "a urinary tract infection": (
        ("burning on urination", "frequent urination", "lower abdominal pain"),
        ("nitrofurantoin", "ciprofloxacin", "trimethoprim-sulfamethoxazole"),
    ),
    "major depressive disorder": (
        ("low mood", "poor sleep", "loss of appetite"),
        ("sertraline", "escitalopram", "bupropion", "fluoxetine"),
    ),
    "generalized anxiety disorder": (
        ("persistent worry", "restlessness", "trouble sleeping"),
        ("buspirone", "escitalopram", "venlafaxine"),
    ),
    "migraine": (
        ("throbbing headaches", "nausea", "sensitivity to light"),
        ("sumatriptan", "topiramate", "propranolol", "rizatriptan"),
    ),
    "atrial fibrillation": (
        ("palpitations", "dizziness", "fatigue"),
        ("apixaban", "metoprolol", "diltiazem", "warfarin"),
    ),
    "congestive heart failure": (
        ("ankle swelling", "shortness of breath on exertion", "weight gain"),
        ("furosemide", "carvedilol", "spironolactone", "sacubitril-valsartan"),
    ),
    "hypothyroidism": (("fatigue", "weight gain", "cold intolerance"), ("levothyroxine",)),
    "hyperlipidemia": (("no new symptoms", "mild fatigue"), ("atorvastatin", "rosuvastatin", "ezetimibe")),
    "gastroesophageal reflux disease": (
        ("heartburn", "a sour taste in the mouth", "chest discomfort after meals"),
        ("omeprazole", "pantoprazole", "famotidine"),
    ),
    "osteoarthritis of the knee": (
        ("knee pain", "morning stiffness", "swelling of the knee"),
        ("naproxen", "acetaminophen", "diclofenac gel"),
    ),
    "rheumatoid arthritis": (
        ("joint pain", "morning stiffness", "swollen hands"),
        ("methotrexate", "hydroxychloroquine", "adalimumab"),
    ),
    "chronic kidney disease": (
        ("fatigue", "swelling in the legs", "decreased appetite"),
        ("losartan", "sodium bicarbonate", "furosemide"),
    ),
    "iron deficiency anemia": (("fatigue", "pale skin", "shortness of breath"), ("ferrous sulfate", "iron sucrose")),
    "acute bronchitis": (
        ("a persistent cough", "chest congestion", "low-grade fever"),
        ("benzonatate", "dextromethorphan", "albuterol"),
    ),
    "cellulitis of the leg": (
        ("redness and swelling of the leg", "warmth over the skin", "fever"),
        ("cephalexin", "clindamycin", "doxycycline"),
    ),
    "gout": (("sudden pain in the big toe", "joint swelling"), ("colchicine", "allopurinol", "indomethacin")),
    "epilepsy": (("a recent seizure", "confusion after episodes"), ("levetiracetam", "lamotrigine", "valproate")),
    "insomnia": (("difficulty falling asleep", "daytime fatigue"), ("trazodone", "melatonin", "zolpidem")),
    "stable angina": (("chest pain on exertion", "shortness of breath"), ("nitroglycerin", "aspirin", "metoprolol")),
    "allergic rhinitis": (("sneezing", "a runny nose", "itchy eyes"), ("cetirizine", "fluticasone nasal spray", "loratadine")),
    "peptic ulcer disease": (
        ("upper abdominal pain", "nausea", "black stools"),
        ("omeprazole", "sucralfate", "amoxicillin-clarithromycin"),
    ),
}

NOTE_TEMPLATES = (
    "Patient {patient} (MRN {mrn}), seen on {date} at {hospital}, reports {symptom}; assessed for "
    "{condition}, started on {medication}. Follow-up with Dr. {doctor} on {followup}.",
    "{date}: {title} {last}, a {age}-year-old {sex}, presented to {hospital} with {symptom}. "
    "Diagnosis: {condition}. Plan: {medication}, recheck on {followup}. MRN {mrn}.",
    "Discharge summary for {patient}, MRN {mrn}, DOB {dob}. Admitted to {hospital} on {date} for "
    "{condition}; discharged home on {medication}. Attending: Dr. {doctor}.",
    "Dr. {doctor} saw {patient} (MRN {mrn}) at {hospital} on {date} for {condition}. {first} reports "
    "{symptom}. Continue {medication}; next visit {followup}.",
    "Telephone encounter {date}: {patient} (record #{mrn}) called about {symptom}. History of "
    "{condition}. Advised to keep taking {medication} and to see Dr. {doctor} on {followup}.",
    "ED note, {hospital}, {date}. {patient}, MRN {mrn}, a {age}-year-old {sex} with known {condition}, "
    "now with {symptom}. Given {medication}; referred to Dr. {doctor}.",
    "Follow-up visit on {date}: {title} {last} (MRN {mrn}) is being treated for {condition} with "
    "{medication}. {pronoun} still reports {symptom}. Seen by Dr. {doctor} at {hospital}.",
    "Referral from Dr. {doctor} at {hospital}: please evaluate {patient}, DOB {dob}, MRN {mrn}, for "
    "{condition}. Current medication: {medication}. Last seen on {date}.",
)
_PARSED_TEMPLATES = tuple(tuple(string.Formatter().parse(t)) for t in NOTE_TEMPLATES)
_FIELD_LABEL = {
    "first": "first_name",
    "last": "last_name",
    "mrn": "mrn",
    "date": "date",
    "followup": "date",
    "dob": "date",
    "doctor": "doctor",
    "hospital": "hospital",
}
HOSPITAL_FORMS = (
    "{L} Memorial Hospital",
    "{L} General Hospital",
    "{L} Medical Center",
    "{L} Regional Medical Center",
    "{L} Community Hospital",
    "{L} University Hospital",
    "Mercy {L} Hospital",
    "St. {S}'s Hospital",
)
SAINTS = ("Mary", "Joseph", "Luke", "Jude", "Anne", "Vincent", "Francis", "Elizabeth", "Michael", "Catherine")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_DATE_FORMATS = (
    lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
    lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",
    lambda d: f"{d.year}-{d.month:02d}-{d.day:02d}",
    lambda d: f"{d.day} {_MONTHS[d.month - 1][:3]} {d.year}",
)
_EPOCH = date(2015, 1, 1).toordinal()


class _Pool:
    """Weighted draws from one of Faker's name lists, through the Faker instance's own RNG."""

    def __init__(self, names: Any, rnd: random.Random):
        if isinstance(names, dict):
            self.items = list(names)
            self.cum = list(itertools.accumulate(float(w) for w in names.values()))
        else:
            self.items = list(names)
            self.cum = list(range(1, len(self.items) + 1))
        self.rnd = rnd

    def __call__(self) -> str:
        x = self.rnd.random() * self.cum[-1]
        return self.items[min(bisect.bisect_right(self.cum, x), len(self.items) - 1)]


def _name_pools(seed: int):
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    person = next(p for p in fake.get_providers() if p.__provider__ == "faker.providers.person")
    rnd = fake.random
    return rnd, _Pool(person.first_names_female, rnd), _Pool(person.first_names_male, rnd), _Pool(person.last_names, rnd)


@dataclass(frozen=True)
class Note:
    text: str
    entities: tuple[tuple[str, str, int, int], ...]  # (label, text, start, end)
    first_name: str
    last_name: str
    mrn: str
    condition: str
    medication: str
    template: int

    @property
    def summary(self) -> str:
        return f"Visit summary: {self.condition} treated with {self.medication} for patient {self.last_name}."

    def meta(self) -> dict[str, Any]:
        return {
            "entities": [{"label": lab, "text": t, "start": a, "end": b} for lab, t, a, b in self.entities],
            "patient": {"first_name": self.first_name, "last_name": self.last_name, "mrn": self.mrn},
            "condition": self.condition,
            "medication": self.medication,
            "template": self.template,
        }


@functools.lru_cache(maxsize=4)
def generate_notes(seed: int, n: int) -> tuple[Note, ...]:
    """``n`` notes about ``n`` distinct patients (distinct full names and MRNs); a prefix of a
    longer run with the same seed."""
    rnd, female, male, last_names = _name_pools(seed)
    conditions = list(CONDITIONS)
    patients: set[tuple[str, str]] = set()
    mrns: set[str] = set()
    notes = []
    for _ in range(n):
        is_female = rnd.random() < 0.5
        while True:
            first, last = (female if is_female else male)(), last_names()
            if (first, last) not in patients:
                break
        patients.add((first, last))
        while True:
            mrn = str(rnd.randrange(1_000_000, 10_000_000))
            if mrn not in mrns:
                break
        mrns.add(mrn)
        condition = rnd.choice(conditions)
        symptoms, medications = CONDITIONS[condition]
        fmt = rnd.choice(_DATE_FORMATS)
        visit = date.fromordinal(_EPOCH + rnd.randrange(3653))
        dob = visit - timedelta(days=rnd.randrange(18 * 366, 92 * 365))
        age = visit.year - dob.year - ((visit.month, visit.day) < (dob.month, dob.day))
        form = rnd.choice(HOSPITAL_FORMS)
        values = {
            "first": first,
            "last": last,
            "title": "Ms." if is_female else "Mr.",
            "sex": "woman" if is_female else "man",
            "pronoun": "She" if is_female else "He",
            "age": str(age),
            "mrn": mrn,
            "date": fmt(visit),
            "followup": fmt(visit + timedelta(days=rnd.randrange(7, 121))),
            "dob": fmt(dob),
            "doctor": f"{(female if rnd.random() < 0.5 else male)()} {last_names()}",
            "hospital": form.format(L=last_names(), S=rnd.choice(SAINTS)),
            "condition": condition,
            "symptom": rnd.choice(symptoms),
            "medication": rnd.choice(medications),
        }
        k = rnd.randrange(len(NOTE_TEMPLATES))
        text, entities = _render(_PARSED_TEMPLATES[k], values)
        notes.append(Note(text, entities, first, last, mrn, condition, values["medication"], k))
    return tuple(notes)


def _render(parsed, values: dict[str, str]) -> tuple[str, tuple]:
    parts: list[str] = []
    entities = []
    pos = 0
    for literal, field_name, _, _ in parsed:
        parts.append(literal)
        pos += len(literal)
        if field_name is None:
            continue
        if field_name == "patient":
            first, last = values["first"], values["last"]
            value = f"{first} {last}"
            entities += [
                ("full_name", value, pos, pos + len(value)),
                ("first_name", first, pos, pos + len(first)),
                ("last_name", last, pos + len(first) + 1, pos + len(value)),
            ]
        else:
            value = values[field_name]
            label = _FIELD_LABEL.get(field_name)
            if label:
                entities.append((label, value, pos, pos + len(value)))
        parts.append(value)
        pos += len(value)
    return "".join(parts), tuple(entities)


class PIINotes(Dataset):
    """Synthetic clinical notes (seeded Faker names, dates, MRNs) with PII entity spans in `meta`.

    Each note is about a different patient (distinct full name and MRN across all splits) and
    follows one of 8 templates; ``meta["entities"]`` lists first_name, last_name, full_name,
    date, mrn, doctor and hospital spans with ``text[start:end] == entity text``. Retrieval task:
    each target note must find its one-line visit summary (condition, medication, last name)
    among the target notes' summaries and ``distractors`` made-up ones. Names come from Faker's
    en_US lists, so the texts can change with the Faker version (recorded in ``info``).
    """

    name = "pii-notes"

    class Params(DatasetParams):
        attacker: int = Field(5000, ge=1, description="notes in the attacker split")
        distractors: int = Field(
            4000, ge=0, le=PII_NOTES_MAX, description="made-up visit summaries added to the retrieval corpus"
        )
        split_seed: int = _split_seed_field()

    def load(self) -> DatasetSplits:
        import faker

        p = self.params
        sizes = {"target": p.target, "leaked": p.leaked, "attacker": p.attacker}
        n = sum(sizes.values())
        if n > PII_NOTES_MAX:
            room = PII_NOTES_MAX - p.leaked - p.target
            fix = (f"lower --dataset pii-notes:attacker={room} (or fewer)" if room >= 1 else
                   f"lower --dataset pii-notes:target=...,leaked=... (at most {PII_NOTES_MAX:,} together)")
            raise BenchError(
                f"pii-notes generates at most {PII_NOTES_MAX:,} notes (one per distinct patient); "
                f"attacker+leaked+target = {n:,}: {fix}"
            )
        notes = generate_notes(p.split_seed, n)
        ids = [f"note:{i:06d}" for i in range(n)]
        splits, start = {}, 0
        for name in _SPLIT_ORDER:
            chunk = range(start, start + sizes[name])
            splits[name] = Split(
                ids=[ids[i] for i in chunk],
                texts=[notes[i].text for i in chunk],
                meta=[notes[i].meta() for i in chunk],
            )
            start += sizes[name]
        retrieval = self._retrieval(notes[: p.target], splits["target"].ids)
        info = {
            "source": "faker",
            "generator": "pii-notes/1",
            "faker_version": faker.VERSION,
            "locale": "en_US",
            "n_total": n,
            "n_templates": len(NOTE_TEMPLATES),
            "n_conditions": len(CONDITIONS),
            "n_distractors": len(retrieval.corpus_ids) - len({nt.summary for nt in notes[: p.target]}),
        }
        return DatasetSplits(
            attacker=splits["attacker"], leaked=splits["leaked"], target=splits["target"], retrieval=retrieval, info=info
        )

    def _retrieval(self, targets: tuple[Note, ...], target_ids: list[str]) -> RetrievalTask:
        # identical summaries (same condition, medication and last name) share one document
        doc_of: dict[str, str] = {}
        for note in targets:
            doc_of.setdefault(note.summary, f"sum:{len(doc_of):06d}")
        qrels = {tid: {doc_of[note.summary]} for tid, note in zip(target_ids, targets)}
        corpus = list(doc_of)
        if self.params.distractors:
            rnd, female, male, last_names = _name_pools(self.params.split_seed + 7_919_000_001)
            conditions = list(CONDITIONS)
            taken, made, tries = set(corpus), 0, 0
            while made < self.params.distractors and tries < 20 * self.params.distractors:
                tries += 1
                condition = rnd.choice(conditions)
                text = (
                    f"Visit summary: {condition} treated with {rnd.choice(CONDITIONS[condition][1])} "
                    f"for patient {last_names()}."
                )
                if text not in taken:
                    taken.add(text)
                    corpus.append(text)
                    made += 1
        ids = list(doc_of.values()) + [f"sum:d{i:06d}" for i in range(len(corpus) - len(doc_of))]
        return RetrievalTask(corpus_ids=ids, corpus_texts=corpus, qrels=qrels)


# =============================================================== COCO-format image captions


class Coco(Dataset):
    """COCO-format image captions from a local copy (captions_*.json + image folder); no utility task.

    Each captioned image is one item: the victim embeds its file (``images``); its first caption (by
    annotation id) is the text an inversion is scored against; ``meta["captions"]`` holds them all.
    Image ids are shuffled with ``split_seed`` and dealt to the target, leaked and attacker splits in
    that order, each split capped by the images left (``info["counts"]`` says what was used).
    """

    name = "coco"

    class Params(DatasetParams):
        attacker: int = Field(20000, ge=1, description="images in the attacker split (capped by the images left)")
        leaked: int = Field(1000, ge=0, description="leaked (image, embedding) pairs (capped by the images left)")
        target: int = Field(1000, ge=1, description="private target images (capped by the captioned images)")
        annotations: str = Field(..., min_length=1, description="COCO captions file, e.g. annotations/captions_val2017.json")
        images: str | None = Field(
            None, description="image folder (default: the folder named after the file, e.g. val2017, beside it or beside "
            "its folder; else the file's own folder)"
        )
        split_seed: int = _split_seed_field()

    def _image_dir(self, ann: Path) -> Path:
        if self.params.images:
            folder = Path(self.params.images).expanduser()
            if not folder.is_dir():
                raise BenchError(f"COCO image folder {folder} does not exist: pass coco:images=<folder with the image files>")
            return folder.resolve()
        stem = ann.stem.removeprefix("captions_")
        for folder in (ann.parent / stem, ann.parent.parent / stem):
            if folder.is_dir():
                return folder.resolve()
        return ann.parent.resolve()

    def load(self) -> DatasetSplits:
        import json

        p = self.params
        ann = Path(p.annotations).expanduser()
        if not ann.is_file():
            raise BenchError(f"COCO annotations file {ann} does not exist: pass coco:annotations=<path to captions_*.json>")
        raw = ann.read_bytes()
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise BenchError(f"{ann} is not valid JSON ({one_line(e, 120)}): pass a COCO captions file") from None
        try:
            files = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
            rows = sorted((int(a.get("id", i)), int(a["image_id"]), " ".join(str(a["caption"]).split()))
                          for i, a in enumerate(data["annotations"]))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BenchError(
                f"{ann} is not a COCO captions file ({describe(e)}): it needs images [{{id, file_name}}] "
                f"and annotations [{{image_id, caption}}]"
            ) from None
        captions: dict[int, list[str]] = {}
        for _, image_id, caption in rows:
            if image_id in files and caption:
                captions.setdefault(image_id, []).append(caption)
        ids = sorted(captions)
        if not ids:
            raise BenchError(f"{ann} has no captioned images: pass a COCO captions file (captions_*.json)")
        folder = self._image_dir(ann)
        order = [ids[i] for i in np.random.default_rng(p.split_seed).permutation(len(ids))]
        sizes = {"target": p.target, "leaked": p.leaked, "attacker": p.attacker}
        splits, start = {}, 0
        for name in _SPLIT_ORDER:
            chunk = order[start : start + sizes[name]]
            start += len(chunk)
            paths = [str(folder / files[i]) for i in chunk]
            missing = [x for x in paths if not os.path.isfile(x)]
            if missing:
                raise BenchError(
                    f"image {missing[0]} of {ann.name} is missing ({len(missing)} of the {name} split's {len(paths)}): "
                    f"pass coco:images=<the folder holding {files[chunk[0]]}>"
                )
            splits[name] = Split(
                ids=[str(i) for i in chunk], texts=[captions[i][0] for i in chunk],
                meta=[{"captions": captions[i]} for i in chunk], images=paths,
            )
        if not splits["attacker"].ids:
            raise BenchError(
                f"{ann.name} has {len(ids)} captioned images and target+leaked = {p.target + p.leaked} leave none for the "
                f"attacker: lower coco:target=...,leaked=..."
            )
        info = {
            "source": str(ann.resolve()),
            "images": str(folder),
            "annotations_sha256": hashlib.sha256(raw).hexdigest(),
            "n_images": len(files),
            "n_captioned": len(ids),
            "n_captions": sum(len(c) for c in captions.values()),
            "split_by": "image",
            "counts": {k: len(v) for k, v in splits.items()},
        }
        return DatasetSplits(attacker=splits["attacker"], leaked=splits["leaked"], target=splits["target"], info=info)


@hookimpl
def register_datasets(register):
    register(WordNet)
    register(PIINotes)
    register(Coco)
