"""The DICOM node against real peers: dcmtk's storescu sends, dcmtk's storescp receives the results."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless

from dernet.deploy.screening import Screener
from dernet.node.config import Destination, NodeConfig, load_node_config
from dernet.node.node import Node, retry_failed

from .conftest import debian_tool

ROOT = Path(__file__).resolve().parents[1]
STORESCU_SYNTAX_FLAG = {JPEG2000Lossless: ["-xv"], RLELossless: ["-xr"]}  # else the default (uncompressed)


def _tool(name: str) -> str:
    return debian_tool(name, "dcmtk")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def send(files: list[Path], port: int, calling: str = "SENDER", called: str = "SPINECAD"):
    """storescu, once per transfer syntax (it proposes one compressed syntax per run)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        groups[str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)].append(path)
    done = None
    for syntax, group in groups.items():
        command = [_tool("storescu"), *STORESCU_SYNTAX_FLAG.get(syntax, []), "-aet", calling, "-aec", called,
                   "127.0.0.1", str(port), *map(str, group)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return done
    return done


class StoreSCP:
    """dcmtk's storescp on a free loopback port: the destination the node forwards to."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder, self.port = folder, port or _free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.process = None

    def start(self) -> StoreSCP:
        self.process = subprocess.Popen([_tool("storescp"), "-aet", "RESULTS", "-od", str(self.folder), str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        echoscu = _tool("echoscu")
        _wait(lambda: subprocess.run([echoscu, "-aec", "RESULTS", "127.0.0.1", str(self.port)],
                                     capture_output=True).returncode == 0, 30, "storescp")  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @property
    def destination(self) -> Destination:
        return Destination("RESULTS", "127.0.0.1", self.port)

    def received(self) -> dict[str, list[str]]:
        """SOP Instance UIDs received, per kind of object."""
        found: dict[str, list[str]] = defaultdict(list)
        for path in self.folder.iterdir():
            if path.name.startswith("."):
                continue
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            found[str(ds.Modality)].append(str(ds.SOPInstanceUID))
        return found


@pytest.fixture(scope="module")
def screener(exported_models: Path) -> Screener:
    return Screener(exported_models)


@pytest.fixture(scope="module")
def images(phantom_dir: Path) -> list[Path]:
    files = [*sorted((phantom_dir / "train_images").glob("*.dicom")),
             *sorted((phantom_dir / "test_images").glob("*.dicom"))]  # fmt: skip
    assert len(files) >= 20
    return files


def _node(tmp_path: Path, screener: Screener, *destinations: Destination, **settings) -> Node:
    config = NodeConfig(port=_free_port(), spool=tmp_path / "spool", forward=tuple(destinations), mode="all",
                        retry_backoff_s=0.05, **settings)  # fmt: skip
    return Node(config, screener)


def _status(node: Node) -> dict:
    return json.loads((node.spool.root / "status.json").read_text())


def test_images_in_results_out(screener: Screener, images: list[Path], tmp_path: Path) -> None:
    """J2K, RLE and uncompressed radiographs and a non-image SR in; every image's SR, SC and PR out."""
    scp = StoreSCP(tmp_path / "received").start()
    node = _node(tmp_path, screener, scp.destination)
    node.start()
    try:
        by_syntax = defaultdict(list)
        for path in images:
            by_syntax[pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID].append(path)
        assert len(by_syntax) == 3  # explicit little endian, JPEG 2000, RLE
        sample = [path for group in by_syntax.values() for path in group[:2]]
        sent = send([*sample, Path(get_testdata_file("test-SR.dcm"))], node.config.port)
        assert sent.returncode == 0, sent.stderr
        _wait(lambda: _status(node)["forwarded"] == len(sample), 120, "the results")
    finally:
        node.stop()
        scp.stop()
    status = _status(node)
    assert status["received"] == 7 and status["screened"] == 6 and status["rejected"] == 1 and status["failed"] == 0
    received = scp.received()
    sources = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sample}
    assert len(received["SR"]) == len(received["OT"]) == len(received["PR"]) == len(sample)
    referenced = set()
    for uid in received["SR"]:
        sr = pydicom.dcmread(scp.folder / f"SRc.{uid}")
        referenced.add(sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
                       .ReferencedSOPSequence[0].ReferencedSOPInstanceUID)  # fmt: skip
    assert referenced == sources
    dciodvfy = shutil.which("dciodvfy")
    for path in [p for p in scp.folder.iterdir() if not p.name.startswith(".")] if dciodvfy else []:
        checked = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
        assert "Error" not in checked.stdout + checked.stderr, path.name
    sr_report = json.loads(next(p for p in node.spool.results.glob("*.json")
                                if json.loads(p.read_text())["status"] == "rejected").read_text())  # fmt: skip
    assert sr_report["reason_code"] == "no_pixel_data"


