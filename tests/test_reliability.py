"""Every input gets a clean answer: the reader's contract under fuzzing, the shared reproducers, the gate on broken
folders, and decoding isolated in bounded worker processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dernet.deploy.isolation import IsolatedReader, IsolationLimits
from dernet.gate.cli import main as gate_main
from dernet.imaging import ImageReadError

from .fuzzing import reproducers

ROOT = Path(__file__).resolve().parents[1]
NO_RUST_BACKTRACE = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}  # a panic still says one line

REPRODUCER_CHECK = """
import json, resource, sys, time
from dernet.deploy import Screener
from dernet.imaging import ImageReadError, load_windowed
screener = Screener(sys.argv[1])
results = {}
for path in sys.argv[2:]:
    before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    try:
        load_windowed(path, 128)
        outcome = "ok"
    except ImageReadError as err:
        outcome = err.kind
    prepared = screener.prepare(path)  # the gate's core: read, reject, both model inputs
    results[path] = {"reader": outcome, "gate": prepared.result.status, "code": prepared.result.reason_code,
                     "seconds": time.perf_counter() - start,
                     "growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def reproducer_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return reproducers(tmp_path_factory.mktemp("reproducers"))


def test_every_reproducer_ends_cleanly_quickly_and_in_bounded_memory(
    reproducer_files: list[Path], exported_models: Path
) -> None:
    """Each of shared/reliability/reproducers (exceptions of 48 kinds, a hang, memory bombs) in a fresh process:
    an image or a rejection with a kind, in under 5 s and under 1 GB of growth, through the reader and the gate."""
    assert len(reproducer_files) == 55
    command = [sys.executable, "-c", REPRODUCER_CHECK, str(exported_models), *map(str, reproducer_files)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=NO_RUST_BACKTRACE, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for path, result in results.items():
        name = Path(path).name
        assert result["seconds"] < 5 and result["growth_mb"] < 1024, (name, result)
        assert result["gate"] in {"ok", "rejected"} and (result["gate"] == "ok") == (result["code"] is None), name
    hang = results[str(next(p for p in reproducer_files if "HANG" in p.name))]
    assert hang["reader"] == "corrupt"
    bombs = [r for p, r in results.items() if "_MEM_" in p or "40000" in p]
    assert {r["reader"] for r in bombs} == {"too_large"}


def test_fuzzing_the_reader_keeps_its_contract(phantom_dir: Path, tmp_path: Path) -> None:
    """2,000 seeded mutations (structured and byte-level) of phantoms, pydicom's files, PNG/JPEG and the reproducers:
    only images or ImageReadError, none over the time limit, memory growth bounded (a fresh process)."""
    out = tmp_path / "fuzz.json"
    command = [sys.executable, "-m", "tests.fuzzing", "--count", "2000", "--seed", "7",
               "--phantoms", str(phantom_dir / "train_images"), "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=NO_RUST_BACKTRACE, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["broken"] == [], result["broken"][:10]
    assert sum(result["outcomes"].values()) == 2000 and result["outcomes"]["ok"] > 100
    assert result["slowest_s"] < 5 and result["peak_rss_growth_mb"] < 1024


# --- the gate never stops on one input ----------------------------------------------------------------------------


def test_a_folder_of_broken_files_gets_a_report_each(
    exported_models: Path, phantom_dir: Path, reproducer_files: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for path in reproducer_files:
        shutil.copy(path, folder)
    good = next((phantom_dir / "train_images").iterdir())
    shutil.copy(good, folder / "good.dcm")
    (folder / "sub").mkdir()
    os.symlink("loop_b", folder / "sub" / "loop_a")
    os.symlink("loop_a", folder / "sub" / "loop_b")
    os.symlink("nowhere.dcm", folder / "sub" / "broken.dcm")
    os.mkfifo(folder / "sub" / "pipe.dcm")
    (folder / os.fsdecode(b"caf\xe9.dcm")).write_bytes(good.read_bytes())  # a Latin-1 name: not UTF-8
    out = tmp_path / "out"
    code = gate_main([str(folder), "--models", str(exported_models), "--out", str(out), "--isolate", "1"])
    assert code == 1
    reports = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    inputs = [p for p in folder.rglob("*") if not p.is_dir()]
    assert len(reports) == len(inputs) == len(reproducer_files) + 6
    by_name = {Path(r["input"]).name: r for r in reports}
    assert by_name["good.dcm"]["status"] == "ok" and by_name["caf\\xe9.dcm"]["status"] == "ok"
    assert by_name["loop_a"]["reason_code"] == "unreadable" and by_name["broken.dcm"]["reason_code"] == "not_found"
    assert by_name["pipe.dcm"]["reason_code"] == "unreadable"
    assert {r["status"] for r in reports} <= {"ok", "rejected"}
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == len(inputs) + 1


def test_a_bug_on_one_input_is_reported_and_the_others_go_on(
    exported_models: Path, phantom_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from dernet.deploy import screening

    files = sorted((phantom_dir / "train_images").iterdir())[:3]
    real = screening.Screener._prepare

    def flaky(self, source, result, start):
        if source == files[1]:
            raise KeyError("an internal bug")
        return real(self, source, result, start)

    monkeypatch.setattr(screening.Screener, "_prepare", flaky)
    out = tmp_path / "out"
    assert gate_main([*map(str, files), "--models", str(exported_models), "--out", str(out)]) == 1
    reports = {Path(r["input"]).name: r for r in (json.loads(p.read_text()) for p in out.glob("*.json"))}
    failed = reports[files[1].name]
    assert failed["status"] == "error" and failed["reason_code"] == "internal_error" and "KeyError" in failed["reason"]
    assert [reports[f.name]["status"] for f in (files[0], files[2])] == ["ok", "ok"]
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and "an internal bug" in err
    assert len((out / "summary.csv").read_text().splitlines()) == 4


def test_temp_files_of_a_killed_run_are_cleared_by_the_next(
    exported_models: Path, phantom_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".image.dcm.json.{dead.stdout.strip()}.k1ll3d.tmp"
    live = out / f".other.json.{os.getpid()}.w0rk1n.tmp"  # a writer still running: left alone
    stale.write_text("{")
    live.write_text("{")
    image = next((phantom_dir / "train_images").iterdir())
    assert gate_main([str(image), "--models", str(exported_models), "--out", str(out)]) == 0
    assert not stale.exists() and live.exists()


# --- decoding in bounded worker processes -------------------------------------------------------------------------


def test_isolated_decoding_equals_in_process_and_survives_a_hang_a_crash_and_a_memory_hog(phantom_dir: Path) -> None:
    from dernet.imaging import load_windowed

    from . import isolation_helpers as bugs

    image = next((phantom_dir / "train_images").iterdir())
    with IsolatedReader(IsolationLimits(workers=1, timeout_s=2.0, memory_mb=1024)) as reader:
        windowed, meta = reader.load_windowed(image, 128, name="x")
        expected, expected_meta = load_windowed(image, 128)
        np.testing.assert_array_equal(windowed, expected)
        assert meta == expected_meta
        for bug, kind, phrase in [
            (bugs.sleep_forever, "timeout", "longer than 2 s"),
            (bugs.crash, "corrupt", "died"),
            (bugs.allocate_gigabytes, "too_large", "1024 MB"),
        ]:
            with pytest.raises(ImageReadError) as info:
                reader.run(bug, name=bug.__name__)
            assert info.value.kind == kind and phrase in info.value.reason, info.value
        again, _ = reader.load_windowed(image, 128, name="x")  # a fresh worker took over
        np.testing.assert_array_equal(again, expected)
