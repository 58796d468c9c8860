"""Recognise your own digits: ``python predict.py ckpt_path=<file.ckpt> inputs=[a.png,folder/]``."""

from mnist_lab.command_line import main

if __name__ == "__main__":
    from mnist_lab.inference.prediction import predict

    main(predict, "predict")
