"""Markdown tables for docs/results.md from result records: privacy-utility per defense setting
(naive and adaptive leakage beside utility and the privacy parameter) and the via= transfer table.

    python scripts/defense_tables.py privacy RESULTS_DIR [RESULTS_DIR ...]
    python scripts/defense_tables.py transfer RESULTS_DIR [RESULTS_DIR ...]
"""

from __future__ import annotations

import sys

from bench.results import load_records

PARAM = {"dp": "epsilon", "ldp": "epsilon", "pca": "k", "pq": "m", "noise": "scale", "quantize": "bits"}


def _f(m: dict, key: str) -> str:
    v = m.get(key)
    return "–" if v is None else f"{v.value:.3f}"


def _ci(m: dict, key: str) -> str:
    v = m.get(key)
    return "–" if v is None else f"{v.value:.3f} ±{(v.ci_high - v.ci_low) / 2:.3f}"


def _setting(rec) -> tuple[str, str]:
    name = rec.defense.name
    key = PARAM.get(name)
    value = rec.defense.params.get(key) if key else None
    extra = ""
    info = rec.defense_info
    if name == "dp":
        extra = f"σ={info.get('sigma', info.get('laplace_b', 0)):.3g}"
    elif name == "ldp":
        extra = f"ε·d={info.get('epsilon_total'):g}"
    elif name == "pq":
        extra = f"{info.get('code_bits')} bits"
    label = f"{name} {key}={value:g}" if key else name
    return label, extra


def privacy(records) -> str:
    rows: dict[tuple, dict] = {}
    for r in records:
        label, extra = _setting(r)
        row = rows.setdefault((r.embedder.name, label), {"extra": extra, "order": (r.embedder.name, r.defense.name, -float(r.defense.params.get(PARAM.get(r.defense.name, ""), 0) or 0))})
        mode = "adaptive" if r.attack.params.get("adaptive") else "naive"
        row[mode] = r.metrics
        row["utility"] = r.utility
    out = ["| victim | defense | privacy | naive word F1 | adaptive word F1 | nDCG@10 | recall@10 |", "|---|---|---|---|---|---|---|"]
    for (victim, label), row in sorted(rows.items(), key=lambda kv: (kv[1]["order"][0], kv[1]["order"][1] != "none", kv[1]["order"][1], kv[1]["order"][2])):
        naive = _ci(row.get("naive", {}), "word_f1")
        adaptive = _f(row.get("adaptive", {}), "word_f1") if "adaptive" in row else "(= naive)"
        out.append(f"| {victim} | {label} | {row['extra']} | {naive} | {adaptive} | {_f(row['utility'], 'ndcg@10')} | {_f(row['utility'], 'recall@10')} |")
    return "\n".join(out)


def transfer(records) -> str:
    out = ["| attacker's embedder | victim | defense | leaked pairs | map | held-out cosine | word F1 | victim queries |",
           "|---|---|---|---:|---|---:|---|---:|"]
    keyed = []
    for r in records:
        via = r.threat_model.via or "(victim itself, black-box)"
        a = r.alignment or {}
        label, _ = _setting(r)
        keyed.append(((via, r.embedder.name, label, r.threat_model.leaked_pairs),
                      f"| {via} | {r.embedder.name} | {label} | {r.threat_model.leaked_pairs:,} | {a.get('method', '–')} | "
                      f"{a.get('heldout_cosine', float('nan')):.3f} | {_ci(r.metrics, 'word_f1')} | {r.provenance.victim_queries:,} |"))
    return "\n".join(out + [line for _, line in sorted(keyed)])


if __name__ == "__main__":
    kind, paths = sys.argv[1], sys.argv[2:]
    recs = load_records(paths)
    print(privacy(recs) if kind == "privacy" else transfer(recs))
