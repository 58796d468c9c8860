from __future__ import annotations

import logging
import warnings

from mnist_lab.known_noise import hide_known_noise


def test_known_noise_is_hidden_and_other_messages_still_show(caplog):
    hide_known_noise()

    class ExperimentalWarning(Warning):  # Optuna's, a plain Warning
        pass

    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
        warnings.warn("WilcoxonPruner is experimental (supported from v3.6.0).", ExperimentalWarning)
        warnings.warn("Checkpoint directory /runs/a/checkpoints exists and is not empty.", UserWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]

    for name, noise in (
        ("lightning.pytorch.utilities.rank_zero", "💡 Tip: For seamless cloud logging ..."),
        ("optuna.study.study", "Using an existing study with `study_name='logreg'` instead of creating a new one."),
    ):
        caplog.clear()
        log = logging.getLogger(name)
        with caplog.at_level(logging.INFO, logger=log.name):
            log.info(noise)
            log.info("GPU available: False, used: False")
        assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
