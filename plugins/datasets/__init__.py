"""Built-in datasets, one per module: ``wordnet`` (WordNet 3.0 example sentences), ``pii_notes``
(synthetic clinical notes carrying PII) and ``coco`` (COCO-format image captions, for image victims).

All are deterministic given their parameters (``split_seed`` and the split sizes), their splits
are disjoint, and the target split is filled first (``bench.api.SPLIT_ORDER``), so growing the
attacker split never changes the target texts. ``DatasetSplits.info`` describes the data actually
used (source, version, content hash, counts) so results and caches can be keyed on it.
"""

from bench_plugins.datasets.coco import Coco
from bench_plugins.datasets.pii_notes import NOTE_TEMPLATES, PII_LABELS, PIINotes, generate_notes
from bench_plugins.datasets.wordnet import WordNet, load_wordnet, parse_gloss, wordnet_dir

__all__ = ["NOTE_TEMPLATES", "PII_LABELS", "Coco", "PIINotes", "WordNet", "generate_notes", "load_wordnet", "parse_gloss", "wordnet_dir"]
