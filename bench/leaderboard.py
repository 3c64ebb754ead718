"""Leaderboards built from result records: Markdown, CSV and JSON (pandas + tabulate)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from bench import __version__, seeds
from bench.cache import atomic_write_bytes
from bench.results import SCHEMA_VERSION, ResultRecord

# Column order for the metrics a table shows first; others follow alphabetically.
HEADLINE = ["word_f1", "word_precision", "word_recall", "bleu", "token_f1", "rouge_l", "exact_match", "cosine"]
UTILITY = ["ndcg@10", "recall@10"]
CONSTANT_OK = ("embedder", "dataset", "seed", "split", "targets")
AT_CHANCE = "≈"  # marks a value not shown to beat the chance floor on the same targets


def _params(params: dict, skip: tuple[str, ...] = ("adaptive",)) -> str:
    shown = {k: v for k, v in params.items() if k not in skip}
    return ",".join(f"{k}={v}" for k, v in shown.items())


def label(name: str, params: dict) -> str:
    p = _params(params)
    return f"{name}({p})" if p else name


def frame(records: list[ResultRecord]) -> pd.DataFrame:
    """One row per record: identity columns, then ``<metric>`` / ``<metric>_lo`` / ``<metric>_hi``."""
    rows = []
    for r in records:
        row = {
            "attack": r.attack.name,
            "mode": "adaptive" if r.attack.params.get("adaptive") else "naive",
            "attack_params": _params(r.attack.params),
            "_attack_params": {k: v for k, v in r.attack.params.items() if k != "adaptive"},  # for display; not exported
            "defense": label(r.defense.name, r.defense.params),
            "embedder": r.embedder.name,
            "dataset": label(r.dataset.name, r.dataset.params),
            "seed": r.seed,
            "split": r.split,
            "targets": targets(r),
            "pretrained": r.all_pretrained,
            "status": r.status,
        }
        for prefix, group in (("", r.metrics), ("utility_", r.utility)):
            for name, m in group.items():
                row[prefix + name] = m.value
                row[prefix + name + "_lo"] = m.ci_low
                row[prefix + name + "_hi"] = m.ci_high
        row["at_chance"] = ";".join(r.at_chance)
        row["ci_method"] = ci_method(r)
        row["victim_queries"] = r.provenance.victim_queries
        row["wall_time_s"] = r.provenance.wall_time_s
        row["cell_id"] = r.cell_id
        rows.append(row)
    df = pd.DataFrame(rows + floor_rows(records))
    if df.empty:
        return df
    # naive before adaptive, no defense first: the reference row leads each block
    df["_adaptive"], df["_defended"] = df["mode"] != "naive", df["defense"] != "none"
    df["_ap"], df["_def"] = df["attack_params"].map(_natural), df["defense"].map(_natural)
    keys = ["dataset", "embedder", "attack", "_ap", "_adaptive", "_defended", "_def", "seed"]
    tmp = ["_adaptive", "_defended", "_ap", "_def"]
    return df.sort_values(keys, kind="stable").drop(columns=tmp).reset_index(drop=True)


def ci_method(r: ResultRecord) -> str:
    """How a record's intervals were drawn, with the number of clusters when they were clustered."""
    return r.ci_method if r.ci_groups is None else f"{r.ci_method} ({r.ci_groups} groups)"


def floor_rows(records: list[ResultRecord]) -> list[dict]:
    """A ``chance`` row for each set of targets (embedder, dataset, seed, split, count) whose board has
    no chance cell, drawn from the ``floor`` its records carry (scored on those same targets). A
    metric whose records disagree on the floor is left blank rather than guessed."""
    from bench.floor import ATTACK

    groups: dict[tuple, list[ResultRecord]] = {}
    for r in records:
        key = (r.embedder.name, label(r.dataset.name, r.dataset.params), r.seed, r.split, targets(r))
        groups.setdefault(key, []).append(r)
    rows = []
    for (embedder, dataset, seed, split, n), group in groups.items():
        if any(r.attack.name == ATTACK for r in group):
            continue
        seen: dict[str, set] = {}
        for r in group:
            for name, m in r.floor.items():
                seen.setdefault(name, set()).add((m.value, m.ci_low, m.ci_high))
        if not seen:
            continue
        row = {"attack": ATTACK, "mode": "naive", "attack_params": "", "_attack_params": {}, "defense": "none",
               "embedder": embedder, "dataset": dataset, "seed": seed, "split": split, "targets": n, "pretrained": True,
               "status": "floor of the records", "at_chance": "", "ci_method": ci_method(group[0]), "victim_queries": 0,
               "cell_id": None}
        for name, values in seen.items():
            if len(values) == 1:
                row[name], row[name + "_lo"], row[name + "_hi"] = next(iter(values))
        rows.append(row)
    return rows


def targets(r: ResultRecord) -> int | None:
    """How many targets a record's metrics average over (its limit when it has no metric)."""
    ns = [m.n for m in r.metrics.values() if m.n]
    return max(ns) if ns else r.limit


