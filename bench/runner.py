"""The grid runner: expands specs into cells and runs each, reusing every cache it can."""

from __future__ import annotations

import itertools
import platform
import subprocess
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import __version__
from bench.align import fit_alignment
from bench.api import Attack, AttackContext, Dataset, DatasetSplits, Defense, Embedder, Inversion, ThreatModel
from bench.cache import EmbeddingCache, key_hash, seed_for
from bench.defender import DefenseStates, defender_data, defense_info, probe
from bench.errors import BenchError
from bench.locks import file_lock
from bench.metrics import directions, reconstruction_scores, summarize
from bench.models import describe
from bench.plugins import Host
from bench.redact import redact, redact_record
from bench.results import ComponentConfig, ModelInfo, Provenance, ResultRecord, load_record, record_path, write_record
from bench.settings import Settings, use
from bench.utility import retrieval_scores
from bench.vectors import cosine_rows
from bench.victim import Victim

KINDS = ("attacks", "defenses", "embedders", "datasets")


def parse_spec(spec: str) -> tuple[str, list[dict[str, str]]]:
    """``name`` or ``name:key=value,key=a|b`` -> (name, parameter sets); ``a|b`` sweeps."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise BenchError(f"empty plugin name in {spec!r}: write NAME or NAME:key=value,...")
    if not rest.strip():
        return name, []
    options: list[tuple[str, list[str]]] = []
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"bad parameter {part!r} in {spec!r}: write key=value (sweep with key=a|b)")
        options.append((key.strip(), [v.strip() for v in value.split("|")]))
    keys = [k for k, _ in options]
    return name, [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in options))]


@dataclass
class Cell:
    attack: Attack
    defense: Defense
    embedder: Embedder
    dataset: Dataset
    seed: int
    limit: int | None = None  # evaluate only the first `limit` targets
    via: Embedder | None = None  # the attacker's own embedder (attack param via=): the victim is never queried
    query_budget: int | None = None  # victim queries per target at inference (None: the settings', else unlimited)

    def configs(self) -> dict[str, Any]:
        out = {
            "attack": self.attack.config(),
            "defense": self.defense.config(),
            "embedder": self.embedder.config(),
            "dataset": self.dataset.config(),
            "seed": self.seed,
        }
        if self.limit is not None:  # absent when unset, so ids of unlimited cells never change
            out["limit"] = self.limit
        if self.query_budget is not None:
            out["query_budget"] = self.query_budget
        return out

    @property
    def cell_id(self) -> str:
        return key_hash(self.configs(), 12)

    def label(self) -> str:
        mode = "adaptive" if self.attack.adaptive else "naive"
        limit = f" limit={self.limit}" if self.limit is not None else ""
        return f"{self.attack.short()} [{mode}] vs {self.defense.short()} on {self.embedder.short()}/{self.dataset.short()} seed={self.seed}{limit}"


def expand(host: Host, kind: str, specs: Iterable[Any]) -> list[Any]:
    """Instances for one axis. A spec is a string (CLI) or a dict with ``name`` (TOML)."""
    out = []
    for spec in specs:
        if isinstance(spec, dict):
            spec = dict(spec)
            name = spec.pop("name", None)
            if not name:
                raise BenchError(f"a [[{kind}]] table in the config has no `name`: add name = \"...\"")
            lists = {k: v if isinstance(v, list) else [v] for k, v in spec.items()}
            param_sets = [dict(zip(lists, c)) for c in itertools.product(*lists.values())] if lists else []
        else:
            name, param_sets = parse_spec(str(spec))
        cls = host.entry(kind, name).cls
        # Given parameters override the plugin's default sweep: `bow:hidden=64` still runs naive
        # and adaptive, `noise:scale=0.1` replaces the noise sweep by one level.
        seen = set()
        for base in cls.default_grid or [{}]:
            for given in param_sets or [{}]:
                comp = host.make(kind, name, {**base, **given})
                key = key_hash(comp.config())
                if key not in seen:
                    seen.add(key)
                    out.append(comp)
    return out


def build_grid(host: Host, attacks, defenses, embedders, datasets, seeds, limit: int | None = None,
               baseline: bool = True, query_budget: int | None = None) -> list[Cell]:
    """The cells of a grid. ``limit``: targets per cell (None: each attack's ``default_limit``;
    0: all). ``baseline``: add the undefended cell (defense ``none``) when no defense given is the
    identity, so every defended number has its clean reference beside it."""
    axes = [expand(host, k, s) for k, s in zip(KINDS, (attacks, defenses, embedders, datasets))]
    if limit is not None and limit < 0:
        raise BenchError(f"--limit must be >= 0 (0: every target), got {limit}")
    if baseline and not any(d.identity for d in axes[1]) and "none" in host.registries["defenses"].names():
        axes[1].insert(0, host.make("defenses", "none", {}))
    cells = []
    for attack, defense, embedder, dataset, seed in itertools.product(*axes, seeds):
        if attack.adaptive and defense.identity:
            continue  # knowing "no defense" changes nothing: the naive cell covers it
        if attack.adaptive and attack.adapts_to == "secret" and not defense.secret:
            continue  # this attack's adaptive mode only differs against secret defenses
        n = attack.default_limit if limit is None else (limit or None)
        cells.append(Cell(attack, defense, embedder, dataset, int(seed), n, via_embedder(host, attack), query_budget))
    if not cells:
        raise BenchError(
            "the grid is empty: adaptive attacks are skipped against defense 'none' (the naive cell covers it); "
            "add a defense or run the attack naive"
        )
    return cells


def via_embedder(host: Host, attack: Attack) -> Embedder | None:
    """The attacker's own embedder named by the attack's ``via`` (an embedder spec, one parameter set)."""
    if not attack.via:
        return None
    if attack.query_access == "none":
        raise BenchError(
            f"attack {attack.name!r} never queries the victim and brings its own alignment: drop via={attack.via}"
        )
    name, param_sets = parse_spec(attack.via)
    if len(param_sets) > 1:
        raise BenchError(f"via={attack.via} names several embedders: sweep via with the attack spec (via=a|b), not inside it")
    return host.make("embedders", name, param_sets[0] if param_sets else {})


def query_budget(attack: Attack, run_budget: int | None) -> int | None:
    """Victim queries allowed per target at inference: the attack's own ``query_budget`` parameter
    (sweepable, e.g. ``zsinvert:query_budget=200|1000``) when it has one set, else ``--query-budget``.
    Queries made while fitting (the attacker embedding its own corpus) are not part of it."""
    own = getattr(attack.params, "query_budget", None)
    return own if own is not None else run_budget


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but torch sees no GPU: use --device cpu or auto")
    return device


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except Exception:
        return None


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for lib in ("torch", "transformers", "sentence-transformers", "faiss-cpu", "numpy", "scipy", "sacrebleu", "rouge-score", "peft", "spacy", "gguf"):
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            pass
    return out


class Runner:
    """Runs cells in-process, sharing loaded embedders, datasets, embeddings and utility scores."""

    def __init__(self, host: Host, out_dir: Path, device: str = "cpu", cache_dir: Path | None = None, progress: bool = True,
                 settings: Settings | None = None):
        """``settings`` (or, when absent, ``device``, ``cache_dir`` and ``progress``) configure the
        run; every cache, the runner's and the plugins', lives under ``settings.cache_dir``."""
        self.host = host
        self.out_dir = Path(out_dir)
        if settings is None:
            settings = Settings(device=device, progress=progress, **({"cache_dir": Path(cache_dir)} if cache_dir else {}))
        self.settings = settings
        self.device = settings.device
        self.cache_root = settings.cache_dir
        self.cache = EmbeddingCache(self.cache_root)
        self.progress = settings.progress
        self._embedders: dict[str, Embedder] = {}
        self._splits: dict[str, DatasetSplits] = {}
        self._utility: dict[str, dict] = {}
        self.states = DefenseStates(self.cache_root)
        self._commit = git_commit()
        self._libs = library_versions()

    # -------------------------------------------------------------- shared state

    def embedder(self, emb: Embedder) -> Embedder:
        key = key_hash(emb.config())
        if key not in self._embedders:
            with use(self.settings):
                emb.load(self.device)
            self._embedders[key] = emb
        return self._embedders[key]

    def splits(self, ds: Dataset) -> DatasetSplits:
        key = key_hash(ds.config())
        if key not in self._splits:
            with use(self.settings):
                self._splits[key] = ds.load()
        return self._splits[key]

    def data_key(self, ds: Dataset) -> str:
        """The dataset's config plus what it says of its source (file hashes, library versions)."""
        info = {k: v for k, v in self.splits(ds).info.items() if k != "source"}  # where it lies is not what it is
        return key_hash([ds.config(), info])

    def check_modality(self, cell: Cell) -> None:
        """The attack must work on the victim's modality, and an image victim needs an image dataset."""
        modality = cell.embedder.modality
        if modality not in cell.attack.modalities:
            works = " and ".join(cell.attack.modalities)
            raise BenchError(
                f"attack {cell.attack.name!r} works on {works} victims only; embedder {cell.embedder.name!r} embeds {modality}s"
            )
        if modality == "image":
            self.inputs(cell, self.splits(cell.dataset).target)

    def inputs(self, cell: Cell, split) -> list[str]:
        """What the victim embeds of a split: its image paths for an image embedder, else its texts."""
        items = split.inputs(cell.embedder.modality)
        if items is None:
            raise BenchError(
                f"embedder {cell.embedder.name!r} embeds images but dataset {cell.dataset.name!r} has none: "
                f"use an image dataset (e.g. coco) or a text embedder"
            )
        return items

    def defense_state(self, victim: Victim, cell: Cell, data: DatasetSplits) -> dict | None:
        """A fitted defense's state, learned from the defender's own data (never the targets)."""
        if not cell.defense.fitted:
            return None
        split, texts = defender_data(data, cell.dataset.name, cell.defense.name)
        return self.states.get(cell.defense, victim.fingerprint, victim.dataset_key, cell.seed,
                               lambda: victim.embed_split(split, texts))

    def defended(self, victim: Victim, defense: Defense, split: str, texts: list[str], seed: int, state=None) -> np.ndarray:
        rng = np.random.default_rng(seed_for(seed, "defender", split))
        clean = victim.embed_split(split, texts)
        out = np.asarray(defense.defend(clean, rng, state))
        if out.shape != clean.shape:
            raise BenchError(f"defense {defense.name!r} maps {split} vectors of shape {clean.shape} to {out.shape}: a defense must keep the victim's dimension")
        if not np.isfinite(out).all():
            raise BenchError(f"defense {defense.short()} produced non-finite values (NaN or inf) on the {split} split: check its parameters")
        return out

    def utility(self, victim: Victim, defense: Defense, data: DatasetSplits, seed: int, state=None) -> dict:
        task = data.retrieval
        if task is None:
            return {}
        key = key_hash([victim.fingerprint, victim.dataset_key, defense.config(), seed])
        if key not in self._utility:
            queries = self.defended(victim, defense, "target", data.target.texts, seed, state)
            corpus = self.defended(victim, defense, "corpus", task.corpus_texts, seed, state)
            per_query = retrieval_scores(data.target.ids, queries, corpus, task, k=10, device=self.device)
            self._utility[key] = summarize(per_query, directions(per_query), seed=seed)
        return self._utility[key]

    def prepare(self, cells: list[Cell]) -> None:
        """Load every embedder and dataset and check dimensions before any cell runs.

        User mistakes (missing data, a model that cannot load, a defense that changes the dimension)
        stop the run here, with nothing written.
        """
        todo = []
        for c in cells:  # a finished cell loads nothing, but its record must be readable
            if self._finished(c) is None:
                todo.append(c)
        cells = todo
        for cell in cells:  # datasets first: cheap, and the likeliest to be missing
            self.splits(cell.dataset)
        for cell in cells:
            self.check_modality(cell)
        seen = set()
        for cell in cells:
            embedder = self.embedder(cell.embedder)
            if cell.via is not None:
                own = self.embedder(cell.via)
                if own.modality != cell.embedder.modality:
                    raise BenchError(
                        f"via={cell.attack.via} embeds {own.modality}s but the victim {cell.embedder.name!r} embeds "
                        f"{cell.embedder.modality}s: the attacker's own embedder must take the same inputs"
                    )
        seen = set()
        for cell in cells:
            embedder = self.embedder(cell.embedder)
            key = key_hash([cell.embedder.config(), cell.defense.config(), cell.dataset.config()])
            if key in seen:
                continue
            if key_hash(cell.embedder.config()) not in seen:
                seen.add(key_hash(cell.embedder.config()))
                with use(self.settings):
                    embedder.fingerprint()  # an API victim's identity probe: a misbehaving server stops the run here
            seen.add(key)
            n_fit = len(defender_data(self.splits(cell.dataset), cell.dataset.name, cell.defense.name)[1]) if cell.defense.fitted else 0
            out = probe(cell.defense, embedder.dim, n_fit)
            if out is None:
                continue
            shape = out.shape
            if shape == (2, embedder.dim) and not np.isfinite(out).all():
                raise BenchError(f"defense {cell.defense.short()} produces non-finite values (NaN or inf): check its parameters")
            if shape != (2, embedder.dim):
                raise BenchError(
                    f"defense {cell.defense.name!r} maps {embedder.name!r} vectors of dimension {embedder.dim} "
                    f"to shape {shape[1:]}: a defense must keep the victim's dimension"
                )

    # -------------------------------------------------------------- cells

    def run(self, cells: list[Cell], on_done=None, on_wait=None) -> list[ResultRecord]:
        """Run the cells not finished yet. Each cell is computed under its lock file
        (``<out>/.locks/<cell_id>.lock``), so concurrent runs on the same folder compute it once:
        a run that finds the cell locked waits (``on_wait(cell, holder)``) and reads the winner's record."""
        records = []
        for i, cell in enumerate(cells, 1):
            rec, status = self._finished(cell), "cached"
            if rec is None:
                lock = self.out_dir / ".locks" / f"{cell.cell_id}.lock"
                with file_lock(lock, on_wait=(lambda h, c=cell: on_wait(c, h)) if on_wait else None):
                    rec = self._finished(cell)  # another run may have finished it while we waited
                    if rec is None:
                        for debris in self.out_dir.glob(f".*__{cell.cell_id}*.tmp"):  # temp files of a killed write
                            debris.unlink(missing_ok=True)
                        with use(self.settings):
                            rec, samples = self.run_cell(cell)
                        rec = redact_record(rec)
                        try:
                            write_record(self.out_dir, rec, samples)
                            status = rec.status if rec.status == "ok" else f"error: {rec.error}"
                        except FileExistsError:  # a run that broke our lock (we were stopped > 60 s) wrote it first
                            rec, status = self._finished(cell) or rec, "cached"
            records.append(rec)
            if on_done:
                on_done(i, len(cells), cell, status)
        return records

    def _finished(self, cell: Cell) -> ResultRecord | None:
        existing = record_path(self.out_dir, cell.cell_id)
        return load_record(existing, attacks=lambda name: self.host.entry("attacks", name).cls) if existing is not None else None

    @staticmethod
    def _artifact_key(cell: Cell, victim: Victim) -> dict:
        """What a trained attack depends on: victim, data, seed and training config (not the mode:
        an attack that trains on simulated defended data adds ``ctx.view_key()`` itself)."""
        params = {k: v for k, v in cell.attack.config()["params"].items() if k not in ("adaptive", "via")}
        return {
            "victim": victim.fingerprint,
            "dataset": victim.dataset_key,
            "seed": cell.seed,
            "attack": {"name": cell.attack.name, "params": params},
        }

    def _component(self, kind: str, comp) -> ComponentConfig:
        entry = self.host.entry(kind, comp.name)
        return ComponentConfig(**comp.config(), plugin=entry.plugin, version=entry.version)

    def run_cell(self, cell: Cell) -> tuple[ResultRecord, list[dict] | None]:
        """Run one cell; errors become an error record (the samples are None then).

        The steps: the victim and the data (``_victim``), the defended targets and the attacker's
        context (``_context``), the attack itself (``_attack``), the per-sample scores (``_score``),
        the record and the samples (``_record``); a failure anywhere is an error record (``_failure``).
        """
        t0 = time.perf_counter()
        budget = self._budget(cell)
        threat = self._threat(cell).model_copy(update={"query_budget": budget})
        victim = None
        try:
            victim, data = self._victim(cell)
            threat = threat.model_copy(update={"leaked_pairs": len(data.leaked)})
            target, targets, ctx, alignment = self._context(cell, victim, data)
            attack_models, inversions = self._attack(cell, ctx, target, None if cell.via else budget)
            attacker_queries = victim.queries  # training data, alignment and re-embedding at inference
            rows = self._score(cell, victim, data, targets, inversions, ctx, alignment)
            return self._record(cell, victim, data, targets, inversions, rows, attack_models, threat, t0, attacker_queries, ctx, alignment)
        except Exception as e:  # a failing cell is recorded; the others go on
            return self._failure(cell, e, threat, t0, victim), None

    @staticmethod
    def _threat(cell: Cell) -> ThreatModel:
        """What the attacker had, as far as the cell's configuration says (leaked pairs come with the data)."""
        return ThreatModel(query_access="none" if cell.via else cell.attack.query_access,
                           knows_defense=cell.attack.adaptive, via=cell.via.short() if cell.via else None)

    def _identity(self, cell: Cell) -> dict[str, Any]:
        """What every record of the cell says, whatever its outcome."""
        return dict(
            cell_id=cell.cell_id,
            attack=self._component("attacks", cell.attack),
            defense=self._component("defenses", cell.defense),
            embedder=self._component("embedders", cell.embedder),
            dataset=self._component("datasets", cell.dataset),
            seed=cell.seed,
            limit=cell.limit,
        )

    def _victim(self, cell: Cell) -> tuple[Victim, DatasetSplits]:
        """The loaded embedder behind a counted, budgeted victim, and the dataset's splits."""
        embedder = self.embedder(cell.embedder)
        data = self.splits(cell.dataset)
        victim = Victim(embedder, self.cache, self.data_key(cell.dataset), progress=self.progress)
        self.check_modality(cell)
        return victim, data

    def _context(self, cell: Cell, victim: Victim, data: DatasetSplits):
        """The defended target embeddings (the first ``limit``), their split, the attacker's context,
        and with ``via`` the alignment into the attacker's own embedder (``align_via``; else None).

        The whole split is embedded and defended (the same noise draw whatever the limit), then cut.
        """
        state = self.defense_state(victim, cell, data)
        target = self.defended(victim, cell.defense, "target", self.inputs(cell, data.target), cell.seed, state)[: cell.limit]
        targets = data.target.head(cell.limit)
        leaked = self.defended(victim, cell.defense, "leaked", self.inputs(cell, data.leaked), cell.seed, state)
        attacked, alignment = victim, None
        if cell.via is not None:  # the attacker's own embedder stands in for the victim: no victim query
            attacked = Victim(self.embedder(cell.via), self.cache, victim.dataset_key, progress=self.progress)
            target, leaked, alignment = self.align_via(attacked, cell, data, target, leaked)
        ctx = AttackContext(
            victim=attacked,
            attacker=data.attacker,
            leaked=data.leaked,
            leaked_embeddings=leaked,
            defense=cell.defense if cell.attack.adaptive else None,
            seed=cell.seed,
            settings=self.settings,
            artifact_root=self.cache_root / "artifacts" / cell.attack.name,
            artifact_key=self._artifact_key(cell, attacked),
        )
        return target, targets, ctx, alignment

    def _budget(self, cell: Cell) -> int | None:
        """The cell's query budget per target (the attack's parameter, the cell's, the run's)."""
        return query_budget(cell.attack, cell.query_budget if cell.query_budget is not None else self.settings.query_budget)

    @staticmethod
    def _attack(cell: Cell, ctx: AttackContext, target: np.ndarray, budget: int | None = None) -> tuple[list[dict], list[Inversion]]:
        """Fit, then invert every target within the query budget; checks the attack kept its side of the contract.

        The budget binds inference only (fitting embeds the attacker's own corpus): the victim refuses
        any request past ``budget`` inside a target's ``for_target()`` block and past ``budget`` x
        targets in all, so no attack can exceed it. A ``via`` cell never queries the victim: no budget.
        """
        attack_models = cell.attack.fit(ctx) or []
        victim = ctx.victim
        if budget is not None:
            victim.target_budget = budget
            victim.budget = victim.queries + budget * len(target)
        try:
            inversions = cell.attack.invert(target, ctx)
        finally:
            victim.budget = victim.target_budget = None
        if len(inversions) != len(target):
            raise BenchError(f"attack {cell.attack.name!r} returned {len(inversions)} outputs for {len(target)} targets")
        if not all(isinstance(inv, Inversion) for inv in inversions):
            raise BenchError(f"attack {cell.attack.name!r}: invert must return bench.api.Inversion objects, one per target")
        return attack_models, inversions

    def _score(self, cell: Cell, victim: Victim, data: DatasetSplits, targets, inversions: list[Inversion], ctx: AttackContext,
               alignment: dict | None = None) -> list[dict]:
        """Per-sample scores: the shared reconstruction metrics, the attack's own, the cosine, and with
        ``via`` the alignment's held-out cosine per target."""
        outputs = [inv.output for inv in inversions]
        rows = reconstruction_scores(outputs, targets.texts, cell.attack.output, targets.meta)
        extra = cell.attack.extra_scores(inversions, targets, ctx)
        if extra is not None and len(extra) != len(rows):
            raise BenchError(f"attack {cell.attack.name!r}: extra_scores returned {len(extra)} rows for {len(rows)} targets")
        for row, more in zip(rows, extra or [{}] * len(rows)):
            row.update(more)
        for row, c in zip(rows, alignment["rows"] if alignment else []):
            row["align_cosine"] = float(c)
        if cell.attack.output == "text":
            for row, c in zip(rows, self._cosines(cell, victim, data, [str(o) for o in outputs])):
                row["cosine"] = float(c)
            if self.settings.fluency:
                self._fluency(rows, [str(o) for o in outputs], targets.texts)
        return rows

    def _fluency(self, rows: list[dict], outputs: list[str], truths: list[str]) -> None:
        """``perplexity`` of each reconstruction and ``target_perplexity`` of its target under the judge LM
        (``bench.fluency``); None for an empty text."""
        from bench.fluency import perplexities

        for name, texts in (("perplexity", outputs), ("target_perplexity", truths)):
            for row, v in zip(rows, perplexities(texts, self.device, cache_dir=self.settings.cache_dir)):
                row[name] = None if np.isnan(v) else float(v)

    def _cosines(self, cell: Cell, victim: Victim, data: DatasetSplits, texts: list[str]) -> np.ndarray:
        """Cosine of the re-embedded reconstruction against the clean target embedding; for an image
        victim its text tower's embedding of the reconstruction (CLIPScore-like), if it has one."""
        if victim.modality == "text":
            recon = victim.embed_split("reconstructions", texts)
        elif hasattr(victim.embedder, "embed_text"):
            recon = victim.embed_text_split("reconstructions", texts)
        else:
            return np.zeros(0, np.float32)
        clean = victim.embed_split("target", self.inputs(cell, data.target))[: len(texts)]
        return cosine_rows(recon, clean)

    def _record(self, cell: Cell, victim: Victim, data: DatasetSplits, targets, inversions: list[Inversion], rows: list[dict],
                attack_models: list[dict], threat: ThreatModel, t0: float, attacker_queries: int, ctx: AttackContext,
                alignment: dict | None) -> tuple[ResultRecord, list[dict]]:
        """The cell's record (means with CIs and their declared directions) and its samples."""
        per_metric: dict[str, list[float]] = {}
        for row in rows:
            for k, v in row.items():
                per_metric.setdefault(k, []).append(v)
        metrics = summarize(per_metric, directions(per_metric, cell.attack.metrics), seed=cell.seed)
        utility = self.utility(victim, cell.defense, data, cell.seed, self.defense_state(victim, cell, data))
        samples = [
            {"id": i, "target": t, "reconstruction": inv.output if isinstance(inv.output, str) else sorted(inv.output),
             "scores": r, "extras": inv.extras}
            for i, t, inv, r in zip(targets.ids, targets.texts, inversions, rows)
        ]
        embedder = victim.embedder
        models = [ModelInfo(role="victim", name=embedder.name, pretrained=bool(embedder.pretrained))]
        if cell.via is not None:
            models.append(ModelInfo(role="attacker-embedder", name=cell.via.short(), pretrained=bool(ctx.victim.embedder.pretrained)))
        models += [ModelInfo(**m) for m in attack_models]
        if any("perplexity" in r for r in rows):
            from bench.fluency import JUDGE_NAME

            models.append(ModelInfo(role="fluency-judge", name=JUDGE_NAME, pretrained=True))
        head = cell.attack.headline
        rec = ResultRecord(
            **self._identity(cell),
            threat_model=threat,
            metrics=metrics,
            headline=list(head) if head is not None else None,
            utility=utility,
            models=models,
            all_pretrained=all(m.pretrained for m in models),
            victim_fingerprint=victim.fingerprint,
            dataset_info=data.info,
            defense_info=defense_info(cell.defense, victim.dim, self._fitted_on(cell, data)),
            alignment=alignment["info"] if alignment else None,
            provenance=self._provenance(t0, attacker_queries, victim),
        )
        return rec, samples

    def _failure(self, cell: Cell, e: Exception, threat: ThreatModel, t0: float, victim: Victim | None) -> ResultRecord:
        """The error record: a BenchError's own message, else the exception and where it was raised."""
        if isinstance(e, BenchError):
            message = str(e)
        else:
            message = f"{describe(e)} | {traceback.format_exc(limit=-3).strip().splitlines()[-2].strip()}"
        return ResultRecord(
            **self._identity(cell), status="error", error=redact(message), threat_model=threat, provenance=self._provenance(t0, 0, victim)
        )

    def error_record(self, cell: Cell, message: str) -> ResultRecord:
        """An error record for a cell that failed outside ``run_cell`` (its job was killed, ran out of
        memory or time: the engine's reason is the message)."""
        threat = self._threat(cell)
        return ResultRecord(**self._identity(cell), status="error", error=redact(message), threat_model=threat,
                            provenance=self._provenance(time.perf_counter(), 0, None))

    @staticmethod
    def _fitted_on(cell: Cell, data: DatasetSplits) -> tuple[str, int] | None:
        if not cell.defense.fitted:
            return None
        split, texts = defender_data(data, cell.dataset.name, cell.defense.name)
        return split, len(texts)

    def align_via(self, own: Victim, cell: Cell, data: DatasetSplits, target: np.ndarray, leaked: np.ndarray):
        """Map the defended victim vectors into the attacker's own embedder's space (ALGEN's threat model).

        The map is fitted on the leaked pairs: their defended victim vectors against the attacker's own
        embeddings of their texts (its own model: no victim query). Rows are rescaled to the mean norm
        of the attacker's own embeddings, so the attack sees vectors shaped like its own. The harness
        (not the attacker) scores the map per target: the cosine of the mapped target against the
        attacker's own embedding of the target text (``align_cosine``, held out: no target is a pair).
        """
        own_leaked = own.embed_split("leaked", self.inputs(cell, data.leaked))
        w, info = fit_alignment(leaked, own_leaked)
        norm = float(np.mean(np.linalg.norm(own_leaked, axis=1)))

        def mapped(x: np.ndarray) -> np.ndarray:
            y = x.astype(np.float32) @ w
            return (y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12) * norm).astype(np.float32)

        target_own, leaked_own = mapped(target), mapped(leaked)
        truth = own.embed_split("target", self.inputs(cell, data.target))[: len(target)]
        align = cosine_rows(target_own, truth)
        info = {**info, "own_embedder": cell.via.short(), "own_fingerprint": own.fingerprint,
                "heldout_cosine": round(float(np.mean(align)), 6), "heldout": "targets"}
        return target_own, leaked_own, {"info": info, "rows": align}

    def _provenance(self, t0: float, queries: int, victim: Victim | None) -> Provenance:
        wall = time.perf_counter() - t0
        return Provenance(
            package_version=__version__,
            git_commit=self._commit,
            python=platform.python_version(),
            libraries=self._libs,
            device=self.device,
            wall_time_s=round(wall, 3),
            victim_queries=queries,
            victim_embed_s=round(victim.embed_seconds, 3) if victim else 0.0,
            gpu_seconds=round(wall, 3) if self.device.startswith("cuda") else 0.0,
        )
