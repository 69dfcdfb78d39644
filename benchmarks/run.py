"""`make bench`: our gate side by side with the obvious alternatives, on this machine, in one run.

Speed: production configurations (the members at configs/ensemble sizes, YOLO11-L at configs/yolo_spine.yaml's
imgsz, the cache long side of configs/data.yaml), random weights. Accuracy changes: the demo-trained models on the
phantom's test split. Every figure is the median of 5 timed runs after a warm-up. Ratios > 1 mean "ours is faster".
Writes runs/bench/latest.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from dernet.cliutil import add_out, run_command
from dernet.deploy.manifest import load_manifest, read_manifest_file, write_manifest_file
from dernet.errors import MissingFileError
from dernet.fileio import write_json_atomic, write_text_atomic
from dernet.imaging import set_decoder_threads

from .assets import ROOT, gating_folder, production_models, production_settings, release_like_images
from .batch import batch_vs_gate
from .node import node_throughput
from .timing import RUNS, median_s, ms

ROLES = ("classifier", "detector")
VARIANTS = ["int8", "openvino-fp32", "openvino-bf16", "openvino-int8"]
TARGETS = {
    "end_to_end_vs_naive": (">=", 6), "reader_speedup": (">=", 8), "classifier_ort_vs_torch": (">=", 1.8),
    "detector_ort_vs_torch": (">=", 1.8), "classifier_fast_vs_fp32": (">=", 3), "detector_fast_vs_fp32": (">=", 3),
    "fast_auroc_delta": (">=", -0.5), "fast_map_delta": (">=", -1.0), "gate_overhead": ("<=", 1.3),
    "gating_saving": (">=", 1.3), "peak_rss_mb": ("<=", 1500), "prepare_vs_1024_cache": (">=", 2),
    "batch_vs_gate": (">=", 0.9),
}  # fmt: skip


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def naive_windowed(path: Path, long_side: int) -> np.ndarray:
    """The windowed cache image from pydicom's full-resolution decode (our reader decodes a reduced level): the
    reader without a target size decodes every pixel, then the same windowing and resize."""
    from dernet.imaging import read_image, resize_long_side, to_uint8

    unit, _ = read_image(path)  # no target long side: the full decode
    return to_uint8(resize_long_side(unit, long_side))


# --- the naive path a user would write ---------------------------------------------------------------------------


class NaivePipeline:
    """pydicom's full-resolution decode + the same preprocessing + the three members in PyTorch eager + Ultralytics
    ``predict`` on the ``.pt`` weights."""

    def __init__(self, checkpoints: Path, detector_pt: Path, cache_long_side: int, imgsz: int) -> None:
        from ultralytics import YOLO

        from dernet.ensemble.predict import load_member
        from dernet.ensemble.record import load_ensemble

        saved = load_ensemble(checkpoints / "ensemble.json")
        self.members = [load_member(m.checkpoint) for m in saved.members]
        self.weights = np.array(saved.weights) / np.sum(saved.weights)
        self.detector = YOLO(str(detector_pt), task="detect")
        self.cache_long_side, self.imgsz = cache_long_side, imgsz

    def __call__(self, path: Path) -> tuple[float, int]:
        import torch

        from dernet.imaging import classifier_array, model_input

        windowed = naive_windowed(path, self.cache_long_side)
        with torch.inference_mode():
            probs = [
                float(torch.sigmoid(m(torch.from_numpy(classifier_array(windowed, int(m.hparams.image_size))))))
                for m in self.members
            ]
        image = model_input(windowed, self.imgsz)
        rgb = np.repeat(image[..., None], 3, axis=2)
        boxes = self.detector.predict(rgb, imgsz=self.imgsz, conf=0.25, verbose=False, device="cpu")[0].boxes
        return float(np.dot(self.weights, probs)), len(boxes)


# --- measurements -----------------------------------------------------------------------------------------------


def torch_vs_ort(production: Path, assets: Path) -> dict[str, Any]:
    """Batch-1 latency of each model in PyTorch eager and in every runtime variant (ms)."""
    import torch

    from dernet.ensemble.predict import load_member
    from dernet.ensemble.record import load_ensemble
    from dernet.export.classifier import EnsembleGraph
    from dernet.export.quantize import time_variants

    manifest = load_manifest(production)
    checkpoints = assets / "checkpoints"
    saved = load_ensemble(checkpoints / "ensemble.json")
    members = [load_member(m.checkpoint) for m in saved.members]
    graph = EnsembleGraph(members, [int(m.hparams.image_size) for m in members], list(saved.weights), "probability")
    size, imgsz = manifest.classifier.input_size, manifest.detector.imgsz
    x_cls = torch.rand(1, 1, size, size)
    detector = _detector_module(checkpoints / "detector" / "weights" / "best.pt")
    x_det = torch.rand(1, 3, imgsz, imgsz)
    # Ultralytics sets torch's threads to cores - 1 whenever it selects the CPU (building the detector assets did):
    # PyTorch gets every core here, as ONNX Runtime does, so the comparison does not depend on what ran before.
    torch.set_num_threads(os.cpu_count() or 1)
    with torch.inference_mode():
        torch_ms = {
            "classifier": ms(median_s(lambda: graph.eval()(x_cls))),
            "detector": ms(median_s(lambda: detector(x_det))),
        }
    log(f"PyTorch eager: {torch_ms}")
    time_variants(production, ROOT / "data/prepared", VARIANTS)
    manifest = load_manifest(production)
    runtimes = {role: {n: e["ms"] for n, e in getattr(manifest, role).variants.items()} for role in ROLES}
    log(f"runtimes: {runtimes}")
    flops = {"classifier": _flops(graph.eval(), x_cls), "detector": _flops(detector, x_det)}
    return {"torch_ms": torch_ms, "runtime_ms": runtimes, "flops": flops}


def _detector_module(weights: Path):
    import torch

    model = torch.load(weights, map_location="cpu", weights_only=False)["model"].float().eval()
    for module in model.modules():  # inference mode of the head: decoded boxes, as the export
        if hasattr(module, "export"):
            module.export = False
    return model


def _flops(model, example) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(example)
    return float(counter.get_total_flops())


def gemm_gflops(n: int = 2048) -> float:
    """This machine's float32 matrix-multiply rate (numpy, all cores), the practical limit for these models."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    return round(2 * n**3 / median_s(lambda: a @ b) / 1e9, 1)


