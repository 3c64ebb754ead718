"""What a plugin implements: one base class per kind, with typed, validated parameters.

Every component declares its parameters as a pydantic model ``Params``; a bad value fails with a
message naming the field. ``default_grid`` is the list of parameter sets a bare ``--defense NAME``
expands to (a sweep, e.g. several noise levels).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from bench.settings import Settings

if TYPE_CHECKING:
    from bench.metrics import Metric
    from bench.oracle import QueryOracle


# What a record says in place of a secret parameter that was given (a fixed key for reproduction).
FIXED_KEY = "fixed key"


def _secret_field(f) -> bool:
    """A parameter marked ``json_schema_extra={"secret": True}`` (a key): records state it, never write it."""
    return isinstance(f.json_schema_extra, dict) and bool(f.json_schema_extra.get("secret"))


class Params(BaseModel):
    """Parameters are validated strictly: unknown names, NaN and infinities are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Component:
    """Shared by all plugin kinds: a CLI name, a description, parameters."""

    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    default_grid: ClassVar[list[dict[str, Any]]] = [{}]

    def __init__(self, params: Params | dict[str, Any] | None = None):
        if isinstance(params, Params):
            self.params = params
        else:
            self.params = self.Params.model_validate(params or {})

    @classmethod
    def describe(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def config(self) -> dict[str, Any]:
        """Name and parameters: what identifies the component's results (cell ids, artifact keys).
        Transport settings (fields with ``json_schema_extra={"transport": True}``: HTTP timeouts,
        retries, parallel requests) change how an answer is fetched, not what it is: left out."""
        params = self.params.model_dump(mode="json")
        for k, f in type(self.params).model_fields.items():
            extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
            if extra.get("transport"):
                params.pop(k, None)
            elif _secret_field(f) and params.get(k) is not None:
                params[k] = FIXED_KEY  # a fixed secret is stated, never written (records, cell ids, logs)
        return {"name": self.name, "params": params}

    def short(self) -> str:
        """Name plus the parameters that differ from their defaults."""
        fields = self.Params.model_fields
        changed = {
            k: (FIXED_KEY if _secret_field(fields[k]) else v) for k, v in self.params.model_dump().items()
            if k != "adaptive" and (fields[k].is_required() or fields[k].get_default(call_default_factory=True) != v)
        }
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in changed.items())})" if changed else self.name

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config()["params"].items())
        return f"{self.name}({args})"


# ---------------------------------------------------------------- datasets


@dataclass
class Split:
    """Texts of one split. ``meta`` holds per-text extras such as PII entity spans; ``images`` the
    image file paths of an image dataset (``texts`` are then their captions, the ground truth);
    ``groups`` the cluster each item belongs to (WordNet: its synset; Wikipedia: its article), so
    intervals resample whole clusters (None: items are independent)."""

    ids: list[str]
    texts: list[str]
    meta: list[dict[str, Any]] | None = None
    images: list[str] | None = None
    groups: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def inputs(self, modality: str) -> list[str] | None:
        """What a victim of that modality embeds: the image paths ("image"; None if there are none) or the texts."""
        return self.images if modality == "image" else self.texts

    def copy(self) -> Split:
        """A copy whose lists the caller may change without changing this split."""
        return Split(list(self.ids), list(self.texts), [dict(m) for m in self.meta] if self.meta is not None else None,
                     list(self.images) if self.images is not None else None,
                     list(self.groups) if self.groups is not None else None)

    def head(self, n: int | None) -> Split:
        """The first ``n`` items (all when n is None)."""
        if n is None or n >= len(self.texts):
            return self
        return Split(self.ids[:n], self.texts[:n], self.meta[:n] if self.meta is not None else None,
                     self.images[:n] if self.images is not None else None,
                     self.groups[:n] if self.groups is not None else None)


@dataclass
class RetrievalTask:
    """Utility task: the target texts are the queries; ``qrels`` maps query id -> relevant doc ids."""

    corpus_ids: list[str]
    corpus_texts: list[str]
    qrels: dict[str, set[str]]


# The order in which a dataset fills its splits: the targets first, so growing the attacker split
# never changes them.
SPLIT_ORDER = ("target", "leaked", "attacker")


