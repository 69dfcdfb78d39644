"""`spine-cad`: every subcommand's --help works, and the shared flags are parsed and checked the same way everywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dernet.cli import SUBCOMMANDS, main

from .conftest import ROOT

NAMES = [s.name for s in SUBCOMMANDS]


def test_help_lists_every_subcommand_with_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.split("subcommands:\n")[1].splitlines() if line.strip()]
    assert listed == NAMES
    expected = {"synth", "prepare", "train-ensemble", "fit-ensemble", "cv", "train-yolo", "export", "quantize",
                "evaluate", "gate", "explain", "serve", "bench"}  # fmt: skip
    assert expected <= set(NAMES)


def test_the_console_script_is_installed() -> None:
    script = ROOT / ".venv" / "bin" / "spine-cad"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "dernet.cli"]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and "gate" in done.stdout, done.stderr
    unknown = subprocess.run([*command, "gait"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert unknown.returncode == 2 and unknown.stderr.strip() == (
        "error: unknown subcommand 'gait'; `spine-cad --help` lists them"
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_subcommand_has_help(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out
    if name not in ("train-member", "train-detector"):  # LightningCLI's own parser names the script that runs it
        assert f"spine-cad {name}" in out


SHARED = [
    ("gate", ["x.dcm", "--conf", "1.5"], "argument --conf: 1.5 is not between 0 and 1"),
    ("export", ["--conf", "1.5"], "argument --conf: 1.5 is not between 0 and 1"),
    ("evaluate-yolo", ["--conf", "-0.1"], "argument --conf: -0.1 is not between 0 and 1"),
    ("gate", ["x.dcm", "--threshold", "high"], "argument --threshold: 'high' is not a number"),
    ("evaluate", ["--split", "holdout"], "argument --split: invalid choice: 'holdout'"),
    ("evaluate-yolo", ["--split", "holdout"], "argument --split: invalid choice: 'holdout'"),
    ("evaluate-ensemble", ["--split", "holdout"], "argument --split: invalid choice: 'holdout'"),
    ("gate", ["x.dcm", "--variant", "int4"], "argument --variant: invalid choice: 'int4'"),
    ("evaluate", ["--variant", "int4"], "argument --variant: invalid choice: 'int4'"),
    ("quantize", ["--variants", "int4"], "argument --variants: invalid choice: 'int4'"),
]


@pytest.mark.parametrize(("name", "args", "message"), SHARED, ids=[f"{n} {a[-2]}" for n, a, _ in SHARED])
def test_shared_flags_are_checked_the_same_way(
    name: str, args: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as done:
        main([name, *args])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"spine-cad {name}: error: {message}" in err


@pytest.mark.parametrize("name", ["export", "quantize", "evaluate", "gate", "serve"])
def test_the_export_folder_is_models_everywhere(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])
    out = capsys.readouterr().out
    assert "--models MODELS" in out and "--checkpoints" not in out


def test_the_python_m_alias_parses_like_the_subcommand(capsys: pytest.CaptureFixture) -> None:
    from dernet.gate.cli import main as gate_main

    with pytest.raises(SystemExit):
        gate_main(["x.dcm", "--conf", "1.5"])
    assert "python -m dernet.gate: error: argument --conf: 1.5 is not between 0 and 1" in capsys.readouterr().err