def fast_choice(production: Path, demo_checked: dict[str, dict[str, dict]]) -> dict[str, str]:
    """Per model: the fastest variant on the production models among those the demo models' check accepted."""
    manifest = load_manifest(production)
    choice = {}
    for role in ROLES:
        timed = getattr(manifest, role).variants
        allowed = [n for n in timed if n == "fp32" or demo_checked[role].get(n, {}).get("accepted")]
        choice[role] = min(allowed, key=lambda n: timed[n]["ms"])
    return choice


def accept_as_checked(production: Path, demo_checked: dict[str, dict[str, dict]]) -> None:
    """Carry the demo models' accuracy verdicts to the random-weight production models (which have none)."""
    manifest = read_manifest_file(production)
    for role in ROLES:
        spec = getattr(manifest, role)
        entries = {
            name: entry if name == "fp32" else {**entry, "accepted": bool(checked.get(name, {}).get("accepted"))}
            for checked in [demo_checked[role]]
            for name, entry in spec.variants.items()
        }
        manifest = dataclasses.replace(manifest, **{role: dataclasses.replace(spec, variants=entries)})
    write_manifest_file(production, manifest)


def demo_variants(assets: Path) -> tuple[dict, Path]:
    """A copy of the demo export with every variant made, timed and checked on the validation split."""
    from dernet.export.quantize import add_variants

    demo = assets / "demo_export"
    shutil.rmtree(demo, ignore_errors=True)
    shutil.copytree(ROOT / "export", demo)
    return add_variants(demo, ROOT / "data/prepared", VARIANTS), demo


