"""Batch screening on a local Ray with 2 CPUs (`python -m dernet.batch`): rows equal the gate's reports, reruns
resume, bad inputs are rows with reasons, a dead actor is survived, and the missing extra is one line."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
from pydicom.data import get_testdata_file

from dernet.batch.cli import main as batch_main
from dernet.gate.cli import main as gate_main
from tests.batch_helpers import CRASH_MARKER

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory):
    """One Ray for the module (2 CPUs, a small object store); its workers crash once on a 'crash-once' input."""
    marker = tmp_path_factory.mktemp("crash") / "crashed"
    hook = {"worker_process_setup_hook": "tests.batch_helpers.crash_once_on_marked_inputs",
            "env_vars": {CRASH_MARKER: str(marker), "PYTHONPATH": str(ROOT)}}  # fmt: skip
    ray.init(num_cpus=2, object_store_memory=100 << 20, include_dashboard=False, logging_level=logging.WARNING,
             runtime_env=hook)  # fmt: skip
    yield marker
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Phantom radiographs in two folders (one a PNG), as an archive would hold them."""
    import cv2

    from dernet.imaging import load_windowed

    folder = tmp_path_factory.mktemp("archive")
    images = sorted((phantom_dir / "test_images").glob("*.dicom"))[:4]
    for i, image in enumerate(images):
        target = folder / ("2024" if i % 2 else "2025") / image.name
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(image, target)
    windowed, _ = load_windowed(images[0], 256)
    cv2.imwrite(str(folder / "2025" / "exported.png"), windowed)
    return folder


def _rows(out: Path) -> dict[str, dict]:
    parts = sorted((out / "rows").glob("part-*.parquet"))
    return {row["input"]: row for part in parts for row in pq.read_table(part).to_pylist()}


