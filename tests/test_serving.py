"""serve.py's API through FastAPI's TestClient, the page in headless Chromium, export.py and backend=onnx."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_lab.errors import InputError
from mnist_lab.inference.backends import Network, load_network
from mnist_lab.inference.reading import read_image
from mnist_lab.models.classifier import ImageClassifier
from support import run_script, start_server
from support.drawings import write_canvas_drawings
from support.photos import write_photos
from support.user_data import save_pictures

pytest.importorskip("fastapi", reason='serve.py needs the "serve" extra: pip install -e ".[serve]"')
from fastapi.testclient import TestClient  # noqa: E402

from mnist_lab.serving.app import create_app  # noqa: E402

LIMITS = {"max_bytes": 200_000, "max_pixels": 4_000_000, "max_images": 4}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(network, one_batch_run) -> TestClient:
    return TestClient(create_app(network, one_batch_run["ckpt"], **LIMITS))


@pytest.fixture(scope="module")
def drawings(mnist, tmp_path_factory) -> list[tuple[Path, int]]:
    return write_canvas_drawings(mnist["test_x"][:12], mnist["test_y"][:12], tmp_path_factory.mktemp("canvas"))


def post(client: TestClient, *images: tuple[str, bytes]):
    return client.post("/predict", files=[("images", (name, data, "image/png")) for name, data in images])


def test_health_and_model_describe_the_checkpoint(client, one_batch_run):
    assert client.get("/health").json() == {"status": "ok"}
    facts = client.get("/model").json()
    assert facts["checkpoint"] == str(one_batch_run["ckpt"])
    assert facts["network"] == "CNN" and facts["parameters"] == 3_274_634 and facts["backend"] == "torch"
    assert "model=CNN" in facts["trained_with"] and "max_epochs=1" in facts["trained_with"]
    assert facts["test_acc"] == pytest.approx(one_batch_run["test_acc"], abs=1e-4)  # from the run's result.json


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<canvas id="canvas"' in page.text and 'accept="image/*" capture' in page.text
    for asset in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert client.get(f"/{asset}").status_code == 200, asset  # shipped in the package: no CDN
        assert not asset.startswith("http")


def test_predict_reads_drawings_as_predict_py_does(client, network, drawings):
    response = post(client, *[(path.name, path.read_bytes()) for path, _ in drawings[:4]])
    assert response.status_code == 200
    results = response.json()["results"]
    for (path, _), result in zip(drawings, results):
        reading = read_image(network, path.read_bytes(), LIMITS["max_pixels"])
        assert result["name"] == path.name and result["label"] == reading.label and result["class"] == reading.name
        assert result["probabilities"] == pytest.approx(reading.probabilities.tolist(), abs=1e-4)
        header, png = result["seen"].split(",")
        assert header == "data:image/png;base64"
        seen = torch.from_numpy(np.asarray(Image.open(io.BytesIO(base64.b64decode(png))))).int()
        assert seen.shape == (28, 28) and seen.max() == 255
        assert torch.equal(seen, (reading.seen[0] * 255).round().int())  # (1, 28, 28): one gray channel


@pytest.mark.slow  # a trained CNN: train.py as a subprocess
def test_the_api_reads_canvas_drawings_right(trained_run, drawings):
    client = TestClient(create_app(load_network(trained_run["ckpt"]), trained_run["ckpt"], **LIMITS))
    right = [post(client, (p.name, p.read_bytes())).json()["results"][0]["label"] == label for p, label in drawings]
    assert sum(right) >= 11  # the briefly trained CNN


def bad_inputs() -> dict[str, tuple[bytes, int, str]]:
    """name -> (the upload, the status it gets, what its message says)."""
    truncated = png(Image.new("L", (280, 280), 255))[:60]
    huge = png(Image.new("1", (3000, 3000), 1))  # 9 Mpx, a few kB: refused from its header
    heavy = np.random.default_rng(0).integers(0, 255, 250_000, np.uint8).tobytes()  # over max_bytes
    return {
        "notes.txt": (b"not an image", 415, "not an image"),
        "empty.png": (b"", 415, "not an image"),
        "truncated.png": (truncated, 400, "not a readable image"),
        "blank.png": (png(Image.new("L", (280, 280), 255)), 400, "no digit found"),
        "huge.png": (huge, 413, "too large"),
        "heavy.png": (heavy, 413, "too large"),
    }


def test_bad_images_get_a_4xx_with_predict_pys_message_and_the_server_keeps_serving(client, network, drawings):
    for name, (data, status, says) in bad_inputs().items():
        response = post(client, (name, data))
        assert response.status_code == status, (name, response.text)
        assert says in response.json()["error"], name
        if name != "heavy.png":  # the words predict.py prints for that file (it has no limit on bytes)
            with pytest.raises(InputError) as err:
                read_image(network, data, LIMITS["max_pixels"])
            assert response.json()["error"] == f"{name}: {err.value}"
        assert client.get("/health").status_code == 200
    path, _ = drawings[0]
    # Some images read: 200, and each failed image's error in its own result (a client that checks the
    # status keeps the good prediction). None read: the first image's 4xx.
    mixed = post(client, (path.name, path.read_bytes()), ("notes.txt", b"not an image"))
    assert mixed.status_code == 200 and mixed.json()["errors"] == 1
    reading = read_image(network, path.read_bytes(), LIMITS["max_pixels"])
    assert [r.get("label") for r in mixed.json()["results"]] == [reading.label, None]
    assert "not an image" in mixed.json()["results"][1]["error"]
    none_read = post(client, ("notes.txt", b"not an image"), ("blank.png", png(Image.new("L", (50, 50), 255))))
    assert none_read.status_code == 415 and len(none_read.json()["results"]) == 2


def test_malformed_requests_are_refused_in_json(client, drawings):
    path, _ = drawings[0]
    assert client.post("/predict").status_code == 400
    assert "multipart" in client.post("/predict", data={"x": "1"}).json()["error"]
    too_many = post(client, *[(path.name, path.read_bytes())] * (LIMITS["max_images"] + 1))
    assert too_many.status_code == 413 and "at most 4" in too_many.json()["error"]
    chunked = client.post("/predict", content=iter([b"abc"]), headers={"content-type": "multipart/form-data"})
    assert chunked.status_code == 411
    missing = client.get("/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = client.get("/predict")  # the page's mount answered 404 {"detail": ...}
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST" and "use POST" in wrong.json()["error"]
    assert client.post("/health").status_code == 405
    assert client.get("/health").json() == {"status": "ok"}


def test_the_api_docs_are_served_from_the_package_and_metrics_count_requests(client, drawings):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text  # Swagger UI's files from here: it works offline
    assets = re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', docs.text)
    assert len(assets) == 2 and all(client.get(asset).status_code == 200 for asset in assets)
    path, _ = drawings[0]
    post(client, (path.name, path.read_bytes()))
    post(client, ("notes.txt", b"not an image"))
    metrics = client.get("/metrics").text
    counted = dict(
        re.findall(r'http_requests_total\{handler="/predict",method="POST",status="(\dxx)"\} (\S+)', metrics)
    )
    assert float(counted["2xx"]) >= 1 and float(counted["4xx"]) >= 1  # requests and errors
    assert 'http_request_duration_seconds_count{handler="/predict"' in metrics  # latency


def test_a_body_over_its_limit_is_refused_before_it_is_read(tmp_path: Path):
    limits = {"max_bytes": 1000, "max_pixels": 10_000, "max_images": 2}
    model = ImageClassifier(net={"_target_": "mnist_lab.models.networks.LogReg"}, optimizer={"lr": 0.1})
    small = TestClient(create_app(Network(model), tmp_path / "untrained.ckpt", **limits))
    over = small.post("/predict", content=b"x" * 2001, headers={"content-type": "multipart/form-data; boundary=b"})
    assert over.status_code == 413 and "request too large (2001 bytes, over 2000)" in over.json()["error"]
    within = small.post("/predict", content=b"x" * 2000, headers={"content-type": "multipart/form-data; boundary=b"})
    assert within.status_code == 400  # read, and refused as a malformed form


@pytest.mark.slow  # serve.py as a process
def test_serve_refuses_a_bad_checkpoint_or_setting_in_one_line(tmp_path: Path):
    (tmp_path / "bad.ckpt").write_text("not a checkpoint")
    bad = f"ckpt_path={tmp_path / 'bad.ckpt'}"
    taken = socket.create_server(("127.0.0.1", 0))
    for args, says in (
        ([bad], "cannot be read as a safe"),
        ([f"ckpt_path={tmp_path / 'none.ckpt'}"], "no such file"),
        ([], "ckpt_path is missing"),
        ([bad, f"port={taken.getsockname()[1]}"], "cannot listen there"),  # the settings' own: test_eval_predict
    ):
        result = run_script("serve.py", "port=0", *args, cwd=tmp_path)
        assert result.returncode != 0 and says in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def onnx_export(trained_run, tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime", reason='export.py needs the "onnx" extra: pip install -e ".[onnx]"')
    out = tmp_path_factory.mktemp("export")
    result = run_script("export.py", f"ckpt_path={trained_run['ckpt']}", f"hydra.run.dir={out}", cwd=out)
    assert result.returncode == 0, result.stderr[-2000:]
    return out


@pytest.mark.slow  # a subprocess of export.py
def test_export_writes_an_onnx_model_that_predicts_as_torch_does(onnx_export, trained_run, mnist):
    check = json.loads((onnx_export / "export.json").read_text())
    assert check["images"] == 10_000 and check["predictions_differ"] == 0
    assert check["max_logit_difference"] < 1e-4
    assert check["onnxruntime_accuracy"] == pytest.approx(trained_run["test_acc"], abs=1e-4)
    assert check["bytes"] == (onnx_export / "model.onnx").stat().st_size
    network = load_network(trained_run["ckpt"], "onnx", str(onnx_export / "model.onnx"))
    images = mnist["test_x"][:7, None].float() / 255  # (7, 1, 28, 28)
    for batch in (images[:1], images):  # any batch size; raw [0, 1] pixels, normalised in the graph
        assert torch.allclose(network.logits(batch), Network(network.model).logits(batch), atol=1e-4)


@pytest.mark.slow  # a subprocess of predict.py
def test_predict_and_serve_run_on_onnxruntime(onnx_export, trained_run, drawings, tmp_path: Path):
    files = ",".join(str(path) for path, _ in drawings[:6])
    lines = {}
    for backend in ("torch", "onnx"):
        result = run_script(
            "predict.py", f"ckpt_path={trained_run['ckpt']}", f"inputs=[{files}]", f"backend={backend}", cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr[-2000:]
        lines[backend] = [line.split("(top")[0] for line in result.stdout.splitlines() if "top 3" in line]
    assert len(lines["onnx"]) == 6 and lines["onnx"] == lines["torch"]
    network = load_network(trained_run["ckpt"], "onnx", str(onnx_export / "model.onnx"))
    client = TestClient(create_app(network, trained_run["ckpt"], **LIMITS))
    assert client.get("/model").json()["backend"] == "onnx"
    path, _ = drawings[0]
    reading = read_image(load_network(trained_run["ckpt"]), path.read_bytes(), LIMITS["max_pixels"])
    assert post(client, (path.name, path.read_bytes())).json()["results"][0]["label"] == reading.label


@pytest.fixture
def server(trained_run, tmp_path: Path):
    """serve.py on a free port of 127.0.0.1 (port=0), as a user starts it; its address from its first lines."""
    process, url = start_server(f"ckpt_path={trained_run['ckpt']}", cwd=tmp_path)
    assert url.startswith("http://127.0.0.1:")  # the default host
    yield url
    process.terminate()
    process.wait(timeout=20)


STROKES = {  # digit -> pointer paths on the 280 px canvas, as a person draws them
    7: [[(70, 60), (210, 60), (150, 150), (115, 235)]],
    1: [[(150, 40), (145, 140), (140, 240)]],
    0: [[(140, 45), (90, 80), (80, 150), (100, 215), (140, 238), (185, 210), (200, 140), (185, 75), (140, 45)]],
    4: [[(95, 50), (80, 150), (200, 150)], [(175, 60), (165, 240)]],  # two strokes: two requests, the last answer shown
}


SEEN_HAS_INK = """Array.from(document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data)
    .some((level, i) => i % 4 === 0 && level > 200)"""


def draw(page, paths: list[list[tuple[int, int]]]) -> None:
    box = page.locator("#canvas").bounding_box()
    for path in paths:
        page.mouse.move(box["x"] + path[0][0], box["y"] + path[0][1])
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(path, path[1:]):
            for t in np.linspace(0.1, 1, 10):  # pointermove events along the stroke
                page.mouse.move(box["x"] + x0 + (x1 - x0) * t, box["y"] + y0 + (y1 - y0) * t)
        page.mouse.up()


def shown_digit(page) -> str:
    """The digit the page shows once the server has answered its latest request (a cleared page shows ?)."""
    page.wait_for_selector("#digit:not(.reading)", timeout=20_000)
    page.wait_for_function("document.getElementById('digit').textContent !== '?'", timeout=20_000)
    return page.locator("#digit").text_content()


@pytest.mark.slow  # serve.py as a process, and a browser
def test_the_page_reads_a_drawn_digit_and_an_uploaded_photo_in_chromium(server, mnist, trained_run, tmp_path: Path):
    network = load_network(trained_run["ckpt"])
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("the browser test needs Debian's chromium: apt-get install -y chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    photos = write_photos(mnist["test_x"][:20], mnist["test_y"][:20], tmp_path / "photos", seed=1)
    photo, label = next(  # a photo this briefly trained CNN reads right
        (p, y) for p, y in photos if read_image(network, p, LIMITS["max_pixels"]).label == y
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 560})
        page.goto(server)
        page.wait_for_function("document.getElementById('model').textContent.includes('parameters')")
        for digit, paths in STROKES.items():
            page.click("#clear")
            draw(page, paths)
            assert shown_digit(page) == str(digit)
            assert page.locator("#bars li").count() == 10
            assert page.locator("#bars li.top").get_attribute("data-digit") == str(digit)
            page.wait_for_function(SEEN_HAS_INK, timeout=5_000)  # what the network saw, from the answer's PNG
        page.screenshot(path=tmp_path / "drawn.png")
        page.click("#clear")
        page.set_input_files("#photo", str(photo))
        assert shown_digit(page) == str(label)
        page.set_input_files("#photo", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"no image"}])
        page.wait_for_selector("#error:not([hidden])")
        assert "not an image" in page.locator("#error").text_content()
        # The API's docs with no network: every request off this machine refused.
        docs = browser.new_page()
        docs.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
        docs.goto(server + "/docs")
        docs.wait_for_selector(".swagger-ui .opblock-summary-path", timeout=20_000)
        assert "/predict" in docs.locator(".swagger-ui").text_content()
        browser.close()
    shot = np.asarray(Image.open(tmp_path / "drawn.png").convert("L"))
    assert shot.shape == (560, 900) and (shot < 60).mean() > 0.01  # the strokes, the digit and the 28x28 are drawn


def test_the_api_answers_the_class_a_trained_network_sees(bars_run, tmp_path: Path):
    client = TestClient(create_app(load_network(bars_run["ckpt"]), Path(bars_run["ckpt"]), **LIMITS))
    for path, label in save_pictures(tmp_path, count=6):
        [result] = post(client, (Path(path).name, Path(path).read_bytes())).json()["results"]
        assert (result["label"], result["class"]) == (label, str(label))