@dataclass
class DatasetSplits:
    attacker: Split  # the attacker's auxiliary corpus
    leaked: Split  # (text, embedding) pairs the attacker may use for alignment
    target: Split  # the private texts whose embeddings are attacked
    retrieval: RetrievalTask | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # Texts the defender owns, never targets, that a fitted defense (pca, pq) learns from; None:
    # the retrieval corpus (the documents the defender indexes) is the defender's data.
    defender: Split | None = None
    # Texts disjoint from every other split (and from the targets' groups) on which defaults and
    # ablations are chosen; published boards never tune on ``target``. None: the dataset has none.
    dev: Split | None = None


class DatasetParams(Params):
    attacker: int = Field(20000, ge=1, description="sentences in the attacker split")
    leaked: int = Field(1000, ge=0, description="leaked (text, embedding) pairs")
    target: int = Field(1000, ge=1, description="private target texts")
    split_seed: int = Field(0, ge=0, description="seed of the split (fixed across cell seeds)")


class Dataset(Component):
    """Base class of datasets: deterministic, disjoint attacker / leaked / target splits."""

    Params: ClassVar[type[Params]] = DatasetParams

    def load(self) -> DatasetSplits:
        raise NotImplementedError


# ---------------------------------------------------------------- embedders


class Embedder(Component):
    """Base class of victim embedders. ``embed`` returns float32 [n, dim].

    ``modality`` "image": ``embed`` receives image file paths (the split's ``images``); such an
    embedder may also offer ``embed_text(texts)``, its text tower, for CLIPScore-like metrics.
    """

    pretrained: bool = True
    modality: ClassVar[Literal["text", "image"]] = "text"

    def load(self, device: str) -> None:
        """Load weights; called once before ``embed``."""

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the vectors: model id, weights hash, pooling, normalisation..."""
        raise NotImplementedError


# ---------------------------------------------------------------- defenses


class Defense(Component):
    """Base class of defenses: a transform applied to every stored or served embedding.

    ``secret``: the transform depends on a key the attacker does not have, so an adaptive attacker
    cannot simulate it and aligns through leaked pairs instead. The harness derives the key from a
    per-run secret (different per seed, never written anywhere) and hands the defense ``keyed(key)``
    as its ``state``; an attack only ever sees the defense's public description (``DefenseView``).
    """

    secret: ClassVar[bool] = False
    identity: ClassVar[bool] = False
    # True: the transform is learned (a PCA basis, PQ codebooks) by ``fit`` on embeddings the
    # defender owns (``DatasetSplits.defender``, else the retrieval corpus; never the targets), and
    # ``apply`` receives what ``fit`` returned as ``state``.
    fitted: ClassVar[bool] = False

    def fit(self, data: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Learn the defense's state from the defender's own embeddings (arrays, cached as safetensors)."""
        return {}

    def check(self, dim: int, n_fit: int) -> None:
        """Raise ``BenchError`` when these parameters cannot work for vectors of ``dim`` fitted on
        ``n_fit`` defender embeddings; called before any cell runs."""

    def apply(self, emb: np.ndarray, rng: np.random.Generator, state: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The defended embeddings. A defense that is not ``fitted`` may omit ``state`` from its signature."""
        raise NotImplementedError

    def keyed(self, key: bytes) -> dict[str, np.ndarray]:
        """A secret defense's state from the cell's key (bytes the harness derives per run and seed)."""
        return {"key": np.frombuffer(bytes(key), np.uint8).copy()}

    def privacy(self, dim: int) -> dict[str, Any]:
        """What the record states of the privacy this setting gives at that dimension (e.g. the noise
        scale a DP mechanism calibrated from ε and δ); {} when there is nothing beyond the params."""
        return {}

    def defend(self, emb: np.ndarray, rng: np.random.Generator, state: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """What the harness calls: ``apply``, handing a fitted or secret defense its state (a secret
        defense whose ``apply`` takes no state keeps a key of its own: it gets none)."""
        if self.fitted or (self.secret and len(inspect.signature(self.apply).parameters) >= 3):
            return self.apply(emb, rng, state)
        return self.apply(emb, rng)


@dataclass(frozen=True)
class DefenseView:
    """What an attacker that knows the defense (adaptive) is told: its name, public parameters and
    kind, never its state (a secret defense's key, a fitted defense's basis learned on the defender's
    data). A public defense can be simulated on the attacker's own data (``simulator``)."""

    name: str
    params: dict[str, Any]
    secret: bool
    identity: bool
    fitted: bool
    cls: type[Defense]

    @classmethod
    def of(cls, defense: Defense) -> DefenseView:
        conf = defense.config()
        return cls(conf["name"], conf["params"], bool(defense.secret), bool(defense.identity), bool(defense.fitted), type(defense))

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    def simulator(self) -> Defense:
        """A fresh instance with the public parameters, for the attacker's own simulation; refused for a secret defense."""
        if self.secret:
            from bench.errors import BenchError

            raise BenchError(f"defense {self.name!r} is secret: an attacker cannot simulate it (map targets back with ctx.target_view)")
        return self.cls(self.cls.Params.model_validate(self.params))


# ---------------------------------------------------------------- attacks


class ThreatModel(BaseModel):
    """What the attacker had in a cell."""

    train_split: Literal["attacker"] = "attacker"
    query_access: Literal["none", "black-box", "white-box"] = "black-box"
    query_budget: int | None = None  # victim queries allowed per target at inference (None: unlimited)
    fit_query_budget: int | None = None  # victim queries allowed to fit and align, in total (None: unlimited)
    isolated: bool = False  # the attack ran in a worker process holding neither the victim nor the defense's state
    leaked_pairs: int = 0
    knows_defense: bool = False
    via: str | None = None  # the attacker's own embedder: the victim is never queried (see AttackParams.via)


class AttackParams(Params):
    adaptive: bool = Field(False, description="the attacker knows the defense and adapts to it")
    via: str | None = Field(
        None,
        description="attack through the attacker's own embedder (an embedder spec, e.g. minilm): the victim is never "
        "queried; the defended victim vectors are mapped into that embedder's space by a linear map fitted on the "
        "dataset's leaked pairs (Procrustes when dimensions match, else ridge)",
    )


@dataclass
class AttackContext:
    """What the runner hands an attack, and all it grants: a counted, budgeted query ``oracle`` (texts
    in, embeddings out: ``bench.oracle.QueryOracle``, or its remote twin in an isolated worker), the
    splits the threat model names (``attacker``, the ``leaked`` pairs and their defended vectors),
    the defense's public description when the attacker knows it (``DefenseView``; never its secret
    state), the seed, and the run's settings (``settings.cache_dir``: the root of every cache;
    ``settings.device``)."""

    oracle: QueryOracle  # black-box queries, counted by phase and budgeted
    attacker: Split
    leaked: Split
    leaked_embeddings: np.ndarray  # defended, as leaked from the store
    defense: DefenseView | None  # set only for adaptive attacks
    seed: int
    settings: Settings
    artifact_root: Path
    artifact_key: dict[str, Any]
    _to_clean: np.ndarray | None = field(default=None, init=False, repr=False)  # learned once per cell

    @property
    def victim(self) -> QueryOracle:
        """The oracle under its former name (``ctx.victim.query`` keeps working; nothing else is there)."""
        return self.oracle

    @property
    def device(self) -> str:
        return self.settings.device

    def target_view(self, emb: np.ndarray) -> np.ndarray:
        """The target embeddings in the space the attacker trained in: an adaptive attacker facing a
        secret defense maps them back through ``to_clean()`` (learned once per cell from the leaked
        pairs, charged to the ``alignment`` phase); otherwise they are returned as given."""
        if self.defense is None or not self.defense.secret:
            return emb
        if self._to_clean is None:
            self._to_clean = self.to_clean()
        return emb @ self._to_clean

    def artifact_dir(self, **extra: Any) -> Path:
        """A folder for trained artifacts, content-addressed by victim, data, seed, config, extra."""
        from bench.cache import key_hash

        path = self.artifact_root / key_hash({**self.artifact_key, **extra})
        path.mkdir(parents=True, exist_ok=True)
        return path

    def rng(self, purpose: str) -> np.random.Generator:
        from bench.cache import seed_for

        return np.random.default_rng(seed_for(self.seed, "attacker", purpose))

    @property
    def simulates_defense(self) -> bool:
        """True when ``train_view`` changes the data: an adaptive attacker, a reproducible defense."""
        return self.defense is not None and not (self.defense.identity or self.defense.secret)

    def view_key(self) -> dict | None:
        """Add to ``artifact_dir`` for artifacts trained on ``train_view`` data."""
        return self.defense.config() if self.simulates_defense else None

    def train_view(self, clean: np.ndarray) -> np.ndarray:
        """The attacker's training embeddings as the adaptive attacker sees them.

        An adaptive attacker reproduces a known defense on its own data (with its own randomness);
        a secret defense cannot be reproduced, so its data stays clean and ``to_clean`` maps the
        targets back instead. A naive attacker trains on clean embeddings.
        """
        if not self.simulates_defense:
            return clean
        sim = self.defense.simulator()
        # A fitted defense (pca, pq) is fitted on the attacker's own data: it never sees the defender's.
        state = sim.fit(clean, self.rng("fit-defense")) if sim.fitted else None
        return sim.defend(clean, self.rng("simulate-defense"), state)

    def to_clean(self) -> np.ndarray | None:
        """For an adaptive attacker facing a secret defense: W mapping defended -> clean space.

        Learned from the leaked pairs: the victim's embeddings of their texts (``oracle.leaked_clean()``,
        charged once to the ``alignment`` phase, under the fit budget) paired with the leaked,
        defended vectors (orthogonal Procrustes).
        """
        if self.defense is None or not self.defense.secret:
            return None
        if len(self.leaked) == 0:
            from bench.errors import BenchError

            raise BenchError("an adaptive attack on a secret defense needs leaked pairs: set the dataset's leaked > 0")
        from bench.align import procrustes

        return procrustes(self.leaked_embeddings, self.oracle.leaked_clean())


@dataclass
class Inversion:
    """One target's reconstruction: ``output`` (a list of words for output "words", a string for
    "text") and ``extras``, JSON-serialisable per-target data the attack wants kept or scored
    (retrieved tags, per-step outputs, a VLM's answer). The runner writes ``extras`` into the
    samples file and hands the inversions back to ``extra_scores``."""

    output: list[str] | str
    extras: dict[str, Any] = field(default_factory=dict)


class Attack(Component):
    """Base class of attacks. ``output`` is "words" (a bag of words) or "text".

    Data flows through arguments and return values: ``fit`` returns the models it used, ``invert``
    returns one ``Inversion`` per target, ``extra_scores`` receives those inversions. Nothing a
    call produces is kept on ``self`` for a later call (trained state from ``fit`` excepted).
    """

    Params: ClassVar[type[Params]] = AttackParams
    output: ClassVar[Literal["words", "text"]] = "text"
    query_access: ClassVar[Literal["none", "black-box", "white-box"]] = "black-box"
    default_grid: ClassVar[list[dict[str, Any]]] = [{"adaptive": False}, {"adaptive": True}]
    # Targets evaluated when the user gives no --limit (None: all). For attacks whose inference is
    # costly on a CPU (an LLM writing every caption); the record states the limit used.
    default_limit: ClassVar[int | None] = None
    modalities: ClassVar[tuple[str, ...]] = ("text",)  # victim modalities the attack works on
    # Defenses the adaptive mode changes anything against: "all", or "secret" when it only maps a
    # secret defense back (``ctx.to_clean``); the grid then skips its adaptive cells elsewhere.
    adapts_to: ClassVar[Literal["all", "secret"]] = "all"
    # Metrics the run's printed table and the leaderboards show (None: all); records keep every metric.
    headline: ClassVar[tuple[str, ...] | None] = None
    # Declarations of the attack's own metrics (``bench.metrics.Metric``); the shared ones
    # (``bench.metrics.SHARED_METRICS``) need none. Reporting an undeclared metric is an error.
    metrics: ClassVar[tuple[Metric, ...]] = ()

    @property
    def adaptive(self) -> bool:
        return bool(getattr(self.params, "adaptive", False))

    @property
    def via(self) -> str | None:
        return getattr(self.params, "via", None)

    def config(self) -> dict[str, Any]:
        out = super().config()
        if out["params"].get("via", 0) is None:  # unset: absent, so ids of cells without via never change
            del out["params"]["via"]
        return out

    def check_data(self, data: DatasetSplits) -> None:
        """Raise ``BenchError`` when a parameter given cannot be honoured on this data (called before
        any work): a value silently capped would be recorded as given, not as used."""

    def fit(self, ctx: AttackContext) -> list[dict[str, Any]] | None:
        """Train on the attacker's data (cache artifacts under ``ctx.artifact_dir``).

        Returns the models the attack uses, for the record: dicts with ``role``, ``name`` and
        ``pretrained`` (False for a randomly initialised model: its numbers are not findings).
        """
        return None

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        """Reconstruct each target: one ``Inversion`` per row of ``emb``."""
        raise NotImplementedError

    def extra_scores(self, inversions: list[Inversion], target: Split, ctx: AttackContext) -> list[dict[str, float | None]] | None:
        """Attack-specific per-sample metrics (e.g. tag F1, declared in ``metrics``), merged into
        the shared ones; a None value leaves that sample out of the metric's mean."""
        return None
