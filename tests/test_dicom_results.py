"""DICOM results (SR, SC, PR) on the shared tiny models, checked with tools nobody here wrote: dcmtk's dsrdump,
dicom3tools' dciodvfy and highdicom's SR reader."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import highdicom as hd
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless

from dernet.deploy.report import build_report, render_overlay
from dernet.deploy.screening import Finding, Screener, Screening
from dernet.dicom_results import KINDS, build_results, load_settings, write_results
from dernet.gate.cli import main as gate_main
from dernet.imaging import load_windowed

from .conftest import debian_tool

ROOT = Path(__file__).resolve().parents[1]
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
PHI = {"PatientName": "Doe^Jane", "PatientID": "MRN-424242", "PatientBirthDate": "19450101",
       "AccessionNumber": "ACC-777001"}  # fmt: skip
PHI_TEXT = ("Doe^Jane", "Jane", "MRN-424242", "19450101", "ACC-777001")
FINDINGS = [
    Finding("Osteophytes", 0, 0.81, [10.5, 20.0, 60.0, 90.0]),
    Finding("Surgical implant", 1, 0.64, [100.0, 120.0, 150.0, 180.0]),
    Finding("Disc space narrowing", 4, 0.42, [30.0, 100.0, 140.0, 130.0]),
]
LESION_TYPES = [  # a lesion-type head's answer: two classes reach their thresholds
    {"label": "Osteophytes", "probability": 0.71, "threshold": 0.4, "likely": True},
    {"label": "Surgical implant", "probability": 0.12, "threshold": 0.3, "likely": False},
    {"label": "Vertebral collapse", "probability": 0.55, "threshold": 0.5, "likely": True},
]


def _tool(name: str) -> str:
    return debian_tool(name, "dicom3tools" if name == "dciodvfy" else "dcmtk")


def _phantom_dicoms(phantom_dir: Path) -> list[Path]:
    return sorted((phantom_dir / "train_images").glob("*.dicom"))


def _rewrite(source: Path, target: Path, **changes) -> Path:
    ds = pydicom.dcmread(source)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if "SOPClassUID" in changes:
        ds.file_meta.MediaStorageSOPClassUID = changes["SOPClassUID"]
    ds.save_as(target, enforce_file_format=True)
    return target


@pytest.fixture(scope="module")
def sources(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A JPEG 2000 DX, a MONOCHROME1 CR with orientation and pixel spacing, a DX without the optional study and
    patient attributes, and a PNG; the DICOM ones carry made-up patient identifiers."""
    folder = tmp_path_factory.mktemp("dicom_sources")
    files = _phantom_dicoms(phantom_dir)
    j2k = next(p for p in files if pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID
               == JPEG2000Lossless)  # fmt: skip
    mono1 = next(p for p in files if pydicom.dcmread(p, stop_before_pixels=True).PhotometricInterpretation
                 == "MONOCHROME1")  # fmt: skip
    found = {
        "dx_j2k": _rewrite(j2k, folder / "dx_j2k.dcm", **PHI, StudyID="S1", PatientSex="F", InstanceNumber=3),
        "cr_mono1": _rewrite(mono1, folder / "cr_mono1.dcm", **PHI, SOPClassUID=CR_IMAGE_STORAGE, Modality="CR",
                             PatientOrientation=["A", "F"], ImagerPixelSpacing=[0.15, 0.15]),
        "minimal": _rewrite(files[0], folder / "minimal.dcm", StudyID=None, AccessionNumber=None, Modality=None,
                            PatientBirthDate=None, PatientSex=None, PatientName="Doe^Jane", PatientID="MRN-424242"),
    }  # fmt: skip
    windowed, _ = load_windowed(j2k, 256)
    cv2.imwrite(str(folder / "exported.png"), windowed)
    found["png"] = folder / "exported.png"
    return found


@pytest.fixture(scope="module")
def screener(exported_models: Path) -> Screener:
    return Screener(exported_models)


def _screened(screener: Screener, path: Path, abnormal: bool) -> Screening:
    """A real screening of ``path`` whose answer is set to a known one (the tiny models find no boxes), so every
    box, label and confidence can be checked in the objects."""
    result = screener.screen(path, mode="all")
    assert result.status == "ok", result.reason
    result.probability = 0.93 if abnormal else 0.02
    result.findings = list(FINDINGS) if abnormal else []
    result.lesion_types = list(LESION_TYPES) if abnormal else None
    result.class_probabilities = None if abnormal else {"normal": 0.9, "osteophyte": 0.1}  # a multiclass vote's
    return result


