"""serve.py under load: requests/s and latency for 1 and 16 clients, against what the same cores do in-process.

    python bench/serve.py ckpt_path=<file.ckpt> [requests=2000] [clients=1,16] [backends=torch,onnx]

Each request posts the same 280x280 PNG canvas drawing to /predict of serve.py (a process, on
127.0.0.1, as users start it). The clients are threads of this process with keep-alive connections
and a prebuilt body, so they add little work to the cores they share with the server. The limit is
the in-process rate of the same work (decode, preprocessing, network) on as many threads as cores,
one torch thread each, measured in the same run just before.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: what the tests generate and run

from mnist_lab.data.mnist import load_shipped  # noqa: E402
from mnist_lab.inference.backends import load_network  # noqa: E402
from mnist_lab.inference.reading import read_image, use_threads  # noqa: E402
from support import start_server  # noqa: E402
from support.drawings import write_canvas_drawings  # noqa: E402

BOUNDARY = "mnistlabbench"
MAX_PIXELS = 40_000_000


def canvas_png() -> bytes:
    test = load_shipped()
    with tempfile.TemporaryDirectory() as tmp:
        [(path, _)] = write_canvas_drawings(test["test_x"][:1], test["test_y"][:1], Path(tmp))
        return path.read_bytes()


def in_process_rate(ckpt_path: str, backend: str, image: bytes, n: int) -> float:
    """Images/s of read_image on one thread per core: what the server could do at most."""
    use_threads(1)  # as serve.py's threads=1
    network = load_network(ckpt_path, backend)
    workers = os.cpu_count() or 1
    for _ in range(20):  # warm-up: allocator, oneDNN kernels
        read_image(network, image, MAX_PIXELS)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: read_image(network, image, MAX_PIXELS), range(n)))
    return n / (time.perf_counter() - start)


def multipart(image: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="canvas.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    )
    return head.encode() + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def load(host: str, port: int, body: bytes, requests: int, clients: int) -> dict:
    """``requests`` posts shared by ``clients`` threads, each with its own keep-alive connection."""
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def client(count: int) -> tuple[list[float], int]:
        connection, latencies, errors = http.client.HTTPConnection(host, port), [], 0
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers do: no 40 ms waits
        for _ in range(count):
            start = time.perf_counter()
            connection.request("POST", "/predict", body, headers)
            response = connection.getresponse()
            response.read()
            latencies.append(time.perf_counter() - start)
            errors += response.status != 200
        return latencies, errors

    shares = [requests // clients + (i < requests % clients) for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, shares))
    elapsed = time.perf_counter() - start
    latencies = sorted(t for ts, _ in results for t in ts)
    return {
        "rate": requests / elapsed,
        "p50": 1000 * statistics.median(latencies),
        "p99": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "errors": sum(e for _, e in results),
    }


def main() -> None:
    args = dict(arg.split("=", 1) for arg in sys.argv[1:])
    ckpt_path, requests = args["ckpt_path"], int(args.get("requests", 2000))
    image = canvas_png()
    body = multipart(image)
    print(f"{os.cpu_count()} cores; {requests} requests of a 280x280 PNG canvas drawing ({len(image)} bytes)")
    print("| backend | clients | requests/s | p50 ms | p99 ms | errors | in-process limit/s | of the limit |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for backend in args.get("backends", "torch,onnx").split(","):
        limit = in_process_rate(ckpt_path, backend, image, min(requests, 1000))
        server, url = start_server(f"ckpt_path={ckpt_path}", f"backend={backend}", cwd=Path(tempfile.mkdtemp()))
        host, port = urlsplit(url).hostname, urlsplit(url).port
        try:
            load(host, port, body, 50, 4)  # warm-up
            for clients in map(int, args.get("clients", "1,16").split(",")):
                r = load(host, port, body, requests, clients)
                print(
                    f"| {backend} | {clients} | {r['rate']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['errors']} "
                    f"| {limit:.0f} | {r['rate'] / limit:.2f}x |",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
