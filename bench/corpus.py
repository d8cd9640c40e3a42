"""The training corpus of the shipped model: ``build.sh``'s recordings, split by package.

``bash ../shared/data/train/build.sh OUT`` builds about 5 hours of real recordings from Debian
packages (``OUT/MANIFEST.tsv``: one row per file, with its package, category and measured
``lowpass_edge_hz`` / ``hf_above_11k_db``). Files of one package share a composer, a game's
mixing, a voice pack's speakers and microphones: a split by file would put the same sources on
both sides and flatter the model. So whole packages are assigned to one split each:

* the packages are ranked by a hash of their name (every build gives the same split);
* **test** first, then **validation**, take, for each category in turn, the first package in
  that order with at least ``MIN_SHARE`` of the category's minutes (unless the split already has
  that much); the package with the most minutes of a category always trains (speech comes
  mostly from three voice packs: the largest trains, one tests, one validates);
* every other package trains. Validation uses at most ``VAL_PER_CATEGORY`` files per category of
  its packages (it runs during training); test uses every file of its packages.

Build the corpus with ``TRAIN_HF_MIN=-999 TRAIN_EDGE_MIN=0`` so that it also holds band-poor
recordings (nothing above 11 kHz, or an encoder cut below 13 kHz): the test split keeps them,
since users' files include them and a model must not be judged only on files it can help (the
card reports them apart). Training and validation leave them out (``band_poor``): validation
chooses checkpoints and levels for the band a model restores, and a file with no band to
restore would choose the model that restores least; whether to fill such files at all is a
product rule, measured on the test split and by ``bench.nothing_to_add``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

# Beside the checkout, like the dev recordings: ``bash ../shared/data/train/build.sh ../traindata``.
DEFAULT_TRAIN_DIR = (Path(__file__).resolve().parent.parent / ".." / "traindata").resolve()
# build.sh's categories, as the tables name them.
CATEGORIES = {"speech": "speech", "music": "music", "sfx": "effects", "env": "ambiences"}
# A package tests or validates a category only with at least this share of the category's minutes
# (else the largest candidate does): a split with one short clip of a kind says nothing about it.
MIN_SHARE = 0.05
# Validation runs during training: at most this many files per category (the first by a hash of
# their names) of the validation packages take part.
VAL_PER_CATEGORY = 20
# build.sh's default selection: what it keeps without TRAIN_HF_MIN / TRAIN_EDGE_MIN (see its README).
HF_MIN_DB, EDGE_MIN_HZ = -50.0, 13_000.0


def _rank(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest()[:12], 16)


def band_poor(row: dict[str, str]) -> bool:
    """A file build.sh leaves out by default: little above 11 kHz, or an encoder's cut below 13 kHz."""
    return float(row.get("hf_above_11k_db") or 0.0) <= HF_MIN_DB or float(row.get("lowpass_edge_hz") or 22050) <= EDGE_MIN_HZ


@dataclass
class CorpusSplit:
    root: Path
    train: list[Path]
    val: list[Path]
    test: list[Path]
    category: dict[Path, str]  # path -> table category
    minutes: dict[Path, float]
    license: dict[Path, str]
    package: dict[Path, str]
    edge_hz: dict[Path, float]  # the file's own lowpass edge (MANIFEST.tsv; Nyquist where none)
    poor: set[Path]  # band-poor files (see `band_poor`): in the test split only

    def total_minutes(self, files: list[Path]) -> float:
        return sum(self.minutes[p] for p in files)

    def by_category(self, files: list[Path]) -> dict[str, tuple[int, float]]:
        """Table category -> (files, minutes)."""
        out: dict[str, tuple[int, float]] = {}
        for path in files:
            n, m = out.get(self.category[path], (0, 0.0))
            out[self.category[path]] = (n + 1, m + self.minutes[path])
        return out

    def packages(self, files: list[Path]) -> list[str]:
        return sorted({self.package[p] for p in files})


def assign_packages(minutes: dict[str, dict[str, float]]) -> dict[str, str]:
    """Package -> ``"test"``, ``"val"`` or ``"train"``; ``minutes``: package -> category -> minutes."""
    order = sorted(minutes, key=_rank)
    split = {package: "train" for package in order}
    categories = sorted({c for by_category in minutes.values() for c in by_category})
    for name in ("test", "val"):
        for category in categories:
            total = sum(by_category.get(category, 0.0) for by_category in minutes.values())
            if sum(minutes[p].get(category, 0.0) for p in order if split[p] == name) >= MIN_SHARE * total:
                continue
            largest = max((p for p in order if category in minutes[p]), key=lambda p: minutes[p][category])
            candidates = [p for p in order if split[p] == "train" and category in minutes[p] and p != largest]
            if not candidates:
                continue
            enough = [p for p in candidates if minutes[p][category] >= MIN_SHARE * total]
            split[(enough or sorted(candidates, key=lambda p: -minutes[p][category]))[0]] = name
    untrained = [c for c in categories if not any(split[p] == "train" and c in minutes[p] for p in order)]
    if untrained:  # a package taken for another category held the rest of it
        raise ValueError(f"the package split leaves no training package with {', '.join(untrained)}")
    return split


def corpus_split(root: Path) -> CorpusSplit | None:
    """The split of a ``build.sh`` output folder; ``None`` where it has no ``MANIFEST.tsv``."""
    manifest = root / "MANIFEST.tsv"
    if not manifest.is_file():
        return None
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    by_package: dict[str, dict[str, float]] = {}
    for row in rows:
        by_category = by_package.setdefault(row["package"], {})
        by_category[row["category"]] = by_category.get(row["category"], 0.0) + float(row["duration_s"]) / 60
    assigned = assign_packages(by_package)
    splits: dict[str, list[Path]] = {"train": [], "val": [], "test": []}
    category, minutes, license, package, edge, poor = {}, {}, {}, {}, {}, set()
    for row in rows:
        path = (root / row["file"]).resolve()
        category[path] = CATEGORIES.get(row["category"], row["category"])
        minutes[path] = float(row["duration_s"]) / 60
        license[path] = row["license"]
        package[path] = row["package"]
        edge[path] = float(row.get("lowpass_edge_hz") or 22050)
        name = assigned[row["package"]]
        if band_poor(row):
            poor.add(path)
            if name != "test":
                continue
        splits[name].append(path)
    val: list[Path] = []
    for name in sorted(set(category.values())):
        members = sorted((p for p in splits["val"] if category[p] == name), key=lambda p: _rank(p.name))
        val += members[:VAL_PER_CATEGORY]
    return CorpusSplit(root, sorted(splits["train"]), sorted(val), sorted(splits["test"]), category, minutes,
                       license, package, edge, poor)
