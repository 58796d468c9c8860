"""A run's result.json: written when it starts, rewritten when it finishes, fails or is interrupted."""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any, Optional

RESULT = "result.json"
RESULTS = ("val_acc_best", "test_acc", "test_loss")  # what a finished run reports (and TensorBoard's HPARAMS tab shows)


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def finished_result(run_dir: Path) -> Optional[dict]:
    """The stored result of a run that completed, or None."""
    try:
        result = json.loads((Path(run_dir) / RESULT).read_text())
    except (OSError, ValueError):
        return None
    return result if result.get("status") == "ok" else None


class RunRecord:
    """Writes ``status: running`` now; ``finish`` or ``fail`` add the outcome and the wall time."""

    def __init__(self, run_dir: Path, overrides: list[str]) -> None:
        self.path = Path(run_dir) / RESULT
        self.started = time.perf_counter()
        self.record: dict[str, Any] = {"overrides": overrides, "status": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.record)

    def _write(self, status: str, **fields: Any) -> None:
        write_json(self.path, {**self.record, "status": status, "wall_s": time.perf_counter() - self.started, **fields})

    def finish(self, metrics: dict[str, float], epochs: int, checkpoint: Optional[str]) -> None:
        self._write("ok", **{key: metrics.get(key) for key in RESULTS}, epochs=epochs, checkpoint=checkpoint)

    def fail(self, err: BaseException) -> str:
        """Record ``err`` (call inside its ``except``) and return the status: interrupted or failed."""
        # Lightning turns Ctrl-C into SystemExit after its graceful shutdown.
        interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
        status = "interrupted" if interrupted else "failed"
        message = "stopped by Ctrl-C" if interrupted else f"{type(err).__name__}: {err}"
        self._write(status, error=message, traceback=traceback.format_exc())
        return status