def test_rows_equal_the_gate_reports(local_ray, archive: Path, exported_models: Path, tmp_path: Path, capsys) -> None:
    flags = ["--models", str(exported_models), "--mode", "all", "--conf", "0.001"]
    assert gate_main([str(archive), *flags, "--out", str(tmp_path / "gate")]) == 0
    code = batch_main([str(archive), *flags, "--out", str(tmp_path / "batch"), "--reports", "--actors", "2",
                       "--threads-per-actor", "1", "--batch-size", "2"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    count = sum(1 for p in archive.rglob("*") if p.is_file())
    assert f"{count} screened, 0 rejected or failed; {count} rows written, 0 done earlier" in printed.out, printed.out
    gate = {r["input"]: r for r in map(json.loads, map(Path.read_text, (tmp_path / "gate").rglob("*.json")))}
    rows = _rows(tmp_path / "batch")
    assert set(rows) == set(gate) and len(rows) == count
    boxes = 0
    for name, report in gate.items():
        row = rows[name]
        assert row["status"] == report["status"] == "ok"
        assert row["abnormal_probability"] == pytest.approx(report["abnormal_probability"], abs=1e-6)
        assert row["abnormal"] == report["abnormal"] and row["threshold"] == report["threshold"]
        assert (row["width"], row["height"]) == (report["image"]["width"], report["image"]["height"])
        assert [(f["label"], f["box"]) for f in row["findings"]] == [(f["label"], f["box"]) for f in report["findings"]]
        confidences = [f["confidence"] for f in report["findings"]]
        assert [f["confidence"] for f in row["findings"]] == pytest.approx(confidences)
        assert row["classifier_sha256"] == report["models"]["classifier"]
        assert sorted(dict(row["member_probabilities"])) == ["densenet121", "resnet50", "tf_efficientnetv2_s"]
        boxes += len(row["findings"])
        # --reports: the gate's own report, but for where its overlay lies and how long it took
        written = json.loads(Path(row["report"]).read_text())
        assert Path(row["overlay"]).is_file() and written["overlay"] == row["overlay"]
        for field in ("overlay", "timings_ms"):
            written.pop(field), report.pop(field)
        assert written == report
    assert boxes > 0, "the comparison should cover boxes"
    assert not any(name in json.dumps(list(rows.values()), default=str) for name in ("PatientName", "PatientID"))


def test_a_rerun_resumes_and_a_changed_file_is_screened_again(
    local_ray, archive: Path, exported_models: Path, tmp_path: Path, capsys
) -> None:
    listing = tmp_path / "inputs.csv"
    names = sorted(str(p.relative_to(archive)) for p in archive.rglob("*.dicom"))
    count = sum(1 for p in archive.rglob("*") if p.is_file())
    listing.write_text("path\n" + "".join(f"{archive / n}\n" for n in names[:2]))
    out = tmp_path / "batch"
    (out / "rows").mkdir(parents=True)
    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / "rows" / f".part-x.parquet.{killed.stdout.strip()}.abc.tmp").write_bytes(b"PAR1 half")  # a killed write
    assert batch_main([str(listing), "--models", str(exported_models), "--out", str(out)]) == 0
    assert "2 rows written, 0 done earlier" in capsys.readouterr().out
    assert not list((out / "rows").glob(".*"))

    assert batch_main([str(archive), "--models", str(exported_models), "--out", str(out)]) == 0
    assert f"{count - 2} rows written, 2 done earlier" in capsys.readouterr().out
    changed = archive / names[0]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert batch_main([str(archive), "--models", str(exported_models), "--out", str(out)]) == 0
    assert f"1 rows written, {count - 1} done earlier" in capsys.readouterr().out
    assert pq.read_table(out / "rows").num_rows == count + 1  # the changed file's first row stays beside its new one

    assert batch_main([str(archive), "--models", str(exported_models), "--out", str(out), "--mode", "fusion"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds rows made with other settings (mode)" in err


def test_bad_inputs_are_rows_with_reasons_and_a_dead_actor_is_survived(
    local_ray: Path, archive: Path, exported_models: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted(archive.rglob("*.dicom"))[0]
    shutil.copyfile(good, folder / "good.dcm")
    shutil.copyfile(good, folder / "crash-once.dcm")
    data = good.read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    shutil.copyfile(get_testdata_file("test-SR.dcm", download=False), folder / "report.dcm")
    out = tmp_path / "batch"
    uris = [f"local://{folder / 'good.dcm'}", f"local://{folder / 'gone.dcm'}"]  # read through fsspec
    code = batch_main([str(folder), str(folder / "vanished.dcm"), *uris, "--models", str(exported_models), "--out",
                       str(out), "--actors", "1", "--batch-size", "2"])  # fmt: skip
    assert code == 1
    assert local_ray.exists(), "the crash-once input should have killed its first actor"
    rows = {Path(name).name: row for name, row in _rows(out).items() if "://" not in name}
    assert rows["good.dcm"]["status"] == rows["crash-once.dcm"]["status"] == "ok"
    assert rows["crash-once.dcm"]["abnormal_probability"] == rows["good.dcm"]["abnormal_probability"]
    by_uri = _rows(out)
    assert by_uri[uris[0]]["abnormal_probability"] == rows["good.dcm"]["abnormal_probability"]
    assert by_uri[uris[1]]["reason_code"] == "not_found"
    for name, code in (("truncated.dcm", "corrupt"), ("report.dcm", "no_pixel_data"), ("vanished.dcm", "not_found")):
        assert rows[name]["status"] == "rejected" and rows[name]["reason_code"] == code, rows[name]
        assert rows[name]["reason"] and rows[name]["abnormal_probability"] is None
    assert "3 screened, 4 rejected or failed; 7 rows written" in capsys.readouterr().out


def test_usage_errors_are_one_line(local_ray, archive: Path, exported_models: Path, tmp_path: Path, capsys) -> None:
    assert batch_main([str(archive), "--models", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]) == 2
    assert "no manifest" in capsys.readouterr().err
    listing = tmp_path / "bad.parquet"
    listing.write_text("not parquet")
    assert batch_main([str(listing), "--models", str(exported_models), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be read as a list of inputs" in err[0]
    assert batch_main(["nosuchfs://bucket/a.dcm", "--models", str(exported_models), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: nosuchfs:// inputs:")


def test_without_the_scale_extra_it_says_which_to_install(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "tests" / "without_extras.py"), "scale", "dernet.batch", str(tmp_path),
               "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    needed = "error: this needs the 'scale' extra (ray is not installed): pip install 'spine-cad[scale]'"
    assert done.stderr.strip() == needed


def test_rows_carry_the_lesion_types_and_the_top_class() -> None:
    """An export with a lesion-type head or a multiclass vote adds them to the row, typed as the schema says."""
    from dernet.batch.rows import row_of, rows_table
    from dernet.deploy.screening import Screening

    lesion_types = [{"label": "Osteophytes", "probability": 0.71, "threshold": 0.4, "likely": True}]
    result = Screening("a.png", "ok", "gate", 0.5, probability=0.9, lesion_types=lesion_types,
                       class_probabilities={"normal": 0.1, "osteophyte": 0.9})  # fmt: skip
    plain = Screening("b.png", "rejected", "gate", 0.5, reason="unreadable", reason_code="corrupt")
    rows = rows_table([row_of(r, r.input, {}, None, None) for r in (result, plain)]).to_pylist()
    assert rows[0]["lesion_types"] == lesion_types and rows[0]["top_class"] == "osteophyte"
    assert dict(rows[0]["class_probabilities"]) == {"normal": 0.1, "osteophyte": 0.9}
    assert (rows[1]["lesion_types"], rows[1]["class_probabilities"], rows[1]["top_class"]) == (None, None, None)


def test_studies_are_decided_as_the_gate_decides_them(
    local_ray, phantom_dir: Path, exported_models: Path, tmp_path: Path
) -> None:
    import pandas as pd
    import pydicom

    folder = tmp_path / "in"
    folder.mkdir()
    for i, source in enumerate(sorted((phantom_dir / "test_images").glob("*.dicom"))[:3]):
        ds = pydicom.dcmread(source)
        if i < 2:
            ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.4242"  # two views of one study
        ds.save_as(folder / f"view{i}.dcm")
    flags = ["--models", str(exported_models)]
    assert gate_main([str(folder), *flags, "--out", str(tmp_path / "gate")]) == 0
    assert batch_main([str(folder), *flags, "--out", str(tmp_path / "batch"), "--actors", "1",
                       "--threads-per-actor", "1"]) == 0  # fmt: skip
    gate = pd.read_csv(tmp_path / "gate" / "studies.csv", dtype={"study_key": str})
    batch = pd.read_csv(tmp_path / "batch" / "studies.csv", dtype={"study_key": str})
    assert list(batch.study_key) == list(gate.study_key) == ["1.2.826.0.1.3680043.8.498.4242"]
    assert batch.probability[0] == pytest.approx(gate.probability[0], abs=1e-6)
    assert (batch.abnormal[0], batch.method[0], batch.images[0]) == (gate.abnormal[0], "max of the images", 2)
    assert {r["study_key"] for r in _rows(tmp_path / "batch").values()} >= {"1.2.826.0.1.3680043.8.498.4242"}
