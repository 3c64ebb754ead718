"""The user's own texts as datasets: ``file`` (JSONL, JSON, CSV, TSV or plain text) and ``hf-dataset``
(a Hugging Face ``datasets`` dataset from a local folder, or the hub for users who reach it).

Both deal their texts into disjoint target / defender / leaked / attacker splits with
``bench.splits.deal`` (seeded, whole groups at a time, target first, as ``wordnet`` does), put
content hashes in ``dataset_info``, and stop with one line naming a missing file or column.
An optional retrieval corpus plus qrels (query id = a text's id) gives the utility measurement.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bench.api import Dataset, DatasetSplits, Params, RetrievalTask
from bench.cache import texts_hash
from bench.errors import BenchError, one_line
from bench.hookspecs import hookimpl
from bench.splits import deal, default_sizes

Format = Literal["auto", "jsonl", "json", "csv", "tsv", "txt"]
QUERY_ID_COLUMNS = ("query-id", "query_id", "qid")
DOC_ID_COLUMNS = ("corpus-id", "corpus_id", "doc-id", "doc_id", "docid")


class UserDataParams(Params):
    column: str = Field("text", min_length=1, description="field / column holding the text (ignored for plain text)")
    id_column: str | None = Field(None, description="field holding a text's id (default: 'id' when every row has one, else the row number, from 1)")
    group_column: str | None = Field(None, description="field whose equal values must stay in one split (e.g. a document id)")
    target: int | None = Field(None, ge=1, description="private target texts (default: a fifth of the texts, at most 1000)")
    leaked: int | None = Field(None, ge=0, description="leaked (text, embedding) pairs (default: a tenth, at most 1000)")
    attacker: int | None = Field(None, ge=1, description="the attacker's texts (default: all the others)")
    defender: int = Field(0, ge=0, description="texts the defender owns, for fitting pca/pq when there is no corpus")
    corpus: str | None = Field(None, description="retrieval corpus file (same formats) for the utility measurement; needs qrels")
    corpus_column: str = Field("text", min_length=1, description="text field of the corpus file")
    corpus_id_column: str = Field("id", min_length=1, description="id field of the corpus file (qrels point at it)")
    qrels: str | None = Field(None, description="relevance file (csv/tsv/jsonl with query-id, corpus-id and optional score columns)")
    split_seed: int = Field(0, ge=0, description="seed of the split (fixed across cell seeds)")


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}.get(suffix, "txt")


def read_rows(path: Path, fmt: str, what: str) -> tuple[list[Any], bytes]:
    """(rows, raw bytes) of a data file: dicts (or bare strings) for jsonl/json/csv/tsv, strings for txt."""
    if not path.is_file():
        raise BenchError(f"{what} {path} does not exist: check the path")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BenchError(f"{what} {path} is not UTF-8 ({e.reason} at byte {e.start}): re-encode it as UTF-8") from None
    fmt = _format(path, fmt)
    if fmt == "txt":
        return [line.strip() for line in text.splitlines() if line.strip()], raw
    if fmt in ("csv", "tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t")
        return list(reader), raw
    if fmt == "json":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise BenchError(f"{what} {path} is not valid JSON ({one_line(e, 120)}): fix it, or name the format with format=") from None
        if not isinstance(data, list):
            raise BenchError(f"{what} {path} holds a JSON {type(data).__name__}, not a list of rows: write a list, or JSON lines (.jsonl)")
        return data, raw
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            raise BenchError(f"{path}:{lineno} is not a JSON line ({one_line(e, 100)}): one JSON object per line, or format=txt") from None
    return rows, raw


def column_values(rows: list[Any], column: str, where: str, required: bool = True, text: bool = True) -> list[str] | None:
    """The string value of ``column`` in every row (a bare string row is its own text). A text
    column takes JSON strings only; an id or group column strings or integers (never turned into
    text silently: ``{"text": 5}`` and ``{"text": null}`` are refused by row)."""
    allowed = (str,) if text else (str, int)
    out = []
    for i, row in enumerate(rows, 1):
        if isinstance(row, str) and column in ("text", "_bare"):
            value = row
        elif isinstance(row, dict) and column in row and (row[column] is not None or required):
            value = row[column]
            if value is None:
                raise BenchError(f"{where}: row {i} has {column!r}: null: give every row a value there, or drop the row")
            if not isinstance(value, allowed) or isinstance(value, bool):
                kind = "a string" if text else "a string or an integer"
                raise BenchError(f"{where}: row {i} has {column!r}: {json.dumps(value)[:40]} ({_json_type(value)}), "
                                 f"not {kind}: write it as one (e.g. {json.dumps(str(value))[:40]})")
        else:
            if not required:
                return None
            fields = sorted(row) if isinstance(row, dict) else [type(row).__name__]
            raise BenchError(f"{where}: row {i} has no field {column!r} (it has {', '.join(map(str, fields))[:120]}): pass column=<the field holding the text>")
        out.append(" ".join(str(value).split()))
    return out


def _json_type(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _ids(rows: list[Any], id_column: str | None, where: str) -> list[str]:
    if id_column:
        ids = column_values(rows, id_column, where, text=False)
    else:
        ids = column_values(rows, "id", where, required=False, text=False) or [str(i) for i in range(1, len(rows) + 1)]
    dup = len(ids) - len(set(ids))
    if dup:
        raise BenchError(f"{where}: {dup} ids repeat in its id field: give each row a unique id, or pass id_column= another field")
    return ids


class _UserData(Dataset):
    """Shared by ``file`` and ``hf-dataset``: splits, retrieval task and info from (ids, texts, groups)."""

    def _splits(self, ids: list[str], texts: list[str], groups: list[str] | None, info: dict, what: str) -> DatasetSplits:
        p = self.params
        keep = [i for i, t in enumerate(texts) if t]  # empty texts carry nothing to invert
        ids, texts = [ids[i] for i in keep], [texts[i] for i in keep]
        groups = [groups[i] for i in keep] if groups is not None else None
        if not texts:
            raise BenchError(f"{what} has no non-empty texts: check column={p.column}")
        sizes = default_sizes(len(set(texts)), p.target, p.leaked, p.attacker, p.defender)
        parts = deal(ids, texts, groups, sizes, p.split_seed, what)
        if not parts["attacker"].texts:
            raise BenchError(f"{what} has {len(set(texts))} distinct texts and leaves none for the attacker: lower target/leaked or add texts")
        retrieval, retrieval_info = self._retrieval(parts["target"].ids)
        info = {
            **info,
            "n_total": len(texts),
            "n_distinct": len(set(texts)),
            "texts_sha256": texts_hash(texts, 64),
            "split_by": p.group_column or "text",
            "counts": {k: len(v) for k, v in parts.items() if k != "dev"},  # no dev split here
            **retrieval_info,
        }
        return DatasetSplits(
            attacker=parts["attacker"], leaked=parts["leaked"], target=parts["target"], retrieval=retrieval, info=info,
            defender=parts["defender"] if p.defender else None,
        )

    def _retrieval(self, target_ids: list[str]) -> tuple[RetrievalTask | None, dict]:
        p = self.params
        if p.corpus is None and p.qrels is None:
            return None, {}
        if p.corpus is None or p.qrels is None:
            raise BenchError("a retrieval task needs both corpus=FILE and qrels=FILE: pass both, or neither")
        corpus_rows, corpus_raw = read_rows(Path(p.corpus).expanduser(), "auto", "corpus file")
        where = f"corpus file {p.corpus}"
        corpus_texts = column_values(corpus_rows, p.corpus_column, where)
        corpus_ids = _ids(corpus_rows, p.corpus_id_column, where)
        qrel_rows, qrels_raw = read_rows(Path(p.qrels).expanduser(), "auto", "qrels file")
        if not qrel_rows or not isinstance(qrel_rows[0], dict):
            raise BenchError(f"qrels file {p.qrels} has no rows with named columns: write csv/tsv/jsonl with query-id and corpus-id columns")
        names = set(qrel_rows[0])
        qcol = next((c for c in QUERY_ID_COLUMNS if c in names), None)
        dcol = next((c for c in DOC_ID_COLUMNS if c in names), None)
        if qcol is None or dcol is None:
            raise BenchError(
                f"qrels file {p.qrels} has columns {sorted(names)}: it needs a query id column ({'/'.join(QUERY_ID_COLUMNS)}) "
                f"and a document id column ({'/'.join(DOC_ID_COLUMNS)})"
            )
        known, qrels = set(corpus_ids), {}
        for i, row in enumerate(qrel_rows, 1):
            score = row.get("score", row.get("relevance", 1))
            try:
                relevant = float(score) > 0
            except (TypeError, ValueError):
                raise BenchError(f"qrels file {p.qrels}: row {i} has score {score!r}, not a number") from None
            doc = str(row.get(dcol))
            if doc not in known:
                raise BenchError(f"qrels file {p.qrels}: row {i} names document {doc!r}, which is not in the corpus file's {p.corpus_id_column!r} field")
            if relevant:
                qrels.setdefault(str(row.get(qcol)), set()).add(doc)
        judged = sum(1 for t in target_ids if t in qrels)
        if not judged:
            raise BenchError(f"qrels file {p.qrels} judges none of the target texts: its {qcol} values must be the texts' ids")
        task = RetrievalTask(corpus_ids=corpus_ids, corpus_texts=corpus_texts, qrels={t: qrels[t] for t in target_ids if t in qrels})
        info = {"corpus": str(Path(p.corpus).resolve()), "corpus_sha256": _sha256(corpus_raw), "qrels_sha256": _sha256(qrels_raw),
                "n_corpus": len(corpus_ids), "n_judged_targets": judged}
        return task, info


class FileData(_UserData):
    """Your own texts from a JSONL, JSON, CSV, TSV or plain-text file (one text per line, or a named column).

    Optional retrieval corpus + qrels files give the utility measurement. Split like ``wordnet``:
    seeded, disjoint, target first, whole ``group_column`` groups at a time.
    """

    name = "file"

    class Params(UserDataParams):
        path: str = Field(..., min_length=1, description="the texts: .jsonl/.ndjson, .json (a list), .csv, .tsv, or any other file as plain text")
        format: Format = Field("auto", description="file format (auto: from the extension)")

    def load(self) -> DatasetSplits:
        p = self.params
        path = Path(p.path).expanduser()
        rows, raw = read_rows(path, p.format, "data file")
        if _format(path, p.format) == "txt":
            rows = [{"text": t} for t in rows]
            column = "text"
        else:
            column = p.column
        where = f"data file {path}"
        texts = column_values(rows, column, where)
        ids = _ids(rows, p.id_column, where)
        groups = column_values(rows, p.group_column, where, text=False) if p.group_column else None
        info = {"source": str(path.resolve()), "format": _format(path, p.format), "sha256": _sha256(raw)}
        return self._splits(ids, texts, groups, info, where)


class HFData(_UserData):
    """A Hugging Face ``datasets`` dataset: a folder saved with save_to_disk, a local data folder, or a hub id.

    ``column`` names the text column (and ``id_column`` / ``group_column`` the others). Needs
    ``pip install datasets``; the hub is reached only when it is reachable (HF_HUB_OFFLINE unset).
    """

    name = "hf-dataset"

    class Params(UserDataParams):
        path: str = Field(..., min_length=1, description="folder from save_to_disk, a local data folder/file, or a hub id")
        split: str = Field("train", min_length=1, description="which split of the dataset to read")
        config: str | None = Field(None, description="the dataset's configuration name, if it has several")

    def _open(self):
        try:
            import datasets
        except ImportError:
            raise BenchError('dataset \'hf-dataset\' needs the Hugging Face datasets library: pip install ".[datasets]"') from None
        p = self.params
        folder = Path(p.path).expanduser()
        try:
            if folder.is_dir() and ((folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()):
                ds = datasets.load_from_disk(str(folder))
                if isinstance(ds, datasets.DatasetDict):
                    if p.split not in ds:
                        raise BenchError(f"dataset {folder} has splits {sorted(ds)}, not {p.split!r}: pass split=<one of them>")
                    ds = ds[p.split]
                return ds, str(folder.resolve())
            if p.path.startswith(("/", ".", "~")) and not folder.exists():
                raise BenchError(f"dataset folder {folder} does not exist: check the path")
            return datasets.load_dataset(str(folder) if folder.exists() else p.path, p.config, split=p.split), p.path
        except BenchError:
            raise
        except Exception as e:  # noqa: BLE001 - a failed load is one line naming the dataset
            raise BenchError(f"cannot load dataset {p.path!r} (split {p.split!r}): {type(e).__name__}: {one_line(e, 160)}") from None

    def load(self) -> DatasetSplits:
        p = self.params
        ds, source = self._open()
        names = list(ds.column_names)
        for field, col in (("column", p.column), ("id_column", p.id_column), ("group_column", p.group_column)):
            if col is not None and col not in names:
                raise BenchError(f"dataset {p.path!r} has no column {col!r} (it has {', '.join(names)[:160]}): pass {field}=<one of them>")
        where = f"dataset {p.path!r}"
        texts = [" ".join(str(t).split()) if t is not None else "" for t in ds[p.column]]
        if p.id_column:
            ids = [str(x) for x in ds[p.id_column]]
        elif "id" in names:
            ids = [str(x) for x in ds["id"]]
        else:
            ids = [str(i) for i in range(1, len(texts) + 1)]
        if len(set(ids)) != len(ids):
            raise BenchError(f"{where}: ids repeat in its id column: pass id_column= a unique column")
        groups = [str(x) for x in ds[p.group_column]] if p.group_column else None
        info = {"source": source, "split": p.split, "config": p.config}
        return self._splits(ids, texts, groups, info, where)


@hookimpl
def register_datasets(register):
    register(FileData)
    register(HFData)