def test_four_senders_at_once_nothing_lost_nothing_twice(
    screener: Screener, images: list[Path], tmp_path: Path
) -> None:
    scp = StoreSCP(tmp_path / "received").start()
    node = _node(tmp_path, screener, scp.destination, workers=2, queue_size=2)  # a small queue: back-pressure
    node.start()
    try:
        j2k = [p for p in images if _is_j2k(p)]
        batches = [j2k[i::4] for i in range(4)]  # several images each
        senders = [subprocess.Popen([_tool("storescu"), "-xv", "-aec", "SPINECAD", "127.0.0.1", str(node.config.port),
                                     *map(str, batch)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                   for batch in batches]  # fmt: skip
        for sender in senders:
            _, err = sender.communicate(timeout=300)
            assert sender.returncode == 0, err
        expected = len(j2k)
        _wait(lambda: _status(node)["forwarded"] == expected, 180, "every result")
    finally:
        node.stop()
        scp.stop()
    status = _status(node)
    assert status["received"] == status["screened"] == status["forwarded"] == expected and status["duplicates"] == 0
    received = scp.received()
    assert all(len(received[kind]) == len(set(received[kind])) == expected for kind in ("SR", "OT", "PR"))


def _is_j2k(path: Path) -> bool:
    return pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == JPEG2000Lossless


def test_a_destination_that_is_down_then_retry(screener: Screener, images: list[Path], tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there yet
    down = Destination("RESULTS", "127.0.0.1", port)
    node = _node(tmp_path, screener, down, retries=1, network_timeout_s=5)
    node.start()
    try:
        sample = [p for p in images if _is_j2k(p)][:2]
        assert send(sample, node.config.port).returncode == 0
        _wait(lambda: _status(node)["failed"] == 2, 120, "the failures")
    finally:
        node.stop()
    failures = node.spool.failures()
    assert len(failures) == 2 and all("connection refused" in f["reason"] for f in failures)
    scp = StoreSCP(tmp_path / "received", port).start()
    try:
        assert retry_failed(node.config) == (2, 0)
    finally:
        scp.stop()
    assert not node.spool.failures() and len(scp.received()["SR"]) == 2


def test_the_wrong_called_ae_title_is_one_line_saying_what_to_change(
    screener: Screener, images: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = _node(tmp_path, screener, allow_calling_ae=("MODALITY",))
    node.start()
    try:
        with caplog.at_level("WARNING", logger="dernet.node"):
            wrong_called = send(images[:1], node.config.port, calling="MODALITY", called="PACS")
            wrong_calling = send(images[:1], node.config.port, calling="LAPTOP")
            right = send([p for p in images if _is_j2k(p)][:1], node.config.port, calling="MODALITY")
    finally:
        node.stop()
    assert wrong_called.returncode != 0 and wrong_calling.returncode != 0 and right.returncode == 0
    lines = [r.getMessage() for r in caplog.records]
    assert any("called AE 'PACS', this node is 'SPINECAD'" in line and "--ae-title" in line for line in lines)
    assert any("calling AE 'LAPTOP' is not allowed" in line and "--allow-calling-ae" in line for line in lines)


def test_killed_mid_transfer_then_restarted_screens_each_image_once(
    exported_models: Path, images: list[Path], tmp_path: Path
) -> None:
    """SIGKILL during a 20-image transfer; a restart and a re-send of everything: each image screened once, each
    result forwarded once (storescp names files by SOP Instance UID: a second copy would not add a file)."""
    scp = StoreSCP(tmp_path / "received").start()
    spool, port = tmp_path / "spool", _free_port()
    command = [sys.executable, "-m", "dernet.node", "--models", str(exported_models), "--spool", str(spool),
               "--port", str(port), "--forward", str(scp.destination), "--mode", "all"]  # fmt: skip
    plain = [p for p in images if not _is_rle(p)]  # one storescu run sends these (RLE needs a run of its own)
    sample = [*plain, *[p for p in images if _is_rle(p)]][:20]
    logs = [tmp_path / "node1.log", tmp_path / "node2.log"]
    try:
        first = subprocess.Popen(command, stderr=logs[0].open("w"), cwd=ROOT)
        _wait(lambda: _running(spool, first.pid), 120, "the node")
        sender = subprocess.Popen(_storescu_all(plain, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: len(list((spool / "incoming").glob("*.dcm"))) >= 5, 120, "five images received")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        sender.wait(timeout=60)
        second = subprocess.Popen(command, stderr=logs[1].open("w"), cwd=ROOT)
        _wait(lambda: _running(spool, second.pid), 120, "the restarted node")
        resent = send(sample, port)  # everything again: what the sender saw fail and what it did not
        assert resent.returncode == 0, resent.stderr
        _wait(lambda: len(list((spool / "forwarded").iterdir())) == 20, 240, "every result forwarded")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    finally:
        scp.stop()
    screened = [line.split("screened ")[1].split(":")[0] for log in logs for line in log.read_text().splitlines()
                if " INFO screened " in line]  # fmt: skip
    sources = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sample}
    assert sorted(screened) == sorted(sources)  # each exactly once, across both runs
    patients = {str(pydicom.dcmread(p, stop_before_pixels=True).PatientID) for p in sample}
    for log in logs:  # SOP Instance UIDs only: no patient identifier in the node's log
        assert not [pid for pid in patients if pid in log.read_text()]
    received = scp.received()
    assert len(sample) == 20 and all(len(set(received[kind])) == 20 for kind in ("SR", "OT", "PR"))
    assert _read(spool)["state"] == "stopped"


def _is_rle(path: Path) -> bool:
    return pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == RLELossless


def _storescu_all(files: list[Path], port: int) -> list[str]:
    """One storescu for uncompressed and JPEG 2000 files (it converts uncompressed data to what it proposes)."""
    return [_tool("storescu"), "-xv", "-aec", "SPINECAD", "127.0.0.1", str(port), *map(str, files)]


def _running(spool: Path, pid: int) -> bool:
    path = spool / "status.json"
    return path.is_file() and _read(spool)["pid"] == pid and _read(spool)["state"] == "running"


def _read(spool: Path) -> dict:
    return json.loads((spool / "status.json").read_text())


def test_the_example_config_holds_the_defaults() -> None:
    config = load_node_config(ROOT / "configs" / "node.yaml", {})
    assert config == NodeConfig(forward=config.forward)
    assert [str(d) for d in config.forward] == ["PACS@127.0.0.1:4242"]


def test_orthanc_as_the_pacs(screener: Screener, images: list[Path], tmp_path: Path) -> None:
    """Orthanc (Debian's) holds the images; it sends them to the node (C-STORE), and the node's SR, SC and PR
    arrive back in Orthanc, filed under the same study."""
    orthanc = debian_tool("Orthanc", "orthanc")
    http, dicom = _free_port(), _free_port()
    node = _node(tmp_path, screener, Destination("ORTHANC", "127.0.0.1", dicom))
    config = {"Name": "spine-cad-test", "StorageDirectory": str(tmp_path / "orthanc"),
              "IndexDirectory": str(tmp_path / "orthanc"), "HttpPort": http, "DicomPort": dicom, "DicomAet": "ORTHANC",
              "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [],
              "DicomModalities": {"spinecad": ["SPINECAD", "127.0.0.1", node.config.port]}}  # fmt: skip
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    server = subprocess.Popen([orthanc, str(tmp_path / "orthanc.json")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=tmp_path)  # fmt: skip
    base = f"http://127.0.0.1:{http}"

    def rest(path: str, data: bytes | None = None):
        with urllib.request.urlopen(urllib.request.Request(base + path, data=data), timeout=60) as answer:
            return json.loads(answer.read())

    node.start()
    try:
        _wait(lambda: _answers(base), 60, "Orthanc")
        sample = [p for p in images if _is_j2k(p)][:2]
        uploaded = [rest("/instances", p.read_bytes())["ID"] for p in sample]
        job = rest("/modalities/spinecad/store", json.dumps(uploaded).encode())
        assert job["FailedInstancesCount"] == 0 and job["InstancesCount"] == 2
        _wait(lambda: _status(node)["forwarded"] == 2, 120, "the results in Orthanc")
        series = rest("/series?expand")
    finally:
        node.stop()
        server.terminate()
        server.wait(timeout=30)
    studies = {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in sample}
    by_modality: dict[str, int] = defaultdict(int)
    for item in series:
        by_modality[item["MainDicomTags"].get("Modality", "")] += len(item["Instances"])
    assert by_modality["SR"] == by_modality["OT"] == by_modality["PR"] == 2
    parents = {item["ParentStudy"] for item in series}
    assert len(parents) == len(studies)  # the results are filed with their images, in no study of their own


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/system", timeout=2):
            return True
    except OSError:
        return False


def test_stow_rs_and_the_status_in_the_web_server(screener: Screener, images: list[Path], tmp_path: Path) -> None:
    """`python -m dernet.web --node`: STOW-RS into the node, its results forwarded, its counts on /api/node; the
    node listens for C-STORE in the same process."""
    from fastapi.testclient import TestClient

    from dernet.web.app import create_app

    scp = StoreSCP(tmp_path / "received").start()
    config = NodeConfig(port=_free_port(), spool=tmp_path / "spool", forward=(scp.destination,), mode="all")
    sample = [p for p in images if _is_j2k(p)][:2]
    boundary = "spinecad-boundary"
    parts = [*(p.read_bytes() for p in sample), b"not a DICOM file"]
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
                    for part in parts) + f"--{boundary}--\r\n".encode()  # fmt: skip
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    try:
        with TestClient(create_app(screener=screener, node_config=config)) as client:
            assert subprocess.run([_tool("echoscu"), "-aec", "SPINECAD", "127.0.0.1", str(config.port)]).returncode == 0
            answer = client.post("/dicomweb/studies", content=body, headers={"Content-Type": content_type})
            _wait(lambda: client.get("/api/node").json()["forwarded"] == 2, 120, "the results")
            status = client.get("/api/node").json()
            wrong = client.post("/dicomweb/studies", content=b"x", headers={"Content-Type": "application/json"})
        without = TestClient(create_app(screener=screener)).get("/api/node")
    finally:
        scp.stop()
    assert answer.status_code == 202 and answer.headers["content-type"] == "application/dicom+json"
    response = answer.json()
    stored = [item["00081155"]["Value"][0] for item in response["00081199"]["Value"]]
    assert stored == [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sample]
    assert response["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert status["received"] == status["screened"] == 2 and status["state"] == "running"
    assert wrong.status_code == 415 and without.status_code == 404
    assert len(scp.received()["SR"]) == 2
