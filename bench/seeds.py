"""Boards published with several seeds: one row per cell that differs only by its seed, with the
mean over seeds and the standard deviation between them (a seed's own CI covers its targets only).
``bench.leaderboard`` renders it."""

from __future__ import annotations

import pandas as pd

# What makes two records the same cell but for the seed (leaderboard.frame's identity columns).
IDENTITY = ["attack", "mode", "attack_params", "defense", "embedder", "dataset", "split", "targets", "pretrained"]


def across_seeds(df: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per group of ``df`` (``leaderboard.frame``'s rows) equal in every identity column but
    ``seed``: ``seeds`` (how many), then for each metric ``<m>`` (the mean of the seeds' values) and
    ``<m>_sd`` (their sample standard deviation; NaN for one seed). ``at_chance`` lists the metrics
    at chance in any seed. Ok records only; groups keep the frame's order."""
    if df.empty:
        return pd.DataFrame()
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    ident = [c for c in IDENTITY if c in ok.columns]
    rows = []
    for key, g in ok.groupby(ident, sort=False, dropna=False):
        row = dict(zip(ident, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = int(g["seed"].nunique())
        row["seed_list"] = ",".join(str(s) for s in sorted(g["seed"].unique()))
        for m in metrics:
            if m in g.columns:
                vals = g[m].dropna()
                row[m] = float(vals.mean()) if len(vals) else float("nan")
                row[f"{m}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        chance = {x for a in g.get("at_chance", []) if isinstance(a, str) for x in a.split(";") if x}
        row["at_chance"] = ";".join(sorted(chance))
        rows.append(row)
    return pd.DataFrame(rows)


def several(df: pd.DataFrame) -> bool:
    """Whether some cell of ``df`` has more than one seed."""
    table = across_seeds(df, [])
    return not table.empty and bool((table["seeds"] > 1).any())

