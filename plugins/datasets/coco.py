"""COCO-format image captions: images (what an image victim embeds) with their captions (the ground truth)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from pydantic import Field

from bench.api import SPLIT_ORDER, Dataset, DatasetParams, DatasetSplits, Split
from bench.errors import BenchError, one_line
from bench.hookspecs import hookimpl
from bench.models import describe


class Coco(Dataset):
    """COCO-format image captions from a local copy (captions_*.json + image folder); no utility task.

    Each captioned image is one item: the victim embeds its file (``images``); its first caption (by
    annotation id) is the text an inversion is scored against; ``meta["captions"]`` holds them all.
    Image ids are shuffled with ``split_seed`` and dealt to the target, leaked and attacker splits in
    that order, each split capped by the images left (``info["counts"]`` says what was used).
    """

    name = "coco"

    class Params(DatasetParams):
        attacker: int = Field(20000, ge=1, description="images in the attacker split (capped by the images left)")
        leaked: int = Field(1000, ge=0, description="leaked (image, embedding) pairs (capped by the images left)")
        target: int = Field(1000, ge=1, description="private target images (capped by the captioned images)")
        annotations: str = Field(..., min_length=1, description="COCO captions file, e.g. annotations/captions_val2017.json")
        images: str | None = Field(
            None, description="image folder (default: the folder named after the file, e.g. val2017, beside it or beside "
            "its folder; else the file's own folder)"
        )

    def _image_dir(self, ann: Path) -> Path:
        if self.params.images:
            folder = Path(self.params.images).expanduser()
            if not folder.is_dir():
                raise BenchError(f"COCO image folder {folder} does not exist: pass coco:images=<folder with the image files>")
            return folder.resolve()
        stem = ann.stem.removeprefix("captions_")
        for folder in (ann.parent / stem, ann.parent.parent / stem):
            if folder.is_dir():
                return folder.resolve()
        return ann.parent.resolve()

    def load(self) -> DatasetSplits:
        import json

        p = self.params
        ann = Path(p.annotations).expanduser()
        if not ann.is_file():
            raise BenchError(f"COCO annotations file {ann} does not exist: pass coco:annotations=<path to captions_*.json>")
        raw = ann.read_bytes()
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise BenchError(f"{ann} is not valid JSON ({one_line(e, 120)}): pass a COCO captions file") from None
        try:
            files = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
            rows = sorted((int(a.get("id", i)), int(a["image_id"]), " ".join(str(a["caption"]).split()))
                          for i, a in enumerate(data["annotations"]))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BenchError(
                f"{ann} is not a COCO captions file ({describe(e)}): it needs images [{{id, file_name}}] "
                f"and annotations [{{image_id, caption}}]"
            ) from None
        captions: dict[int, list[str]] = {}
        for _, image_id, caption in rows:
            if image_id in files and caption:
                captions.setdefault(image_id, []).append(caption)
        ids = sorted(captions)
        if not ids:
            raise BenchError(f"{ann} has no captioned images: pass a COCO captions file (captions_*.json)")
        folder = self._image_dir(ann)
        order = [ids[i] for i in np.random.default_rng(p.split_seed).permutation(len(ids))]
        sizes = {"target": p.target, "leaked": p.leaked, "attacker": p.attacker}
        splits, start = {}, 0
        for name in SPLIT_ORDER:
            chunk = order[start : start + sizes[name]]
            start += len(chunk)
            paths = [str(folder / files[i]) for i in chunk]
            missing = [x for x in paths if not os.path.isfile(x)]
            if missing:
                raise BenchError(
                    f"image {missing[0]} of {ann.name} is missing ({len(missing)} of the {name} split's {len(paths)}): "
                    f"pass coco:images=<the folder holding {files[chunk[0]]}>"
                )
            splits[name] = Split(
                ids=[str(i) for i in chunk], texts=[captions[i][0] for i in chunk],
                meta=[{"captions": captions[i]} for i in chunk], images=paths,
            )
        if not splits["attacker"].ids:
            raise BenchError(
                f"{ann.name} has {len(ids)} captioned images and target+leaked = {p.target + p.leaked} leave none for the "
                f"attacker: lower coco:target=...,leaked=..."
            )
        info = {
            "source": str(ann.resolve()),
            "images": str(folder),
            "annotations_sha256": hashlib.sha256(raw).hexdigest(),
            "n_images": len(files),
            "n_captioned": len(ids),
            "n_captions": sum(len(c) for c in captions.values()),
            "split_by": "image",
            "counts": {k: len(v) for k, v in splits.items()},
        }
        return DatasetSplits(attacker=splits["attacker"], leaked=splits["leaked"], target=splits["target"], info=info)


@hookimpl
def register_datasets(register):
    register(Coco)
