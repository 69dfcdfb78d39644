"""`make demo-spread`'s bookkeeping, without training: the floors in words, the table, and a killed run resuming from
its finished steps (a step reruns when its config changed, and so do the steps that use its output)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import demo_spread
from benchmarks.demo_spread import MEMBERS, SpreadRun, Step, spread_table, train_and_score


def _run(members: float = 0.95, ensemble: float = 0.97, map50: float = 0.45) -> SpreadRun:
    return SpreadRun(seed=1, threads=2, members=dict.fromkeys(MEMBERS, members), ensemble=ensemble,
                     map50={"gate": map50, "fusion": map50, "all": map50}, minutes=12.0)  # fmt: skip


def test_each_floor_is_named_when_missed() -> None:
    assert _run().failures() == []
    assert len(_run(members=0.79).failures()) == 3  # each member below 0.80
    assert _run(members=0.99, ensemble=0.975).failures() == ["ensemble 0.975 over a point below its best member 0.990"]
    assert _run(ensemble=0.89).failures()[0] == "ensemble 0.890 < 0.9"
    assert _run(map50=0.3).failures() == ["mAP@0.5 (all) 0.300 < 0.35"]


def test_the_table_has_a_row_per_run_and_the_spread() -> None:
    table = spread_table([_run(), _run(members=0.7)]).splitlines()
    assert len(table) == 2 + 2 + 3 and table[-3].startswith("| min |") and table[-1].startswith("| max |")
    assert "all met" in table[2] and "**missed**" in table[3] and "| 95.00 |" in table[2]


def _fake_steps(log: Path, config: Path):
    """Steps that append their name to ``log``; `evaluation` writes what the spread reads."""
    result = {"models": {**{m: {"metrics": {"auroc": 0.9}} for m in MEMBERS}, "ensemble": {"metrics": {"auroc": 0.95}}},
              "detection": {mode: {"map50": 0.4} for mode in ("gate", "fusion", "all")}}  # fmt: skip
    write = (f"import json, pathlib; p = pathlib.Path('runs/evaluation/evaluation_test.json'); "
             f"p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps({result!r})); "
             f"open({str(log)!r}, 'a').write('evaluation ')")  # fmt: skip

    def steps(seed: int) -> list[Step]:
        def echo(name: str) -> list[str]:
            return [sys.executable, "-c", f"open({str(log)!r}, 'a').write('{name} ')"]

        return [Step("member", echo("member"), (config,)), Step("yolo", echo("yolo"), ()),
                Step("ensemble", echo("ensemble"), (), ("member",)),
                Step("evaluation", [sys.executable, "-c", write], (), ("ensemble", "yolo"))]  # fmt: skip

    return steps


def test_a_run_resumes_and_reruns_what_a_changed_config_touches(tmp_path: Path, monkeypatch) -> None:
    log, config, data = tmp_path / "ran.txt", tmp_path / "member.yaml", tmp_path / "data"
    config.write_text("lr: 1\n")
    data.mkdir()
    monkeypatch.setattr(demo_spread, "demo_steps", _fake_steps(log, config))
    run = train_and_score(tmp_path / "out", data, 7, 1)
    assert log.read_text().split() == ["member", "yolo", "ensemble", "evaluation"]
    assert run.ensemble == pytest.approx(0.95) and run.map50["all"] == pytest.approx(0.4)
    assert (tmp_path / "out/s7_t1/data").resolve() == data.resolve()

    log.write_text("")
    train_and_score(tmp_path / "out", data, 7, 1)  # all finished: nothing runs again
    assert log.read_text() == ""
    config.write_text("lr: 2\n")  # the member's config changed: it and what uses it run again, YOLO does not
    train_and_score(tmp_path / "out", data, 7, 1)
    assert log.read_text().split() == ["member", "ensemble", "evaluation"]
    assert json.loads((tmp_path / "out/s7_t1/runs/evaluation/evaluation_test.json").read_text())["models"]
