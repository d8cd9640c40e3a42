"""Read what an offline W&B run recorded, without a server: history keys, summary, config, media.

wandb 0.31 no longer ships a Python reader for its transaction log (the
``wandb.sdk.internal.datastore`` module went with the move to the Go ``wandb-core``),
but the format is unchanged: a LevelDB-style log of protobuf ``Record`` messages.

* file header, 7 bytes: ``b":W&B"``, magic ``0xBEE1`` (uint16 little-endian), version;
* then 32 KiB blocks (counted from the start of the file, header included) of chunks:
  ``crc32 (uint32) | length (uint16) | type (uint8) | data``, type FULL=1, or
  FIRST=2 / MIDDLE=3 / LAST=4 for a record split across blocks; fewer than 7 bytes
  left in a block are zero padding;
* each record is a ``wandb.proto.wandb_internal_pb2.Record``.

Checksums are not verified: this reads finished files written by wandb itself.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

HEADER = b":W&B"
MAGIC = 0xBEE1
BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> Iterator[Any]:
    """Yield every ``Record`` protobuf of a ``run-<id>.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    if ident != HEADER or magic != MAGIC:
        raise ValueError(f"{path} is not a W&B transaction log (header {data[:7]!r})")
    offset, pending = 7, b""
    while offset + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - offset % BLOCK
        if left_in_block < CHUNK_HEADER:  # trailer padding
            offset += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[offset : offset + CHUNK_HEADER])
        if kind == 0 and length == 0:  # zero fill (pre-allocated or unfinished tail)
            offset += left_in_block
            continue
        chunk = data[offset + CHUNK_HEADER : offset + CHUNK_HEADER + length]
        offset += CHUNK_HEADER + length
        if kind == FULL:
            pending = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            pending += chunk
        else:
            raise ValueError(f"{path}: unknown chunk type {kind} at byte {offset}")
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        pending = b""
        yield record


def _items(items: Any) -> dict[str, Any]:
    """Protobuf key/value items -> dict; a ``nested_key`` ``[a, b]`` becomes ``{a: {b: value}}``."""
    out: dict[str, Any] = {}
    for item in items:
        path = list(item.nested_key) or [item.key]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    return out


@dataclass
class OfflineRun:
    """What an offline run holds: see :func:`read_offline_run`."""

    directory: Path
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per ``run.log`` row
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    media: list[Path] = field(default_factory=list)  # files under ``files/media/``, relative to it
    # Who the run is (its ``wandb.init`` arguments as recorded): id, display name, group, job type.
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    resumed: bool = False

    @property
    def history_keys(self) -> set[str]:
        return {key for row in self.history for key in row}

    def logged(self, media_type: str) -> dict[str, list[dict[str, Any]]]:
        """History key -> the rows' values of that W&B ``_type``, e.g. ``"audio"`` or ``"images/separated"``.

        Each value also carries the row's ``trainer/global_step`` under ``"step"``.
        """
        found: dict[str, list[dict[str, Any]]] = {}
        for row in self.history:
            for key, value in row.items():
                if isinstance(value, dict) and value.get("_type") == media_type:
                    found.setdefault(key, []).append({**value, "step": row.get("trainer/global_step")})
        return found


def read_offline_run(directory: str | Path) -> OfflineRun:
    """Parse ``<directory>/run-*.wandb`` (an ``offline-run-*`` folder) into an :class:`OfflineRun`.

    ``config`` holds the values (W&B stores each key as ``{"value": ...}``; unwrapped
    here), ``history`` every ``run.log`` row with JSON-decoded values, ``summary`` the
    last summary update of each key, ``run_id`` ... ``resumed`` the run record's.
    """
    directory = Path(directory)
    (log,) = directory.glob("run-*.wandb")
    run = OfflineRun(directory)
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
        if kind == "run":
            run.run_id, run.name, run.group = record.run.run_id, record.run.display_name, record.run.run_group
            run.job_type, run.resumed = record.run.job_type, record.run.resumed
        if kind in ("config", "run"):
            updates = record.config.update if kind == "config" else record.run.config.update
            for key, value in _items(updates).items():
                run.config[key] = value["value"] if isinstance(value, dict) and "value" in value else value
    media = directory / "files" / "media"
    run.media = sorted(p.relative_to(media) for p in media.rglob("*") if p.is_file()) if media.is_dir() else []
    return run


def offline_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an ``audiosr`` subprocess: W&B offline and quiet, every file it writes
    kept inside ``tmp_path``, and this folder importable."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "AUDIOSR_CACHE": str(tmp_path / "cache")}
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        env[name] = str(tmp_path / "wandb-home")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env


def offline_runs(save_dir: str | Path) -> list[Path]:
    """The ``offline-run-*`` folders under a ``WandbLogger(save_dir=...)`` (``<save_dir>/wandb/``)."""
    return sorted((Path(save_dir) / "wandb").glob("offline-run-*"))
