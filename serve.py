"""The draw-a-digit page and an HTTP API: ``python serve.py ckpt_path=<file.ckpt>``, then open http://127.0.0.1:8000."""

from mnist_lab.command_line import main

if __name__ == "__main__":
    from mnist_lab.serving.server import serve

    main(serve, "serve")