def _natural(text: str) -> str:
    """A sort key in which numbers compare by value: pairs=5 before pairs=10, 0.001 before 0.01."""
    return re.sub(r"\d+(?:\.\d+)?", lambda m: f"{float(m.group()):030.12f}", text)


natural_key = _natural


def headline(records: list[ResultRecord]) -> list[str] | None:
    """The metrics a table shows: every record's headline in order (None when one shows all)."""
    from bench.floor import ATTACK

    ranked = [r for r in records if r.attack.name != ATTACK] or records  # the floor's row follows the attacks' headline
    heads = [r.headline for r in ranked]
    if not heads or any(h is None for h in heads):
        return None
    return list(dict.fromkeys(m for h in heads for m in h))


def directions(records: list[ResultRecord]) -> dict[str, bool | None]:
    """Each column's declared direction, as the records store it (utility columns prefixed ``utility_``)."""
    out: dict[str, bool | None] = {}
    for r in records:
        for prefix, group in (("", r.metrics), ("utility_", r.utility)):
            for name, m in group.items():
                out.setdefault(prefix + name, m.higher_is_better)
    return out


def record_headline(r: ResultRecord) -> list[str]:
    """A record's headline metrics; an attack that shows every metric (None) gets ``HEADLINE``'s
    order, then the rest naturally."""
    head = r.headline
    if head is None:
        head = [m for m in HEADLINE if m in r.metrics] + sorted((m for m in r.metrics if m not in HEADLINE), key=natural_key)
    return list(head)


def headline_of(records: list[ResultRecord], names: list[str]) -> list[str]:
    """The board's headline metrics: the union of its records' headlines, in order, present in ``names``."""
    return [m for m in dict.fromkeys(m for r in records for m in record_headline(r)) if m in names]


def metric_order(names: list[str], head: list[str]) -> list[str]:
    """Headline metrics first (declared order), then the rest in natural order (@5 before @10)."""
    return list(head) + sorted((m for m in names if m not in head), key=natural_key)


def metric_columns(df: pd.DataFrame, records: list[ResultRecord] | None = None) -> list[str]:
    base = [c for c in df.columns if f"{c}_lo" in df.columns]
    metrics = [c for c in base if not c.startswith("utility_")]
    head = headline_of(records, metrics) if records else [m for m in HEADLINE if m in metrics]
    return metric_order(metrics, head) + [f"utility_{u}" for u in UTILITY if f"utility_{u}" in base]


def display(df: pd.DataFrame, compact: bool = False, digits: int = 3, metrics: list[str] | None = None) -> pd.DataFrame:
    """Human table: ``value ±half-CI`` strings; non-pretrained rows are marked.

    ``compact`` drops identity columns that are the same on every row (see ``caption``);
    ``metrics`` keeps only those leakage metrics, in that order (utility always shown).
    """
    if df.empty:
        return df
    cols = shown_metrics(df, metrics)
    ident = [c for c in ("attack", "mode", "defense", "embedder", "dataset", "seed", "split", "targets")
             if c in df.columns and not (compact and c in CONSTANT_OK and df[c].nunique() == 1)]
    out = df[ident].copy()
    # e.g. a sweep over the attacker's data size: show just the keys swept within each attack
    params = list(df["_attack_params"]) if "_attack_params" in df.columns else [_parse(p) for p in df["attack_params"]]
    varying = {a: _varying_params([p for p, b in zip(params, df["attack"]) if b == a]) for a in df["attack"].unique()}
    if any(varying.values()):
        shown = [",".join(f"{k}={p[k]}" for k in varying[a] if k in p) for a, p in zip(df["attack"], params)]
        out.insert(1, "attack_params", shown)
    out["attack"] = attack_names(df)
    chance = [set(str(a).split(";")) if isinstance(a, str) and a else set() for a in df.get("at_chance", [""] * len(df))]
    for c in cols:
        if c in df.columns:
            out[c.replace("utility_", "")] = [value_text(v, (hi - lo) / 2, c, c in low, digits)
                                              for v, lo, hi, low in zip(df[c], df[f"{c}_lo"], df[f"{c}_hi"], chance)]
    return out


def shown_metrics(df: pd.DataFrame, metrics: list[str] | None = None) -> list[str]:
    """The metric columns a table shows: ``metrics`` in their order (all when None), then utility."""
    cols = metric_columns(df)
    if metrics is not None:
        cols = [m for m in metrics if m in cols] + [c for c in cols if c.startswith("utility_")]
    return cols


def attack_names(df: pd.DataFrame) -> list[str]:
    """The attack column, rows from randomly initialised models marked (not pretrained)."""
    return [a if p else f"{a} (not pretrained)" for a, p in zip(df["attack"], df["pretrained"].astype(bool))]


