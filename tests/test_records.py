"""One source of truth per setting and typed stage files: CLAHE decided once at prepare and checked at export; every
stage file (ensemble.json, the manifest, a detector run's options, the prepared preprocessing) fails at load naming
the file and the key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dernet.datasets.preprocessing import PreprocessingMismatchError, read_data_preprocessing
from dernet.deploy.manifest import ManifestError, load_manifest, update_manifest
from dernet.ensemble.record import load_ensemble
from dernet.records import RecordError

from .conftest import CACHE_LONG_SIDE


def test_prepare_records_the_preprocessing_the_loaders_use(prepared_dir: Path) -> None:
    from dernet.ensemble.data import RadiographDataModule

    recorded = read_data_preprocessing(prepared_dir)
    assert (
        recorded.cache_long_side == CACHE_LONG_SIDE
        and recorded.clahe_clip_limit == 2.0
        and recorded.clahe_tile_grid == 8
    )
    taken = RadiographDataModule(str(prepared_dir), image_size=64, num_workers=0)
    assert (taken.hparams.clahe_clip_limit, taken.hparams.clahe_tile_grid) == (2.0, 8)
    overridden = RadiographDataModule(str(prepared_dir), image_size=64, num_workers=0, clahe_clip_limit=3.0)
    assert (overridden.hparams.clahe_clip_limit, overridden.hparams.clahe_tile_grid) == (3.0, 8)


def test_a_renamed_key_in_ensemble_json_fails_at_load_naming_it(fitted_ensemble: Path, tmp_path: Path) -> None:
    data = json.loads(fitted_ensemble.read_text())
    data["voting_weights"] = data.pop("weights")
    broken = tmp_path / "ensemble.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(RecordError) as caught:
        load_ensemble(broken)
    message = str(caught.value)
    assert message.startswith(f"{broken}: unknown key 'voting_weights'") and "key 'weights' is missing" in message
    assert "\n" not in message and "spine-cad fit-ensemble" in message

    data = json.loads(fitted_ensemble.read_text())
    data["members"][1]["treshold"] = data["members"][1].pop("threshold")
    broken.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"unknown key 'members\.1\.treshold' \(did you mean 'threshold'\?\)"):
        load_ensemble(broken)


def test_the_export_command_names_the_bad_key_in_one_line(
    fitted_ensemble: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from dernet.export.__main__ import main

    data = json.loads(fitted_ensemble.read_text())
    data["threshold"] = "high"
    broken = tmp_path / "ensemble.json"
    broken.write_text(json.dumps(data))
    assert main(["--ensemble", str(broken), "--models", str(tmp_path / "export"), "--only", "classifier"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {broken}: key 'threshold': input should be a valid number") and "\n" not in err


def test_a_renamed_manifest_key_names_the_file_and_the_key(exported_models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    shutil.copytree(exported_models, folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["detector"]["confidence"] = data["detector"].pop("conf")
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"manifest\.json: unknown key 'detector\.confidence' \(did you mean 'conf'"):
        load_manifest(folder)


def _member_trained_with(checkpoint: Path, target: Path, clip_limit: float) -> Path:
    """A copy of a trained member's checkpoint as if its data module had used ``clip_limit``."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    saved["datamodule_hyper_parameters"]["clahe_clip_limit"] = clip_limit
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(saved, target)
    return target


def test_export_refuses_members_trained_with_different_clahe(fitted_ensemble: Path, tmp_path: Path) -> None:
    from dernet.export.classifier import export_classifier

    data = json.loads(fitted_ensemble.read_text())
    odd = _member_trained_with(Path(data["members"][1]["checkpoint"]), tmp_path / "odd" / "best.ckpt", 3.0)
    data["members"][1]["checkpoint"] = str(odd)
    ensemble = tmp_path / "ensemble.json"
    ensemble.write_text(json.dumps(data))
    with pytest.raises(PreprocessingMismatchError) as caught:
        export_classifier(ensemble, data["chosen_on"]["data_dir"], tmp_path / "export", samples=1)
    message = str(caught.value)
    assert message.startswith(f"{odd} was trained with CLAHE clip limit 3, tile grid 8 but ")
    assert f"{data['members'][0]['checkpoint']} with clip limit 2, tile grid 8" in message
    assert not (tmp_path / "export" / "manifest.json").exists()


def test_export_refuses_a_detector_trained_with_other_clahe_than_the_classifier(
    exported_models: Path, tmp_path: Path
) -> None:
    import dataclasses

    folder = tmp_path / "export"
    shutil.copytree(exported_models, folder)
    manifest = load_manifest(folder)
    classifier_from = manifest.provenance["classifier_trained_with"]
    other = dataclasses.replace(manifest.preprocessing, clahe_clip_limit=3.0)
    with pytest.raises(ManifestError) as caught:
        update_manifest(folder, manifest.detector, other, {}, trained_with="runs/yolo_spine/odd/spine_options.json")
    assert str(caught.value).startswith(
        f"runs/yolo_spine/odd/spine_options.json was trained with clahe_clip_limit 3.0 but {classifier_from} "
        "(already exported) with 2.0"
    )
    assert load_manifest(folder).preprocessing.clahe_clip_limit == 2.0  # nothing written
