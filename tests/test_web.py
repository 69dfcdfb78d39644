"""The web API on the shared tiny models (FastAPI's TestClient; the real-browser test is still to come)."""

from __future__ import annotations

import base64
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from dernet.deploy import Screener  # noqa: E402
from dernet.web.app import ServerLimits, create_app  # noqa: E402

from .test_export_gate import REPORT_KEYS, _phantom_files, _rejects  # noqa: E402


@pytest.fixture(scope="module")
def screener(exported_models: Path) -> Screener:
    return Screener(exported_models)


@pytest.fixture(scope="module")
def client(screener: Screener) -> TestClient:
    return TestClient(create_app(screener=screener))


def _post(client: TestClient, path: Path, mode: str = "all", name: str | None = None):
    with open(path, "rb") as handle:
        return client.post("/api/analyze", files={"file": (name or path.name, handle)}, data={"mode": mode})


def test_health_reports_model_hashes(client: TestClient, screener: Screener) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["models"] == screener.model_hashes
    assert body["modes"] == ["gate", "fusion", "all"] and body["max_upload_mb"] == 100.0
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/analyze", "/api/health"}


def test_page_is_self_contained(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="file"' in page.text and 'id="mode"' in page.text and 'id="findings"' in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # no CDN, no external font
    assert "@import" not in page.text and "url(http" not in page.text


@pytest.mark.parametrize("abnormal", [True, False])
def test_dicom_upload_matches_the_gate(
    client: TestClient, screener: Screener, phantom_dir: Path, abnormal: bool
) -> None:
    path = _phantom_files(phantom_dir, abnormal, 1)[0]
    response = _post(client, path, name="Doe^Jane_1950.dcm")
    assert response.status_code == 200
    report = response.json()
    assert set(report) == REPORT_KEYS | {"overlay_png_base64"} and report["status"] == "ok"
    assert report["input"] == "upload.dcm"  # the uploaded file name may carry a patient's name: not echoed
    expected = screener.screen(path, mode="all")
    assert report["abnormal_probability"] == pytest.approx(expected.probability, abs=1e-6)
    assert len(report["findings"]) == len(expected.findings)
    overlay = cv2.imdecode(np.frombuffer(base64.b64decode(report["overlay_png_base64"]), np.uint8), cv2.IMREAD_COLOR)
    assert overlay is not None and max(overlay.shape[:2]) >= 800


def test_png_upload(client: TestClient, tmp_path: Path, phantom_dir: Path) -> None:
    from dernet.imaging import load_windowed

    windowed, _ = load_windowed(_phantom_files(phantom_dir, True, 1)[0], 256)
    cv2.imwrite(str(tmp_path / "image.png"), windowed)
    response = _post(client, tmp_path / "image.png", mode="gate")
    assert response.status_code == 200 and response.json()["mode"] == "gate"
    assert response.json()["image"]["width"] == windowed.shape[1]


def test_oversize_upload_is_413(screener: Screener, phantom_dir: Path) -> None:
    small = TestClient(create_app(screener=screener, limits=ServerLimits(max_upload_mb=0.01)))
    response = _post(small, _phantom_files(phantom_dir, True, 1)[0])
    assert response.status_code == 413 and "0.01 MB limit" in response.json()["detail"]


def test_unsupported_and_rejected_inputs(client: TestClient, tmp_path: Path, phantom_dir: Path) -> None:
    files = _rejects(tmp_path, phantom_dir)
    text = _post(client, files["notes.txt"])
    assert text.status_code == 415 and text.json()["reason"].endswith("not a DICOM, PNG or JPEG file")
    assert text.json()["reason_code"] == "not_an_image"
    for name, phrase, code in [
        ("report.dcm", "without pixel data", "no_pixel_data"),
        ("truncated.dcm", "truncated", "corrupt"),
        ("ct.dcm", "modality CT", "not_radiograph"),
        ("blank.png", "near-constant", "near_constant"),
    ]:
        response = _post(client, files[name])
        assert response.status_code == 422, name
        body = response.json()
        assert body["status"] == "rejected" and phrase in body["reason"] and body["overlay_png_base64"] is None
        assert body["reason_code"] == code
    assert _post(client, files["good.dcm"], mode="nonsense").status_code == 422


def test_four_concurrent_requests_get_their_own_reports(
    client: TestClient, screener: Screener, phantom_dir: Path, tmp_path: Path
) -> None:
    paths = _phantom_files(phantom_dir, True, 2) + _phantom_files(phantom_dir, False, 2)
    expected = [screener.screen(p, mode="all").probability for p in paths]
    assert len(set(np.round(expected, 6))) == 4  # four different images, four different answers
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda p: _post(client, p), paths))
    assert [r.status_code for r in responses] == [200] * 4
    got = [r.json()["abnormal_probability"] for r in responses]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_concurrent_requests_each_get_only_their_own_notes(
    client: TestClient, phantom_dir: Path, tmp_path: Path
) -> None:
    """The reader's conversion notes are data on each result, never process-wide warnings that threads share."""
    from dernet.imaging import load_windowed

    windowed, _ = load_windowed(_phantom_files(phantom_dir, True, 1)[0], 256)
    grey = np.dstack([windowed] * 3)
    colour = grey.copy()
    colour[..., 0] = 255 - colour[..., 0]
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    paths = [tmp_path / "colour.png", tmp_path / "grey.png"] * 6
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda p: _post(client, p), paths))
    for path, response in zip(paths, responses, strict=True):
        assert response.status_code == 200
        notes = response.json()["image"]["notes"]
        assert notes == (["colour image converted to grayscale"] if path.name == "colour.png" else []), path.name


