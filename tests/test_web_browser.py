"""The page in a real browser: Playwright driving Debian's Chromium (no browser download), against uvicorn.

Skipped, with the reason, when Chromium or Playwright is missing; `.ci/run` installs both.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

from dernet.deploy import Screener  # noqa: E402
from dernet.web.app import create_app  # noqa: E402

from .conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from .test_export_gate import _phantom_files  # noqa: E402

HEADS = {  # a lesion-type head's and a multiclass vote's parts of a report
    "lesion_types": [{"label": "Osteophytes", "probability": 0.71, "threshold": 0.4, "likely": True},
                     {"label": "Vertebral collapse", "probability": 0.12, "threshold": 0.5, "likely": False}],
    "class_probabilities": {"normal": 0.18, "osteophyte": 0.82},
    "top_class": {"label": "osteophyte", "probability": 0.82},
}
ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"

# Outside CI a missing browser skips (with the reason); in CI, where .ci/run installs it, it is a failure.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (apt-get install chromium)",
)


@pytest.fixture(scope="module")
def server(exported_models: Path, fitted_ensemble: Path):
    """uvicorn on a free local port in a thread, serving the tiny exported models, with heatmaps."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(screener=Screener(exported_models), checkpoints=fitted_ensemble),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    instance.should_exit = True
    thread.join(timeout=10)


def test_page_analyzes_an_uploaded_dicom(server: str, phantom_dir: Path) -> None:
    dicom = _phantom_files(phantom_dir, True, 1)[0]
    started = time.perf_counter()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(server)
        page.set_input_files("#file", str(dicom))
        page.select_option("#mode", "all")
        page.fill("#conf", "0.001")  # the two-step test models score below the default 0.25
        page.wait_for_selector("#dicomOption", state="visible")  # the server has the dicom extra
        page.check("#dicom")
        page.click("#submit")
        page.wait_for_selector("#findings tbody tr td.num")  # a finding row, not the "None" row
        page.wait_for_function("document.getElementById('overlay').complete")
        page.wait_for_selector("#dicomLinks a")
        downloads = [page.get_attribute(a, "download") for a in ("#dicomLinks li:nth-child(1) a",
                     "#dicomLinks li:nth-child(2) a", "#dicomLinks li:nth-child(3) a")]  # fmt: skip
        with page.expect_download() as download:
            page.click("#dicomLinks li:nth-child(1) a")
        sr_bytes = Path(download.value.path()).read_bytes()
        decision = page.inner_text("#decision")
        rows = page.locator("#findings tbody tr").count()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)
        overlay_src = page.get_attribute("#overlay", "src")
        page.check("#showHeatmap")  # the toggle is there because the server has checkpoints
        page.wait_for_function(f"document.getElementById('overlay').src !== {overlay_src!r}")
        caption = page.inner_text("#caption")
        page.screenshot(path=str(ARTIFACTS / "web_page_heatmap.png"), full_page=True)
        page.uncheck("#showHeatmap")
        back_to_overlay = page.get_attribute("#overlay", "src") == overlay_src
        plain_export_hides_heads = page.is_hidden("#lesionTypes") and "Class" not in page.inner_text("#facts")
        page.evaluate(f"show(Object.assign({{}}, shown, {json.dumps(HEADS)}))")  # as an export with both heads answers
        lesion_rows = [page.inner_text(f"#lesionTypes tbody tr:nth-child({i})").split("\t") for i in (1, 2)]
        facts = page.inner_text("#facts")
        page.screenshot(path=str(ARTIFACTS / "web_page_heads.png"), full_page=True)
        browser.close()
    elapsed = time.perf_counter() - started
    assert decision in {"ABNORMAL", "Normal"} and rows >= 1
    assert downloads == ["spine-cad.sr.dcm", "spine-cad.sc.dcm", "spine-cad.pr.dcm"]
    assert sr_bytes[128:132] == b"DICM"  # a Part 10 file, downloaded from the page
    assert caption.startswith("Grad-CAM") and back_to_overlay
    assert (ARTIFACTS / "web_page.png").stat().st_size > 20_000
    assert plain_export_hides_heads
    assert lesion_rows == [["Osteophytes", "0.710", "0.400", "yes"], ["Vertebral collapse", "0.120", "0.500", "no"]]
    assert "osteophyte (0.820; normal 0.180, osteophyte 0.820)" in facts
    print(f"browser test: {elapsed:.1f} s")
