"""The docs cannot drift from the code: generated references, runnable plugin snippets, live links."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]


def _gen():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_list_json_shows_default_grid_and_declared_attributes(capsys):
    code, out, _ = run_cli(capsys, "list", "defenses", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["noise"]["default_grid"] == [{"scale": 0.001}, {"scale": 0.01}, {"scale": 0.03}, {"scale": 0.1}]
    assert rows["quantize"]["default_grid"] == [{"bits": 8}, {"bits": 4}, {"bits": 1}]
    assert rows["rotation"]["declares"] == {"secret": True, "identity": False, "fitted": False}
    assert rows["pca"]["declares"]["fitted"] is True
    code, out, _ = run_cli(capsys, "list", "attacks", "--json")
    attacks = {r["name"]: r for r in json.loads(out)}
    assert attacks["bow"]["default_grid"] == [{"adaptive": False}, {"adaptive": True}]
    assert attacks["bow"]["declares"]["output"] == "words"
    assert attacks["slime"]["default_grid"] == [{"adaptive": False}]
    assert attacks["slime"]["declares"]["query_access"] == "none"
    assert attacks["zsinvert"]["declares"]["default_limit"] == 50 and attacks["zsinvert"]["declares"]["adapts_to"] == "secret"
    code, out, _ = run_cli(capsys, "list", "embedders", "--json")
    assert {r["name"]: r for r in json.loads(out)}["clip"]["declares"]["modality"] == "image"
    code, out, _ = run_cli(capsys, "list", "defenses")
    assert "default sweep: bits=8 | bits=4 | bits=1" in out


def test_generated_references_match_the_code():
    gen = _gen()
    assert gen.stale() == [], "run: python scripts/gen_reference.py (and commit docs/cli.md, docs/plugins-reference.md)"
    assert gen.main(["--check"]) == 0


def test_reference_check_fails_on_drift(tmp_path, capsys):
    gen = _gen()
    (tmp_path / "docs").mkdir()
    for name in ("cli.md", "plugins-reference.md"):
        shutil.copy(ROOT / "docs" / name, tmp_path / "docs" / name)
    assert gen.stale(tmp_path) == []
    cli_md = tmp_path / "docs" / "cli.md"
    cli_md.write_text(cli_md.read_text().replace("Evaluate only the first N targets", "Evaluate the first N targets"))
    ref = tmp_path / "docs" / "plugins-reference.md"
    ref.write_text(ref.read_text().replace("| `knn` | `20` |", "| `knn` | `10` |"))
    assert gen.stale(tmp_path) == [cli_md, ref]
    # the hand-written guide above the marker is kept; the generated part is rewritten
    text = gen.render_cli(cli_md.read_text())
    assert text.startswith("# The `bench` command line") and "Evaluate only the first N targets" in text
