"""Deterministic UIDs: screening the same image with the same models and settings gives the same instances, so a
PACS that receives them twice files them once (PS3.5 B.2 allows UIDs derived from a hash of unique inputs)."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.uid import generate_uid

__all__ = ["ResultUids", "device_uid", "result_uids"]


@dataclass(frozen=True)
class ResultUids:
    series: str
    instance: str


def result_uids(
    kind: str, study_uid: str, source_uid: str, model_hashes: dict[str, str], settings: tuple[object, ...]
) -> ResultUids:
    """The series (one per kind of object, study and model pair) and instance (one per source image, kind, model
    pair and the screening settings that change the answer: mode, threshold, confidence) of a result object."""
    models = [model_hashes[role] for role in sorted(model_hashes)]
    series = generate_uid(entropy_srcs=["spine-cad series", kind, study_uid, *models])
    instance = generate_uid(entropy_srcs=["spine-cad instance", kind, source_uid, *models, *map(str, settings)])
    return ResultUids(series, instance)


def device_uid(model_name: str, model_hashes: dict[str, str]) -> str:
    """The SR's device observer: the algorithm with these exact model files."""
    return generate_uid(entropy_srcs=["spine-cad device", model_name, *(model_hashes[r] for r in sorted(model_hashes))])
