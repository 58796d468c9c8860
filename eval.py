"""Test a checkpoint: ``python eval.py ckpt_path=outputs/runs/<run>/checkpoints/last.ckpt``."""

from mnist_lab.command_line import main

if __name__ == "__main__":
    from mnist_lab.inference.evaluation import evaluate

    main(evaluate, "eval")
