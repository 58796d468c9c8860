from __future__ import annotations

import logging
import warnings

from mnist_lab.known_noise import hide_known_noise


def test_known_noise_is_hidden_and_other_messages_still_show(caplog):
    hide_known_noise()
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        warnings.warn("something else is deprecated", FutureWarning)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]

    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger=log.name):
        log.info("💡 Tip: For seamless cloud logging ...")
        log.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