def test_split_deltas(demo: Path, choice: dict[str, str]) -> tuple[float, float, dict]:
    from dernet.evaluation import evaluate_exported

    def score(variant) -> tuple[float, float]:
        result = evaluate_exported(demo, ROOT / "data/prepared", "test", None, bootstrap=0, variant=variant)
        return result["models"]["ensemble"]["metrics"]["auroc"] * 100, result["detection"]["all"]["map50"] * 100

    fp32 = score("fp32")
    fast = score(choice)
    return round(fast[0] - fp32[0], 3), round(fast[1] - fp32[1], 3), {"fp32": fp32, "fast": fast}


def end_to_end(production: Path, assets: Path, image: Path, settings: dict) -> dict[str, float]:
    from dernet.deploy import Screener

    screener = Screener(production)
    ours = median_s(lambda: screener.screen(image, mode="all"))
    result = screener.screen(image, mode="all")
    naive = NaivePipeline(
        assets / "checkpoints", assets / "checkpoints/detector/weights/best.pt",
        settings["cache_long_side"], settings["imgsz"],
    )  # fmt: skip
    naive_s = median_s(lambda: naive(image))
    return {"ours_ms": ms(ours), "naive_ms": ms(naive_s), "timings_ms": result.timings_ms,
            "variants": screener.variants}  # fmt: skip


def isolation_cost(production: Path, image: Path) -> dict[str, float]:
    """The gate core's preparation of one release-like image (read, reject, both model inputs) with decoding in a
    bounded worker process (dernet.deploy.isolation, what the web server does) and in the process itself."""
    from dernet.deploy import Screener
    from dernet.deploy.isolation import IsolationLimits

    with Screener(production, isolation=IsolationLimits(workers=1)) as isolated:
        in_worker = median_s(lambda: isolated.prepare(image))
    plain = Screener(production)
    in_process = median_s(lambda: plain.prepare(image))
    return {"in_process_ms": ms(in_process), "isolated_ms": ms(in_worker)}


def reader(image: Path, settings: dict) -> dict[str, float]:
    """Our reader (reduced JPEG 2000 decode) to the model-ready classifier input vs a full decode + the same."""
    from dernet.imaging import load_windowed, model_input

    long_side, size = settings["cache_long_side"], max(settings["member_sizes"].values())

    def ours():
        return model_input(load_windowed(image, long_side)[0], size)

    def naive():
        return model_input(naive_windowed(image, long_side), size)

    a, b = ours(), naive()
    return {"ours_ms": ms(median_s(ours)), "naive_ms": ms(median_s(naive)),
            "max_grey_difference": int(np.abs(a.astype(int) - b.astype(int)).max())}  # fmt: skip


def mixed_models(assets: Path, demo_export: Path, production: Path) -> Path:
    """The demo classifier (it separates the phantoms; with its checked variants) and the production detector (its
    real cost)."""
    folder = assets / "mixed"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    demo, prod = read_manifest_file(demo_export), read_manifest_file(production)
    for source, spec in ((demo_export, demo.classifier), (production, prod.detector)):
        files = {spec.file, *(v["file"] for v in spec.variants.values() if "file" in v)}
        for name in files:
            os.link(source / name, folder / name) if _same_fs(source, folder) else shutil.copy(source / name, folder)
    variants = tuple(sorted(set(demo.variants) | set(prod.variants)))
    # Another detector: the demo's added detectors, their fusion and its study model (fitted on the demo detector's
    # boxes) do not apply, and their files are not copied.
    mixed = dataclasses.replace(demo, detector=prod.detector, detectors=(), fusion=None, study=None, variants=variants)
    write_manifest_file(folder, mixed)
    return folder