def value_text(v, half, metric: str, at_chance: bool, digits: int = 3) -> str:
    """One table cell: ``value ±half`` (BLEU to one decimal), marked when at chance; "" for no value."""
    if pd.isna(v):
        return ""
    d = 1 if metric in ("bleu", "corpus_bleu") else digits
    return (f"{v:.{d}f} ±{half:.{d}f}" if not pd.isna(half) else f"{v:.{d}f}") + (f" {AT_CHANCE}" if at_chance else "")


def across_seeds_markdown(df: pd.DataFrame, metrics: list[str], digits: int = 3) -> str:
    """The across-seeds table (``bench.seeds.across_seeds``): ``mean ±sd`` per metric and the seeds
    each row averages; identity columns equal on every row are left out."""
    table = seeds.across_seeds(df, metrics)
    const = [c for c in ("embedder", "dataset", "split", "targets") if c in table.columns and table[c].nunique() == 1]
    skip = set(const) | {"pretrained", "attack_params"}
    shown = table[[c for c in seeds.IDENTITY if c in table.columns and c not in skip]].copy()
    if "pretrained" in table.columns:
        shown["attack"] = attack_names(table)
    shown["seeds"] = table["seed_list"]
    for m in metrics:
        if m in table.columns:
            shown[m.replace("utility_", "")] = [value_text(v, sd, m, m in str(low).split(";"), digits)
                                                for v, sd, low in zip(table[m], table[f"{m}_sd"], table["at_chance"])]
    return shown.to_markdown(index=False)


def _parse(params: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in params.split(",") if "=" in kv)


def _varying_params(parsed: list[dict]) -> list[str]:
    keys = sorted({k for p in parsed for k in p})
    return [k for k in keys if len({str(p.get(k)) for p in parsed}) > 1]


def caption(df: pd.DataFrame) -> str:
    """The identity values a compact table leaves out."""
    parts = [f"{c}: {df[c].iloc[0]}" for c in CONSTANT_OK if not df.empty and c in df.columns and df[c].nunique() == 1]
    return "; ".join(parts)


def to_markdown(df: pd.DataFrame, metrics: list[str] | None = None) -> str:
    if df.empty:
        return "(no results)"
    cap = caption(df)
    table = display(df, compact=True, metrics=metrics).to_markdown(index=False)
    if "at_chance" in df.columns and df["at_chance"].astype(str).str.len().gt(0).any():
        table += (f"\n\n{AT_CHANCE}: at chance, not shown above the chance floor (the `chance` row's constant text) on the "
                  "same targets: the paired-difference 95% CI reaches 0 (docs/metrics.md)")
    out = (f"{cap}\n\n" if cap else "") + table
    if seeds.several(df):
        out += ("\n\nAcross seeds: the mean of the seeds' values ± the standard deviation between seeds (each seed's "
                f"own CI, above, covers its targets only); {AT_CHANCE}: at chance in at least one seed.\n\n"
                + across_seeds_markdown(df, shown_metrics(df, metrics)))
    return out


def write(records: list[ResultRecord], out_dir: Path, name: str) -> list[Path]:
    """Write ``out_dir/name/leaderboard.{md,csv,json}`` (a rebuild replaces them atomically)."""
    df = frame(records)
    public = df.drop(columns=[c for c in df.columns if c.startswith("_")])
    target = Path(out_dir) / name
    built = datetime.now(UTC).isoformat(timespec="seconds")
    header = (
        f"# Leaderboard: {name}\n\n"
        f"Built {built} by inversion-bench {__version__} from {len(records)} result records "
        f"(schema {SCHEMA_VERSION}). Values are means with bootstrap 95% CI half-widths (clusters resampled "
        f"where the data declares them: see ci_method); a `chance` row is the chance floor, one constant text chosen on the attacker's own data "
        f"(on a board without a chance cell, the floor its records carry, scored on the same targets); "
        f"utility is retrieval on the defended embeddings. Rows marked (not pretrained) come from "
        f"randomly initialised models and are not findings.\n\n"
    )
    shown = headline(records)
    if shown:
        header += "The table shows the attacks' headline metrics; leaderboard.csv and leaderboard.json hold every metric.\n\n"
    payload = {
        "name": name,
        "built": built,
        "bench_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "headline": shown,
        "higher_is_better": directions(records),
        "rows": json.loads(public.to_json(orient="records")) if not public.empty else [],
    }
    if seeds.several(df):
        payload["across_seeds"] = json.loads(seeds.across_seeds(df, metric_columns(df)).to_json(orient="records"))
    paths = [target / "leaderboard.md", target / "leaderboard.csv", target / "leaderboard.json"]
    for debris in target.glob(".leaderboard.*.tmp"):  # temp files of a build that was killed
        debris.unlink(missing_ok=True)
    bodies = [header + to_markdown(df, metrics=shown) + "\n", public.to_csv(index=False), json.dumps(payload, indent=2) + "\n"]
    for path, body in zip(paths, bodies):
        atomic_write_bytes(path, body.encode(), overwrite=True)
    return paths