def _build(screener: Screener, path: Path, abnormal: bool, out: Path, conf: float = 0.25):
    result = _screened(screener, path, abnormal)
    built = build_results(path, result, render_overlay(result), screener.model_hashes, conf, load_settings())
    assert built.note is None and built.error_traceback is None, built.note
    paths = write_results(built, out / path.stem)
    return result, built, {kind: Path(paths[kind]) for kind in KINDS}


@pytest.mark.parametrize(("name", "abnormal"), [("dx_j2k", True), ("dx_j2k", False), ("cr_mono1", True),
                                                ("minimal", True), ("minimal", False)])  # fmt: skip
def test_every_object_passes_the_iod_validator(
    screener: Screener, sources: dict[str, Path], tmp_path: Path, name: str, abnormal: bool
) -> None:
    dciodvfy, dsrdump = _tool("dciodvfy"), _tool("dsrdump")
    _, _, paths = _build(screener, sources[name], abnormal, tmp_path)
    for kind, path in paths.items():
        checked = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
        lines = (checked.stdout + checked.stderr).splitlines()
        assert not [line for line in lines if "Error" in line], f"{kind}: {lines}"
        assert {"sr": "ComprehensiveSR", "sc": "SCImage", "pr": "GrayscaleSoftcopyPresentationState"}[kind] in lines
    rendered = subprocess.run([dsrdump, str(paths["sr"])], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0 and not rendered.stderr, rendered.stderr
    assert "Imaging Measurement Report" in rendered.stdout
    assert ("Osteophyte" in rendered.stdout) == abnormal


def test_the_sr_reads_back_as_the_report(screener: Screener, sources: dict[str, Path], tmp_path: Path) -> None:
    source = pydicom.dcmread(sources["dx_j2k"], stop_before_pixels=True)
    result, _, paths = _build(screener, sources["dx_j2k"], True, tmp_path)
    report = build_report(result, None, screener.model_hashes)
    sr = hd.sr.srread(paths["sr"])
    assert sr.StudyInstanceUID == source.StudyInstanceUID and sr.PatientID == PHI["PatientID"]
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID and sr.InstanceNumber == 3
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID

    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == len(report["findings"]) == 3
    for group, finding in zip(groups, report["findings"], strict=True):
        x1, y1, x2, y2 = finding["box"]
        assert group.roi.value.tolist() == [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]
        assert group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert finding["label"] in group.tracking_identifier
        confidence = group.get_measurements()[0]
        assert confidence.name.meaning == "Detection confidence"
        assert confidence.value == pytest.approx(finding["confidence"])
    assert groups[1].finding_type.value == "40388003" and groups[1].finding_type.scheme_designator == "SCT"
    assert groups[0].finding_type.scheme_designator == "99SPINECAD"
    assert "99SPINECAD" in [item.CodingSchemeDesignator for item in sr.CodingSchemeIdentificationSequence]

    image = sr.content.get_image_measurement_groups()[0]
    assert image.finding_type.meaning == "Abnormal"
    values = {m.name.meaning: m.value for m in image.get_measurements()}
    assert values["Probability"] == pytest.approx(report["abnormal_probability"])
    assert values["Abnormality decision threshold"] == pytest.approx(report["threshold"])
    assert [q.value.value for q in image.get_qualitative_evaluations()] == ["MODE-ALL"]
    likely = sr.content.get_image_measurement_groups()[1:]  # one per lesion type at or above its threshold
    assert [g.finding_type.meaning for g in likely] == ["Osteophyte", "Vertebral collapse"]
    for group, row in zip(likely, [LESION_TYPES[0], LESION_TYPES[2]], strict=True):
        values = {m.name.meaning: m.value for m in group.get_measurements()}
        assert values == {"Probability": pytest.approx(row["probability"]),
                          "Lesion type decision threshold": pytest.approx(row["threshold"])}  # fmt: skip
        assert row["label"] in group.tracking_identifier

    sc, pr = pydicom.dcmread(paths["sc"]), pydicom.dcmread(paths["pr"])
    for obj in (sc, pr):
        assert obj.StudyInstanceUID == source.StudyInstanceUID and obj.PatientName == PHI["PatientName"]
        assert "not for primary diagnosis" in obj.SeriesDescription.lower()
    assert list(sc.ImageType) == ["DERIVED", "SECONDARY"] and sc.BurnedInAnnotation == "YES"
    referenced = pr.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert referenced == source.SOPInstanceUID
    annotation = pr.GraphicAnnotationSequence[0]
    assert len(annotation.GraphicObjectSequence) == 3
    texts = [t.UnformattedTextValue for t in annotation.TextObjectSequence]
    assert "Osteophytes 0.81" in texts and any("ABNORMAL" in t for t in texts)
    assert any(t.endswith("; likely lesion types: Osteophytes 0.71, Vertebral collapse 0.55") for t in texts)


def test_a_normal_image_gets_all_three_saying_so(screener: Screener, sources: dict[str, Path], tmp_path: Path) -> None:
    _, _, paths = _build(screener, sources["cr_mono1"], False, tmp_path)
    sr = hd.sr.srread(paths["sr"])
    assert sr.content.get_planar_roi_measurement_groups() == []
    verdict, top_class = sr.content.get_image_measurement_groups()
    assert verdict.finding_type.meaning == "Normal" and "Image-level class: normal" in top_class.tracking_identifier
    assert top_class.finding_type.value == "17621005"  # SCT Normal, the folder name matched case-blind
    assert [(m.name.meaning, m.value) for m in top_class.get_measurements()] == [("Probability", pytest.approx(0.9))]
    pr = pydicom.dcmread(paths["pr"])
    annotation = pr.GraphicAnnotationSequence[0]
    assert "GraphicObjectSequence" not in annotation
    assert annotation.TextObjectSequence[0].UnformattedTextValue.endswith("no finding detected; class normal 0.90")
    assert pr.PresentationLUTShape == "INVERSE"  # the CR is MONOCHROME1
    assert list(pydicom.dcmread(paths["sc"]).PatientOrientation) == ["A", "F"]
    dump = str(sr)  # the Image Library describes the radiograph's orientation and spacing when it has them
    assert "Patient Orientation Row" in dump and "Horizontal Pixel Spacing" in dump


def test_uids_are_the_same_when_screened_again(screener: Screener, sources: dict[str, Path], tmp_path: Path) -> None:
    first = _build(screener, sources["dx_j2k"], True, tmp_path / "a")[2]
    again = _build(screener, sources["dx_j2k"], True, tmp_path / "b")[2]
    other_conf = _build(screener, sources["dx_j2k"], True, tmp_path / "c", conf=0.5)[2]
    uids = {}
    for kind in KINDS:
        a, b, c = (pydicom.dcmread(p[kind], stop_before_pixels=True) for p in (first, again, other_conf))
        assert (a.SOPInstanceUID, a.SeriesInstanceUID) == (b.SOPInstanceUID, b.SeriesInstanceUID)
        assert c.SOPInstanceUID != a.SOPInstanceUID and c.SeriesInstanceUID == a.SeriesInstanceUID
        uids[kind] = a.SeriesInstanceUID
    assert len(set(uids.values())) == 3  # one series per kind


def test_the_gate_writes_them_and_keeps_patient_data_out_of_everything_else(
    exported_models: Path, sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("dx_j2k", "minimal", "png"):
        shutil.copy(sources[name], folder / sources[name].name)
    out = tmp_path / "out"  # --conf 0.001: the two-step test models score below the default 0.25
    code = gate_main([str(folder), "--models", str(exported_models), "--out", str(out), "--dicom", "--mode", "all",
                      "--conf", "0.001"])  # fmt: skip
    logs = capsys.readouterr()
    assert code == 0, logs.err
    reports = {p.name: json.loads(p.read_text()) for p in out.rglob("*.json")}
    png = reports["exported.png.json"]["dicom"]
    assert png["sr"] is None and "no DICOM results" in png["note"]
    assert not list(out.rglob("exported.png.*.dcm"))
    for stem in ("dx_j2k.dcm", "minimal.dcm"):
        report = reports[f"{stem}.json"]
        dicom = report["dicom"]
        assert dicom["note"] is None
        groups = hd.sr.srread(dicom["sr"]).content.get_planar_roi_measurement_groups()
        assert len(groups) == len(report["findings"]) > 0
        top = max(report["findings"], key=lambda f: f["confidence"])
        confidences = [g.get_measurements()[0].value for g in groups]
        assert max(confidences) == pytest.approx(top["confidence"])
        for kind in KINDS:
            written = pydicom.dcmread(dicom[kind])
            assert written.PatientID == PHI["PatientID"]
    everything_else = [p for p in out.rglob("*") if p.is_file() and not p.name.endswith(".dcm")]
    assert {p.suffix for p in everything_else} == {".json", ".png", ".csv"}
    for text in PHI_TEXT:
        assert text not in logs.out and text not in logs.err
        for path in everything_else:
            assert text.encode() not in path.read_bytes(), f"{text} in {path.name}"


def test_the_web_api_answers_the_same_objects(
    screener: Screener, exported_models: Path, sources: dict[str, Path], tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from dernet.web.app import create_app

    client = TestClient(create_app(screener=screener))
    assert client.get("/api/health").json()["dicom"] is True
    answer = client.post("/api/analyze", files={"file": ("x.dcm", sources["dx_j2k"].read_bytes())},
                         data={"mode": "all", "dicom": "true"}).json()  # fmt: skip
    out = tmp_path / "gate"
    assert gate_main([str(sources["dx_j2k"]), "--models", str(exported_models), "--out", str(out), "--dicom",
                      "--mode", "all"]) == 0  # fmt: skip
    written = json.loads(next(out.rglob("*.json")).read_text())["dicom"]
    for kind in KINDS:
        served = pydicom.dcmread(io.BytesIO(base64.b64decode(answer["dicom"][f"{kind}_base64"])))
        assert served.SOPInstanceUID == pydicom.dcmread(written[kind]).SOPInstanceUID
    png = client.post("/api/analyze", files={"file": ("x.png", sources["png"].read_bytes())},
                      data={"dicom": "true"}).json()  # fmt: skip
    assert png["dicom"]["sr_base64"] is None and "no DICOM results" in png["dicom"]["note"]
    plain = client.post("/api/analyze", files={"file": ("x.dcm", sources["dx_j2k"].read_bytes())}).json()
    assert "dicom" not in plain and PHI["PatientID"] not in json.dumps(plain)


def test_a_bad_dicom_config_or_a_missing_extra_is_one_line(
    exported_models: Path, sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "dicom.yaml"
    config.write_text("manufacturer: Example Hospital AI\nseries:\n  sr:\n    numbr: 5\n")
    args = [str(sources["dx_j2k"]), "--models", str(exported_models), "--out", str(tmp_path / "o"), "--dicom"]
    assert gate_main([*args, "--dicom-config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(config) in err and "numbr" in err
    config.write_text("manufacturer: Example Hospital AI\nseries:\n  sr:\n    number: 5\n")
    assert gate_main([*args, "--dicom-config", str(config)]) == 0
    sr = pydicom.dcmread(next((tmp_path / "o").rglob("*.sr.dcm")))
    assert sr.Manufacturer == "Example Hospital AI" and sr.SeriesNumber == 5
    blocked = subprocess.run([sys.executable, str(ROOT / "tests" / "without_extras.py"), "dicom", "dernet.gate", *args],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert blocked.returncode == 2 and "spine-cad[dicom]" in blocked.stderr
    assert len(blocked.stderr.strip().splitlines()) == 1, blocked.stderr


def test_a_dicom_peer_accepts_them(screener: Screener, sources: dict[str, Path], tmp_path: Path) -> None:
    """dcmtk's storescu sends the three objects to dcmtk's storescp, which stores each under its SOP class."""
    storescp, storescu = _tool("storescp"), _tool("storescu")
    _, _, paths = _build(screener, sources["dx_j2k"], True, tmp_path / "results")
    received = tmp_path / "received"
    received.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([storescp, "-od", str(received), str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)  # fmt: skip
    try:
        for _ in range(50):
            if subprocess.run([_tool("echoscu"), "localhost", str(port)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        sent = subprocess.run([storescu, "-aec", "ANY-SCP", "localhost", str(port), *map(str, paths.values())],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
    stored = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in received.iterdir()}
    assert stored == {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in paths.values()}