def _same_fs(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def folder_run(models: Path, folder: Path, mode: str, prefetch: int = 2, variant="auto") -> float:
    """Wall time of the gate on a folder, outputs included (the command line's own loop), median of 5."""
    from dernet.deploy import Screener
    from dernet.deploy.report import write_outputs
    from dernet.inputs import collect_inputs, output_stems

    screener = Screener(models, variant=variant)
    files, _ = collect_inputs([folder])
    stems = output_stems(files)

    def run():
        with tempfile.TemporaryDirectory() as out:
            for path, result in zip(
                files, screener.screen_many(((p, str(p)) for p in files), mode, prefetch=prefetch), strict=True
            ):
                write_outputs(result, Path(out), stems[path], screener.model_hashes)

    return median_s(run)


def peak_rss_mb(models: Path, folder: Path, mode: str = "all") -> float:
    """Peak resident memory of `python -m dernet.gate` on the folder, in a fresh process."""
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over execve, so a child forked from this (large)
    # bench process would report the bench's own memory.
    code = (
        "import runpy, sys; sys.argv = sys.argv[1:]\n"
        "try:\n    runpy.run_module('dernet.gate', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print('PEAK_KB', hwm, file=sys.stderr)"
    )
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-c", code, "dernet.gate", str(folder), "--models", str(models), "--out", out,
             "--mode", mode],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
    line = [x for x in done.stderr.splitlines() if x.startswith("PEAK_KB")]
    if not line:
        raise RuntimeError(f"gate run failed: {done.stderr[-2000:]}")
    return round(int(line[0].split()[1]) / 1024, 1)


def prepare_rates(release: Path) -> dict[str, Any]:
    """Preparation throughput (images/s) of the release-like phantom: at the production cache with the configured
    workers, with 1 and 2 workers, and with the configured workers at a 1024 px cache (the former default)."""
    import yaml

    from dernet.datasets import PrepareConfig, prepare_dataset

    count = len(list((release / "train_images").glob("*"))) + len(list((release / "test_images").glob("*")))
    long_side = production_settings()["cache_long_side"]
    workers = int(yaml.safe_load((ROOT / "configs/data.yaml").read_text())["prepare"]["workers"])

    def rate(side: int, n: int, decode_threads: str | None = None) -> float:
        config = PrepareConfig(long_side=side, workers=n, folds=2)

        def run():
            with tempfile.TemporaryDirectory() as out:
                prepare_dataset(release, Path(out), config, progress=False)

        saved = os.environ.get("OPJ_NUM_THREADS")
        if decode_threads:  # one worker as it ran before OpenJPEG got threads: what 2 workers scale from
            os.environ["OPJ_NUM_THREADS"] = decode_threads
        try:
            return round(count / median_s(run), 2)
        finally:
            if saved is None:
                os.environ.pop("OPJ_NUM_THREADS", None)
            else:
                os.environ["OPJ_NUM_THREADS"] = saved

    by_workers = {n: rate(long_side, n) for n in sorted({1, 2, workers})}
    return {
        "images": count, "long_side": long_side, "workers": workers,
        "images_per_s": by_workers[workers], "images_per_s_1024_cache": rate(1024, workers),
        **{f"images_per_s_{n}_workers": r for n, r in by_workers.items()},
        "images_per_s_1_worker_single_thread_decode": rate(long_side, 1, "1"),
    }  # fmt: skip


# --- the run ----------------------------------------------------------------------------------------------------


