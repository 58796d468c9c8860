"""Train a digit classifier: ``python train.py model=cnn`` (see conf/train.yaml)."""

from mnist_lab.command_line import main

if __name__ == "__main__":
    from mnist_lab.training.run import run

    main(run, "train")
