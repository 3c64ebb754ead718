"""The runner: runs a grid's cells in-process, sharing loaded models, data and caches.

It orchestrates and owns no science: the grid and the cell are ``bench.grid``, a cell's data
(defense state, defended embeddings, utility, ``via`` alignment) is built once by
``bench.defender.cell_data``, scores come from ``bench.metrics``.
"""

from __future__ import annotations

import platform
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bench import __version__
from bench.api import AttackContext, Dataset, DatasetSplits, DefenseView, Embedder, Inversion, ThreatModel
from bench.cache import EmbeddingCache, key_hash
from bench.defender import CellData, DefenseStates, RunSecret, cell_data, defender_data, defense_info, evaluated_split, probe, split_inputs
from bench.errors import BenchError
from bench.floor import chance_text
from bench.grid import KINDS, Cell, build_grid, expand, needs_floor, parse_spec, query_budget, via_embedder  # noqa: F401 - re-exported
from bench.isolate import attack_calls
from bench.locks import file_lock
from bench.metrics import at_chance, ci_method, corpus_bleu, directions, reconstruction_scores, summarize, words
from bench.models import describe
from bench.oracle import QueryLedger, victim_oracle
from bench.plugins import Host
from bench.redact import redact, redact_record
from bench.results import ComponentConfig, ModelInfo, Provenance, ResultRecord, load_record, record_path, write_record
from bench.settings import Settings, use
from bench.vectors import cosine_rows
from bench.victim import Victim


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
                 settings: Settings | None = None, command: str | None = None):
        """``settings`` (or, when absent, ``device``, ``cache_dir`` and ``progress``) configure the
        run; every cache, the runner's and the plugins', lives under ``settings.cache_dir``.
        ``command``: the ``bench run`` command line that made the run, for its records (None: the API)."""
        self.host = host
        self.command = command
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
        self.secret = RunSecret()  # secret defenses' keys, per cell; never leaves this process
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
        return split_inputs(cell, split, cell.embedder.modality)

    def resolve(self, cell: Cell) -> Cell:
        """The cell as it will run: a limit covering every target is no limit (the same cell, the same id)."""
        if cell.limit is None:
            return cell
        return cell.for_targets(len(evaluated_split(cell, self.splits(cell.dataset))))

    def prepare(self, cells: list[Cell]) -> list[Cell]:
        """Load every embedder and dataset and check dimensions before any cell runs; returns the
        cells as they will run (``resolve``: their ids as recorded).

        User mistakes (missing data, a model that cannot load, a defense that changes the dimension,
        an attack parameter the data cannot honour) stop the run here, with nothing written.
        """
        cells = resolved = [self.resolve(c) for c in cells]
        todo = []
        for c in cells:  # a finished cell loads nothing, but its record must be readable
            if self._finished(c) is None:
                todo.append(c)
        cells = todo
        for cell in cells:  # datasets first: cheap, and the likeliest to be missing
            evaluated_split(cell, self.splits(cell.dataset))
        for cell in cells:
            self.check_modality(cell)
            cell.attack.check_data(self.splits(cell.dataset))
        for cell in cells:
            self.embedder(cell.embedder)
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
            probe(cell.defense, embedder.dim, n_fit, embedder.name)
        return resolved

    # -------------------------------------------------------------- cells

    def run(self, cells: list[Cell], on_done=None, on_wait=None) -> list[ResultRecord]:
        """Run the cells not finished yet. Each cell is computed under its lock file
        (``<out>/.locks/<cell_id>.lock``), so concurrent runs on the same folder compute it once:
        a run that finds the cell locked waits (``on_wait(cell, holder)``) and reads the winner's record."""
        records = []
        for i, cell in enumerate(cells, 1):
            cell = self.resolve(cell)
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

        The steps: the victim and the data (``_victim``), the cell's data built once
        (``bench.defender.cell_data``: defense state, defended embeddings, utility, alignment), the
        attacker's context (``_context``), the attack itself (``_attack``), the per-sample scores
        (``_score``), the record and the samples (``_record``); a failure anywhere is an error record.
        """
        t0 = time.perf_counter()
        budget, fit_budget = self._budget(cell), self._fit_budget(cell)
        isolated = bool(self.settings.isolate)
        threat = self._threat(cell).model_copy(update={"query_budget": budget, "fit_query_budget": fit_budget, "isolated": isolated})
        victim, calls = None, None
        # One ledger per cell: every query by phase, with the budgets (a via cell never queries the victim).
        ledger = QueryLedger(None if cell.via else fit_budget, None if cell.via else budget)
        try:
            victim, data = self._victim(cell)
            threat = threat.model_copy(update={"leaked_pairs": len(data.leaked)})
            own = Victim(self.embedder(cell.via), self.cache, victim.dataset_key, progress=self.progress) if cell.via else None
            cd = cell_data(cell, victim, data, self.states, own, self.device, self._shared_utility(victim, cell), self.secret)
            ctx = self._context(cell, own or victim, data, cd, ledger)
            calls = attack_calls(cell.attack, ctx, isolated)
            attack_models, inversions = self._attack(cell, calls, cd.target, ledger)
            rows = self._score(cell, victim, cd, inversions, calls, ledger)
            return self._record(cell, victim, data, cd, inversions, rows, attack_models, threat, t0, ledger)
        except Exception as e:  # a failing cell is recorded; the others go on
            return self._failure(cell, e, threat, t0, victim), None
        finally:
            if calls is not None:
                calls.close()

    def _shared_utility(self, victim: Victim, cell: Cell):
        """Cells with the same victim, data, defense and seed have the same defended embeddings, so
        the same utility: computed by the first of them, read by the others."""
        key = key_hash([victim.fingerprint, victim.dataset_key, cell.defense.config(), cell.seed])

        def get(compute) -> dict:
            if key not in self._utility:
                self._utility[key] = compute()
            return self._utility[key]

        return get

    @staticmethod
    def _threat(cell: Cell) -> ThreatModel:
        """What the attacker had, as far as the cell's configuration says (leaked pairs come with the data)."""
        return ThreatModel(query_access="none" if cell.via else cell.attack.query_access,
                           knows_defense=cell.attack.adaptive, via=cell.via.short() if cell.via else None)

    def _identity(self, cell: Cell) -> dict[str, Any]:
        """What every record of the cell says, whatever its outcome (enough for ``Cell.from_config``)."""
        return dict(
            cell_id=cell.cell_id,
            attack=self._component("attacks", cell.attack),
            defense=self._component("defenses", cell.defense),
            embedder=self._component("embedders", cell.embedder),
            dataset=self._component("datasets", cell.dataset),
            seed=cell.seed,
            limit=cell.limit,
            query_budget=cell.query_budget,
            fit_query_budget=cell.fit_query_budget,
            command=self.command,
        )

    def _victim(self, cell: Cell) -> tuple[Victim, DatasetSplits]:
        """The loaded embedder behind a counted, budgeted victim, and the dataset's splits."""
        embedder = self.embedder(cell.embedder)
        data = self.splits(cell.dataset)
        victim = Victim(embedder, self.cache, self.data_key(cell.dataset), progress=self.progress)
        self.check_modality(cell)
        return victim, data

    def _context(self, cell: Cell, attacked: Victim, data: DatasetSplits, cd: CellData, ledger: QueryLedger) -> AttackContext:
        """The attacker's context: what the threat model grants and nothing else. A query oracle over
        ``ledger`` (with ``via``, over its own embedder; no handle on the embedder, the cache or the
        budgets), copies of its data and the leaked vectors as it sees them, and for an adaptive
        attack the defense's public description (never its state or key)."""
        return AttackContext(
            oracle=victim_oracle(attacked, ledger, self.inputs(cell, data.leaked)),
            attacker=data.attacker.copy(),  # copies: an attack that edits its data never edits the run's
            leaked=data.leaked.copy(),
            leaked_embeddings=cd.leaked,
            defense=DefenseView.of(cell.defense) if cell.attack.adaptive else None,
            seed=cell.seed,
            settings=self.settings.replace(),  # a copy: nothing an attack does to it reaches the run
            artifact_root=self.cache_root / "artifacts" / cell.attack.name,
            artifact_key=self._artifact_key(cell, attacked),
        )

    def _budget(self, cell: Cell) -> int | None:
        """The cell's query budget per target (the attack's parameter, the cell's, the run's)."""
        return query_budget(cell.attack, cell.query_budget if cell.query_budget is not None else self.settings.query_budget)

    def _fit_budget(self, cell: Cell) -> int | None:
        """The cell's fit query budget in total (fit and alignment): the cell's, else the run's."""
        return cell.fit_query_budget if cell.fit_query_budget is not None else self.settings.fit_query_budget

    @staticmethod
    def _attack(cell: Cell, calls, target: np.ndarray, ledger: QueryLedger) -> tuple[list[dict], list[Inversion]]:
        """Fit, then invert every target; checks the attack kept its side of the contract.

        ``ledger`` charges the fit phase (and alignment) to the fit budget, and inference to the
        per-target budget: the oracle refuses any request past either before anything is embedded,
        so no attack can exceed them. ``calls`` runs the attack in-process or in an isolated worker.
        """
        ledger.phase = "fit"
        attack_models = calls.run("fit") or []
        ledger.start_inference(len(target))
        inversions = calls.run("invert", target)
        ledger.phase = "scoring"
        if not isinstance(inversions, list) or len(inversions) != len(target):
            n = len(inversions) if isinstance(inversions, list) else type(inversions).__name__
            raise BenchError(f"attack {cell.attack.name!r} returned {n} outputs for {len(target)} targets")
        if not all(isinstance(inv, Inversion) for inv in inversions):
            raise BenchError(f"attack {cell.attack.name!r}: invert must return bench.api.Inversion objects, one per target")
        return attack_models, inversions

    def _score(self, cell: Cell, victim: Victim, cd: CellData, inversions: list[Inversion], calls, ledger: QueryLedger) -> list[dict]:
        """Per-sample scores: the shared reconstruction metrics, the attack's own (its re-embeddings
        are charged to the ledger's ``scoring`` phase: the outputs are fixed by then), the cosine of
        the re-embedded reconstruction against the clean target, and with ``via`` the alignment's
        held-out cosine per target."""
        targets = cd.targets
        outputs = [inv.output for inv in inversions]
        rows = reconstruction_scores(outputs, targets.texts, cell.attack.output, targets.meta)
        ledger.phase = "scoring"
        extra = calls.run("extra_scores", (inversions, targets))
        if extra is not None and len(extra) != len(rows):
            raise BenchError(f"attack {cell.attack.name!r}: extra_scores returned {len(extra)} rows for {len(rows)} targets")
        for row, more in zip(rows, extra or [{}] * len(rows)):
            row.update(more)
        for row, c in zip(rows, cd.align_rows if cd.align_rows is not None else []):
            row["align_cosine"] = float(c)
        if cell.attack.output == "text":
            recon = Runner._reembedded(victim, [str(o) for o in outputs])
            if recon is not None:
                for row, c in zip(rows, cosine_rows(recon, cd.clean_target[: len(recon)])):
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

    @staticmethod
    def _reembedded(victim: Victim, texts: list[str]) -> np.ndarray | None:
        """The victim's embedding of the reconstructions; for an image victim its text tower's
        (CLIPScore-like), if it has one (None: it has none)."""
        if victim.modality == "text":
            return victim.embed_split("reconstructions", texts)
        if hasattr(victim.embedder, "embed_text"):
            return victim.embed_text_split("reconstructions", texts)
        return None

    def _record(self, cell: Cell, victim: Victim, data: DatasetSplits, cd: CellData, inversions: list[Inversion], rows: list[dict],
                attack_models: list[dict], threat: ThreatModel, t0: float, ledger: QueryLedger,
                ) -> tuple[ResultRecord, list[dict]]:
        """The cell's record (means with CIs and their declared directions) and its samples."""
        per_metric: dict[str, list[float]] = {}
        for row in rows:
            for k, v in row.items():
                per_metric.setdefault(k, []).append(v)
        higher = directions(per_metric, cell.attack.metrics)
        groups = cd.targets.groups
        metrics = summarize(per_metric, higher, seed=cell.seed, groups=groups)
        if cell.attack.output == "text":
            metrics["corpus_bleu"] = corpus_bleu([str(inv.output) for inv in inversions], cd.targets.texts, seed=cell.seed, groups=groups)
        floor, chance = self._floor(cell, victim, data, cd.targets, cd.clean_target, per_metric, higher)
        samples = [
            {"id": i, "target": t, "reconstruction": inv.output if isinstance(inv.output, str) else sorted(inv.output),
             "scores": r, "extras": inv.extras}
            for i, t, inv, r in zip(cd.targets.ids, cd.targets.texts, inversions, rows)
        ]
        embedder = victim.embedder
        models = [ModelInfo(role="victim", name=embedder.name, pretrained=bool(embedder.pretrained))]
        if cell.via is not None:
            models.append(ModelInfo(role="attacker-embedder", name=cell.via.short(), pretrained=bool(self.embedder(cell.via).pretrained)))
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
            utility=cd.utility,
            split=cell.split,
            **ci_method(groups),
            floor=floor,
            at_chance=chance,
            models=models,
            all_pretrained=all(m.pretrained for m in models),
            victim_fingerprint=victim.fingerprint,
            dataset_info=data.info,
            defense_info=defense_info(cell.defense, victim.dim, cd.fitted_on),
            alignment=cd.alignment,
            queries=self._queries(cell, ledger),
            provenance=self._provenance(t0, 0 if cell.via else ledger.attacker_total, victim),
        )
        return rec, samples

    @staticmethod
    def _floor(cell: Cell, victim: Victim, data: DatasetSplits, targets, clean_target: np.ndarray, per_metric: dict[str, list],
               higher: dict) -> tuple[dict, list[str]]:
        """The chance floor on exactly the cell's targets (``bench.floor``'s constant text, scored like
        the attack: as a text, or as its word set for a bag-of-words attack; intervals drawn the same
        way) and the metrics at chance (``bench.metrics.at_chance``). The floor itself, and attacks on
        images: none."""
        groups = targets.groups
        if not needs_floor(cell) or not len(targets):
            return {}, []
        text = chance_text(data.attacker.texts, seed=cell.seed)
        output = text if cell.attack.output == "text" else sorted(set(words(text)))
        rows = reconstruction_scores([output] * len(targets), targets.texts, cell.attack.output, targets.meta)
        if "cosine" in per_metric:  # the one text embedded once (by the harness), against every clean target
            one = victim.embed_split("reconstructions", [text])
            for row, c in zip(rows, cosine_rows(np.repeat(one, len(targets), axis=0), clean_target[: len(targets)])):
                row["cosine"] = float(c)
        floor_metric: dict[str, list] = {}
        for row in rows:
            for k, v in row.items():
                floor_metric.setdefault(k, []).append(v)
        floor = summarize(floor_metric, directions(floor_metric), seed=cell.seed, groups=groups)
        if cell.attack.output == "text":
            floor["corpus_bleu"] = corpus_bleu([text] * len(targets), targets.texts, seed=cell.seed, groups=groups)
        return floor, at_chance(per_metric, floor_metric, higher, seed=cell.seed, groups=groups)

    @staticmethod
    def _queries(cell: Cell, ledger: QueryLedger) -> dict:
        """The record's ``queries``: the ledger by phase, and whom they went to (a via cell asks its own embedder)."""
        return {**ledger.summary(), "asked": f"own embedder ({cell.via.short()})" if cell.via else "victim"}

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


