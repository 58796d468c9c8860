"""What an offline W&B run recorded, read back from its ``run-<id>.wandb`` file (wandb 0.31 has no Python reader).

The file is W&B's transaction log: a 7-byte header, then LevelDB-style records in 32 KiB blocks, each a
wandb_internal_pb2.Record, possibly split over blocks (FIRST, MIDDLE, LAST).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BLOCK, HEADER, RECORD_HEADER = 32 * 1024, 7, 7
FULL, LAST = 1, 4


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, parts, found = HEADER, b"", []
    while pos + RECORD_HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if left < RECORD_HEADER or kind == 0:  # the block's padding
            pos += left
            continue
        parts += data[pos + RECORD_HEADER : pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            found.append(record)
            parts = b""
    return found


def _items(items: Any) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def recorded(run_dir: Path) -> dict[str, Any]:
    """The run's name and group, its config, its logged history rows and its summary."""
    [path] = Path(run_dir).glob("wandb/offline-run-*/run-*.wandb")
    run: dict[str, Any] = {"config": {}, "history": [], "summary": {}}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(name=record.run.display_name, group=record.run.run_group, project=record.run.project)
        elif kind == "config":
            run["config"].update(_items(record.config.update))
        elif kind == "history":
            run["history"].append(_items(record.history.item))
        elif kind == "summary":
            run["summary"].update(_items(record.summary.update))
    return run
