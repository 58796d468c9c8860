"""Time from the command to the first training step, and peak memory, of ``python train.py``.

    python bench/startup.py [extra train.py overrides...]

Runs ``train.py`` (default: model=cnn) for one step in a subprocess; the first step's start is
stamped by a callback. Peak memory is the child's maximum resident set size.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate and run

from support import run_script  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Path(tmp) / "first_step.json"
        start = time.time()
        result = run_script(
            "train.py",
            "trainer.max_steps=1",
            "test=false",
            "trainer.limit_val_batches=0",
            "callbacks.progress_bar.refresh_rate=0",
            "+callbacks.first_step._target_=support.probes.FirstStep",
            f"+callbacks.first_step.path={stamp}",
            f"hydra.run.dir={tmp}/run",
            *sys.argv[1:],
            cwd=Path(tmp),
        )
        if result.returncode:
            raise SystemExit(result.stderr)
        total = time.time() - start
        first = json.loads(stamp.read_text())["time"] - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"command -> first training step: {first:.1f} s; whole 1-step run: {total:.1f} s; peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
