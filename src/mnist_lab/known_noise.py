"""Known, harmless messages from Lightning and torch, hidden one by one so that real warnings still show."""

from __future__ import annotations

import logging
import warnings

# Lightning's and Optuna's log lines that say nothing about the run.
HIDDEN_LINES = (
    "💡 Tip:",  # advertisements for litlogger / litmodels
    "Trainer already configured with model summary callbacks",  # ours is configured on purpose
    # Each job and heartbeat opens the study again (27 times in a 3-trial k-fold search); the sweeper says
    # once how many trials the study holds.
    "Using an existing study",
)
NOISY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "optuna.study.study",
)

# (category, message regex): warnings that are expected here.
HIDDEN_WARNINGS = (
    # Lightning 2.6 with torch >= 2.10 uses the deprecated LeafSpec internally.
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # Any OnExceptionCheckpoint (our Ctrl-C checkpoint) makes fit(ckpt_path=None) look for a "last"
    # checkpoint; train.py passes the checkpoint to resume from itself.
    (UserWarning, r"`\.fit\(ckpt_path=None\)` was called without a model"),
    (UserWarning, r"\.fit\(ckpt_path=\"last\"\) is set, but there is no last checkpoint available"),
    # The model summary's size estimate has no entry for bf16-mixed; the parameter count is exact anyway.
    (UserWarning, r"Precision bf16-mixed is not supported by the model summary"),
    # A resumed run writes into its own checkpoints/ again, on purpose.
    (UserWarning, r"Checkpoint directory .* exists and is not empty"),
    # Optuna's ExperimentalWarning (a plain Warning) for the fold pruner the project picked and measured.
    (Warning, r"WilcoxonPruner is experimental"),
)


def _shown(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(HIDDEN_LINES)


def hide_known_noise() -> None:
    """Filter the messages above; safe to call more than once."""
    for category, message in HIDDEN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _shown not in logger.filters:
            logger.addFilter(_shown)
