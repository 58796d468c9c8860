"""The checkpoint as ONNX for onnxruntime: ``python export.py ckpt_path=<file.ckpt>`` writes model.onnx."""

from mnist_lab.command_line import main

if __name__ == "__main__":
    from mnist_lab.inference.exporting import export

    main(export, "export")
