"""What the tests and the benchmarks share: the project's scripts run as a user runs them, configs, test images.

Imported as ``support`` (pytest puts tests/ on the path; bench/ scripts put it there themselves).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

__all__ = [
    "CONF",
    "MODELS",
    "NETWORKS",
    "ROOT",
    "bars_config",
    "compose_config",
    "run_script",
    "start_script",
    "start_server",
]

ROOT = Path(__file__).resolve().parents[2]  # the checkout: the scripts and conf/
CONF = ROOT / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))  # every model=..., a user's added one too
# Each model's network class (model.net._target_), by model.
NETWORKS = {m: OmegaConf.load(CONF / "model" / f"{m}.yaml").model.net._target_ for m in MODELS}
SUPPORT_PATH = str(Path(__file__).resolve().parent.parent)  # so that a script's config can name support.probes


def _command(script: str, overrides: tuple[str, ...]) -> list[str]:
    return [sys.executable, str(ROOT / script), *overrides]


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SUPPORT_PATH, env.get("PYTHONPATH")]))
    return env


def run_script(
    script: str, *overrides: str, cwd: Path, timeout: float = 600, **kwargs: Any
) -> subprocess.CompletedProcess:
    """``python <script> <overrides>`` (train.py, eval.py, predict.py) in ``cwd``, its output captured."""
    kwargs["env"] = _environment(kwargs.get("env"))
    return subprocess.run(
        _command(script, overrides), cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs
    )


def start_script(script: str, *overrides: str, cwd: Path, host: str | None = None, **kwargs: Any) -> subprocess.Popen:
    """The same, started in the background (to be signalled, or run beside another); ``host``: under that
    host name, as if on another machine (needs root, for unshare's own UTS namespace)."""
    kwargs["env"] = _environment(kwargs.get("env"))
    command = _command(script, overrides)
    if host:  # exec keeps the pid: signalling the process signals the script
        command = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$0" "$@"', *command]
    return subprocess.Popen(command, cwd=cwd, text=True, **kwargs)


def start_server(*overrides: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """``python serve.py port=0 <overrides>`` in the background, and the address it says it serves at."""
    process = start_script("serve.py", "port=0", *overrides, cwd=cwd, stdout=subprocess.PIPE)
    for line in process.stdout:
        if match := re.search(r"at (http://[\d.]+:\d+)", line):
            return process, match.group(1)
    raise RuntimeError(f"serve.py did not start (exit {process.wait()}); its error is above")


def compose_config(*overrides: str, config_name: str = "train", hydra_keys: bool = False) -> DictConfig:
    """conf/<config_name>.yaml composed with ``overrides`` as a script sees it; ``hydra_keys``: also ``hydra.*``.

    Each set of overrides is composed once (Hydra reads and merges some 45 YAML files: 0.2 s, and the tests
    compose about 190 times); each call gets a copy of its own, with its own ``output_dir=``."""
    output_dirs = [o.partition("=")[2] for o in overrides if o.startswith("output_dir=")]
    others = tuple(o for o in overrides if not o.startswith("output_dir="))
    cfg = copy.deepcopy(_composed(config_name, others, hydra_keys))
    for output_dir in output_dirs:
        cfg.output_dir = output_dir
    return cfg


@functools.cache
def _composed(config_name: str, overrides: tuple[str, ...], hydra_keys: bool) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"), _yaml_parsed_once():
        return compose(config_name, overrides=list(overrides), return_hydra_config=hydra_keys)


@functools.cache
def _parsed(text: str) -> DictConfig:
    return _load(io.StringIO(text))


_load = OmegaConf.load


@contextlib.contextmanager
def _yaml_parsed_once() -> Iterator[None]:
    """Each YAML text parsed once a session: a compose reads some 45 files, 40 % of its time (a copy is 50x faster)."""
    OmegaConf.load = lambda file: copy.deepcopy(_parsed(file.read())) if hasattr(file, "read") else _load(file)
    try:
        yield
    finally:
        OmegaConf.load = _load


def write_idx(path: Path, array: Any) -> Path:
    """An IDX file (gzipped if its name ends in .gz) of a uint8 array (N,) labels or (N, H, W) images, as MNIST's
    files are made."""
    import gzip

    import numpy as np

    data = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 | data.ndim  # 0x08: unsigned bytes
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in data.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = header + data.tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def doc_steps(page: Path, section: str = "") -> tuple[dict[str, str], list[str], list[tuple[str, str]]]:
    """A docs page's steps (in its ``## <section>`` alone, if given): its files (code blocks whose first line is
    ``# <path>``), its commands (the lines of its bash blocks) and its transcripts (text blocks of ``$ command``
    and the line it prints)."""
    text = page.read_text()
    if section:
        text = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    files, commands, transcripts = {}, [], []
    for language, body in re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S):
        first, _, rest = body.partition("\n")
        if language in ("python", "yaml") and first.startswith("# ") and ("/" in first or first.endswith(".py")):
            files[first[2:].strip()] = rest
        elif language == "bash":
            commands += [line for line in body.splitlines() if line.startswith("python ")]
        elif language == "text" and first.startswith("$ "):
            transcripts.append((first[2:], rest.strip()))
    return files, commands, transcripts


def bars_config(output_dir: Path, *overrides: str, model: str = "logreg", **data: Any) -> DictConfig:
    """A run of ``model`` on support.user_data.BarsData (three classes a linear model learns in seconds), quiet
    and on the CPU; ``data``: the DataModule's arguments."""
    quiet = ("logger=[]", "callbacks.progress_bar.refresh_rate=0", "trainer.log_every_n_steps=1")
    cfg = compose_config(f"output_dir={output_dir}", "trainer.accelerator=cpu", f"model={model}", *quiet, *overrides)
    cfg.data = OmegaConf.create({"_target_": "support.user_data.BarsData", **data})
    return cfg
