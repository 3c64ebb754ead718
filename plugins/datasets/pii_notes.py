"""Synthetic clinical notes with PII entity spans (names, dates, record numbers), seeded and reproducible."""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import string
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import Field

from bench.api import SPLIT_ORDER, Dataset, DatasetParams, DatasetSplits, RetrievalTask, Split
from bench.errors import BenchError
from bench.hookspecs import hookimpl

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
    en_US lists, so the texts can change with the Faker version (recorded in ``info``). The splits
    declare no ``groups``: each patient is drawn independently, and the 8 shared templates are too
    few clusters for a cluster bootstrap, so intervals resample notes.
    """

    name = "pii-notes"

    class Params(DatasetParams):
        attacker: int = Field(5000, ge=1, description="notes in the attacker split")
        distractors: int = Field(
            4000, ge=0, le=PII_NOTES_MAX, description="made-up visit summaries added to the retrieval corpus"
        )

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
        for name in SPLIT_ORDER:
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


@hookimpl
def register_datasets(register):
    register(PIINotes)