def run_grid(host: Host, config, say=lambda msg: None) -> list[ResultRecord] | None:
    """Run what a validated ``bench.config.RunConfig`` describes: build the grid, load and check
    everything (``Runner.prepare``), then run the cells here or as jobs. Returns every cell's
    record, or None when the jobs were submitted and not waited for."""
    from bench.executors import submit_grid, write_manifest
    from bench.jobs import cell_spec

    cells = build_grid(host, config.attacks, config.defenses, config.embedders, config.datasets, config.seeds,
                       limit=config.limit, baseline=config.baseline, query_budget=config.query_budget,
                       fit_query_budget=config.fit_query_budget, floor=config.floor, split=config.split)
    local = config.executor == "local"
    # One settings object for the run: every cache (plugins' model, feature and caption caches too)
    # under one root, --cache-dir or else $BENCH_CACHE_DIR or ~/.cache/inversion-bench.
    # Jobs pick their device where they run; the submitter loads models on the CPU only to check the grid.
    settings = Settings(device=resolve_device(config.device) if local else "cpu", progress=not config.quiet,
                        query_budget=config.query_budget, fit_query_budget=config.fit_query_budget, isolate=config.isolate,
                        fluency=config.fluency,
                        **({"cache_dir": Path(config.cache_dir).expanduser().resolve()} if config.cache_dir else {}))
    runner = Runner(host, config.out, settings=settings, command=config.command)
    cells = runner.prepare(cells)
    options = config.options()
    say(f"{len(cells)} cells -> {config.out}/ ({f'device {runner.device}' if local else f'{config.executor} jobs, device {config.device}'})")

    def on_done(i, n, cell, status):
        say(f"[{i}/{n}] {cell.label()}: {status}")

    def on_wait(cell, holder):
        say(f"waiting: {cell.label()} is being computed by pid {holder.get('pid')} on {holder.get('host')}")

    if not local:
        return submit_grid(runner, cells, config.executor, options, config.device, wait=config.wait, say=say)
    specs = [cell_spec(c, host, config.out, settings, config.device, config.command) for c in cells]
    write_manifest(config.out, specs, "local", options)  # for `bench status`
    return runner.run(cells, on_done=on_done, on_wait=on_wait)
