"""A training run: its checks, builders, callbacks, checkpoints and run folder."""