def test_uploads_leave_no_files_behind(client: TestClient, phantom_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # re-read TMPDIR for this test
    try:
        shutil.copyfile(_phantom_files(phantom_dir, True, 1)[0], tmp_path / "in.dcm")
        before = set(tmp_path.iterdir())
        assert _post(client, tmp_path / "in.dcm").status_code == 200
        assert set(tmp_path.iterdir()) == before
    finally:
        tempfile.tempdir = None


def test_a_chunked_upload_is_refused_at_the_limit_while_it_streams(screener: Screener) -> None:
    """A real server (uvicorn on loopback, in a thread): a chunked upload of 64 MB is answered 413 after its first
    chunks, while the client is still sending; nothing past the limit is read."""
    import socket
    import threading
    import time

    import uvicorn

    app = create_app(screener=screener, limits=ServerLimits(max_upload_mb=0.05))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            boundary = "spinecadboundary"
            conn.sendall(
                b"POST /api/analyze HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
            )
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.dcm"\r\n\r\n'.encode()
            conn.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            conn.setblocking(False)
            sent, answer = 0, b""
            while sent < 1000 and b"\r\n\r\n" not in answer:  # 1000 chunks of 64 KB: 64 MB if it were all read
                try:
                    conn.sendall(b"10000\r\n" + b"\0" * 65536 + b"\r\n")
                    sent += 1
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
                time.sleep(0.01)
                try:
                    answer += conn.recv(65536)
                except BlockingIOError:
                    pass
        assert answer.startswith(b"HTTP/1.1 413") and b"0.05 MB limit" in answer, answer[:300]
        assert sent < 20  # answered within a few chunks of the limit, while the rest was still to come
    finally:
        server.should_exit = True
        thread.join(10)


def test_reproducers_are_answered_4xx_never_5xx(client: TestClient, tmp_path: Path) -> None:
    from .fuzzing import reproducers

    statuses = {}
    for path in reproducers(tmp_path):
        response = _post(client, path)
        statuses[path.name] = response.status_code
        assert response.status_code in {200, 415, 422}, (path.name, response.text[:300])
    assert 422 in statuses.values()


def test_a_full_server_answers_503_at_once(screener: Screener, phantom_dir: Path, monkeypatch) -> None:
    import threading
    import time

    release = threading.Event()
    real = screener.screen

    def slow(*args, **kwargs):
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(screener, "screen", slow)
    busy = TestClient(create_app(screener=screener, limits=ServerLimits(max_concurrent=1, queue_timeout_s=0.2)))
    path = _phantom_files(phantom_dir, True, 1)[0]
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(_post, busy, path)
        time.sleep(0.5)  # the first one holds the only screening slot
        second = _post(busy, path)
        assert second.status_code == 503 and second.headers["retry-after"] == "5"
        release.set()
        assert first.result().status_code == 200
    full = TestClient(create_app(screener=screener, limits=ServerLimits(max_pending=0)))
    assert _post(full, path).status_code == 503


def test_errors_are_documented_and_client_values_are_not_echoed(client: TestClient, phantom_dir: Path) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/api/analyze"]["post"]["responses"]
    assert {"413", "415", "422", "503"} <= set(responses)
    path = _phantom_files(phantom_dir, True, 1)[0]
    long_mode = _post(client, path, mode="x" * 10_000)
    assert long_mode.status_code == 422 and len(long_mode.text) < 300 and "x" * 40 not in long_mode.text
    with open(path, "rb") as handle:
        bad_conf = client.post("/api/analyze", files={"file": ("a.dcm", handle)}, data={"conf": "9" * 10_000})
    assert bad_conf.status_code == 422 and len(bad_conf.text) < 400 and "9" * 40 not in bad_conf.text