def run(out_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    assets = out_dir / "assets"
    settings = production_settings()
    if not (ROOT / "export/manifest.json").is_file() or not (ROOT / "data/phantom/summary.json").is_file():
        raise MissingFileError("export/manifest.json or data/phantom/: run `make demo` first (the bench uses them)")
    log("assets: production-size models (random weights) and release-like phantoms (cached after the first run)")
    production = production_models(assets, ROOT / "data/prepared", VARIANTS)
    release, abnormal, _ = release_like_images(assets, count=32)
    gating = gating_folder(assets, ROOT / "data/phantom", 40)

    log("runtimes of each model: PyTorch eager, ONNX Runtime fp32/int8, OpenVINO fp32/bf16/int8")
    runtimes = torch_vs_ort(production, assets)
    log("accuracy of each variant on the demo models (val check, then the test split)")
    checked, demo = demo_variants(assets)
    choice = fast_choice(production, checked)
    accept_as_checked(production, checked)
    auroc_delta, map_delta, accuracy = test_split_deltas(demo, choice)

    log(f"end to end on one release-like abnormal image ({abnormal[0].name})")
    e2e = end_to_end(production, assets, abnormal[0], settings)
    read = reader(abnormal[0], settings)
    read_1024 = reader(abnormal[0], {**settings, "cache_long_side": 1024})
    isolation = isolation_cost(production, abnormal[0])
    log("gating and pipelining on folders")
    mixed = mixed_models(assets, demo, production)
    gate_s, all_s = folder_run(mixed, gating, "gate"), folder_run(mixed, gating, "all")
    demo_gate_s, demo_all_s = folder_run(ROOT / "export", gating, "gate"), folder_run(ROOT / "export", gating, "all")
    pipe_folder = release / "train_images"
    sequential_s = folder_run(production, pipe_folder, "all", prefetch=0)
    pipelined_s = folder_run(production, pipe_folder, "all", prefetch=2)
    rss = peak_rss_mb(mixed, gating)
    log("the DICOM node: two senders at once, the release-like phantoms")
    node = node_throughput(production, sorted(release.glob("*_images/*.dicom")))
    log("batch screening on Ray Data beside the gate: the 40-image folder, production models")
    batch = batch_vs_gate(production, gating, folder_run(production, gating, "all"))
    log("preparation: the production cache and a 1024 px one, 1 and 2 workers")
    prep = prepare_rates(release)
    gemm = gemm_gflops()

    rt, torch_ms, flops = runtimes["runtime_ms"], runtimes["torch_ms"], runtimes["flops"]
    model_ms = rt["classifier"][e2e["variants"]["classifier"]] + rt["detector"][e2e["variants"]["detector"]]
    gflops = {}
    for role in ("classifier", "detector"):
        timed = {"pytorch": torch_ms[role], **rt[role]}
        gflops[role] = {name: round(flops[role] / (t / 1000) / 1e9, 1) for name, t in timed.items()}
    result = {
        "end_to_end_vs_naive": round(e2e["naive_ms"] / e2e["ours_ms"], 2),
        "reader_speedup": round(read["naive_ms"] / read["ours_ms"], 2),
        "classifier_ort_vs_torch": round(torch_ms["classifier"] / rt["classifier"]["fp32"], 2),
        "detector_ort_vs_torch": round(torch_ms["detector"] / rt["detector"]["fp32"], 2),
        "classifier_fast_vs_fp32": round(rt["classifier"]["fp32"] / rt["classifier"][choice["classifier"]], 2),
        "detector_fast_vs_fp32": round(rt["detector"]["fp32"] / rt["detector"][choice["detector"]], 2),
        "fast_runtime": f"classifier: {choice['classifier']}, detector: {choice['detector']}",
        "fast_auroc_delta": auroc_delta,
        "fast_map_delta": map_delta,
        "gate_overhead": round(e2e["ours_ms"] / model_ms, 2),
        "gating_saving": round(all_s / gate_s, 2),
        "gate_images_per_s": round(len(list(pipe_folder.iterdir())) / pipelined_s, 2),
        "naive_images_per_s": round(1000 / e2e["naive_ms"], 2),
        "prepare_images_per_s": prep["images_per_s"],
        "prepare_vs_1024_cache": round(prep["images_per_s"] / prep["images_per_s_1024_cache"], 2),
        "peak_rss_mb": rss,
        "gflops_per_s": {**gflops, "gemm_fp32_limit": gemm},
        "isolation_cost_ms": round(isolation["isolated_ms"] - isolation["in_process_ms"], 1),
        "batch_vs_gate": batch["steady_vs_gate"],
        "batch_with_startup_vs_gate": batch["with_startup_vs_gate"],
        "node_images_per_min": node["images_per_min"],
        "node_median_result_latency_s": node["median_result_latency_s"],
        "details": {
            "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()},
            "settings": settings,
            "runs_per_figure": RUNS,
            "end_to_end": e2e,
            "reader": read,
            "isolation": isolation,
            "pytorch_ms": torch_ms,
            "runtime_ms": rt,
            "gflop_per_inference": {k: round(v / 1e9, 2) for k, v in flops.items()},
            "accuracy_check_val": checked,
            "accuracy_test_fp32_vs_fast": {k: [round(x, 3) for x in v] for k, v in accuracy.items()},
            "gating_folder": {"images": 40, "gate_s": round(gate_s, 3), "all_s": round(all_s, 3),
                              "models": "demo classifier + production detector",
                              "demo_models_only": {"gate_s": round(demo_gate_s, 3), "all_s": round(demo_all_s, 3),
                                                   "saving": round(demo_all_s / demo_gate_s, 2)}},
            "pipelining": {"folder": str(pipe_folder), "images": len(list(pipe_folder.iterdir())),
                           "sequential_s": round(sequential_s, 3), "pipelined_s": round(pipelined_s, 3),
                           "pipelined_speedup": round(sequential_s / pipelined_s, 2)},
            "reader_at_1024_cache": read_1024,
            "prepare": prep,
            "node": node,
            "batch": batch,
            "bench_seconds": round(time.perf_counter() - started, 1),
        },
    }  # fmt: skip
    return result


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def markdown(result: dict[str, Any]) -> str:
    lines = ["| measure | value | target | met |", "|---|---|---|---|"]
    for key, (op, target) in TARGETS.items():
        value = result[key]
        met = value >= target if op == ">=" else value <= target
        lines.append(f"| `{key}` | {value} | {op} {target} | {'yes' if met else '**no**'} |")
    lines.append(f"| `fast_runtime` | {result['fast_runtime']} | | |")
    prep = result["details"]["prepare"]
    gate_images = result["details"]["pipelining"]["images"]
    lines.append(f"| `gate_images_per_s` | {result['gate_images_per_s']} | | {gate_images} release-like images; "
                 f"the naive path: {result['naive_images_per_s']} |")  # fmt: skip
    at_1024 = prep["images_per_s_1024_cache"]
    lines.append(f"| `prepare_images_per_s` | {result['prepare_images_per_s']} | | {prep['images']} release-like "
                 f"images, {prep['workers']} workers; at a 1024 px cache: {at_1024} |")  # fmt: skip
    lines.append(f"| `isolation_cost_ms` | {result['isolation_cost_ms']} | | |")
    node = result["details"]["node"]
    lines.append(f"| `node_images_per_min` | {result['node_images_per_min']} | | {node['images']} release-like images, "
                 f"{node['senders']} senders, {node['workers']} workers |")  # fmt: skip
    lines.append(f"| `node_median_result_latency_s` | {result['node_median_result_latency_s']} | | end of C-STORE "
                 "to the SR at the destination |")  # fmt: skip
    batch = result["details"]["batch"]
    lines.append(f"| `batch_with_startup_vs_gate` | {result['batch_with_startup_vs_gate']} | | both command lines on "
                 f"{batch['images']} images, start-up included: {batch['batch_cli_s']} s vs {batch['gate_cli_s']} s; "
                 f"best layout {batch['best_layout']} (actors x threads) |")  # fmt: skip
    g = result["gflops_per_s"]
    for role in ("classifier", "detector"):
        rates = ", ".join(f"{k} {v}" for k, v in g[role].items())
        lines.append(f"| `gflops_per_s.{role}` | {rates} | GEMM limit {g['gemm_fp32_limit']} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add_out(parser, "runs/bench", "latest.json and latest.md")
    args = parser.parse_args(argv)

    def bench(args: argparse.Namespace) -> int:
        set_decoder_threads()  # as the gate's command line does
        result = run(args.out)
        table = markdown(result)
        write_json_atomic(args.out / "latest.json", result)
        write_text_atomic(args.out / "latest.md", table + "\n")
        print(table)
        print(f"\nwritten: {args.out / 'latest.json'} ({result['details']['bench_seconds']:.0f} s)")
        return 0

    return run_command(bench, args)
