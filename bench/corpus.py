"""The training corpus of the shipped model: ``build.sh``'s recordings, split once and for good.

``bash ../shared/data/train/build.sh OUT`` builds about 5 hours of real full-band recordings
from Debian packages (``OUT/MANIFEST.tsv``: one row per file, with its category). The split
is a pure function of each file's name (a hash), stratified by category, so every build of
the corpus gives the same split: about 1 file in ``TEST_EVERY`` is held out for testing,
``VAL_PER_CATEGORY`` files per category validate, the rest train.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

# Beside the checkout, like the dev recordings: ``bash ../shared/data/train/build.sh ../traindata``.
DEFAULT_TRAIN_DIR = (Path(__file__).resolve().parent.parent / ".." / "traindata").resolve()
TEST_EVERY = 12
VAL_PER_CATEGORY = 10
# build.sh's categories, as the tables name them.
CATEGORIES = {"speech": "speech", "music": "music", "sfx": "effects", "env": "ambiences"}


def _rank(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:12], 16)


@dataclass
class CorpusSplit:
    root: Path
    train: list[Path]
    val: list[Path]
    test: list[Path]
    category: dict[Path, str]  # path -> table category
    minutes: dict[Path, float]
    license: dict[Path, str]

    def total_minutes(self, files: list[Path]) -> float:
        return sum(self.minutes[p] for p in files)

    def by_category(self, files: list[Path]) -> dict[str, tuple[int, float]]:
        """Table category -> (files, minutes)."""
        out: dict[str, tuple[int, float]] = {}
        for path in files:
            n, m = out.get(self.category[path], (0, 0.0))
            out[self.category[path]] = (n + 1, m + self.minutes[path])
        return out


def corpus_split(root: Path) -> CorpusSplit | None:
    """The split of a ``build.sh`` output folder; ``None`` where it has no ``MANIFEST.tsv``."""
    manifest = root / "MANIFEST.tsv"
    if not manifest.is_file():
        return None
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    train, val, test = [], [], []
    category, minutes, license = {}, {}, {}
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    for name, members in sorted(by_category.items()):
        members.sort(key=lambda r: _rank(r["file"]))
        for index, row in enumerate(members):
            path = (root / row["file"]).resolve()
            category[path] = CATEGORIES.get(name, name)
            minutes[path] = float(row["duration_s"]) / 60
            license[path] = row["license"]
            if index % TEST_EVERY == 0:
                test.append(path)
            elif len([p for p in val if category[p] == category[path]]) < VAL_PER_CATEGORY:
                val.append(path)
            else:
                train.append(path)
    return CorpusSplit(root, sorted(train), sorted(val), sorted(test), category, minutes, license)
