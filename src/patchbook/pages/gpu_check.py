"""The GPU check: one prepared run of every CUDA path and a first paper-scale
CIFAR-10 training on a GPU, within a time budget, its results in one folder.

``benchmarks/gpu_check.sh OUTDIR`` installs the package and calls
``python -m patchbook gpu-check run OUTDIR``, which runs, each in its own
process with a time limit taken from what is left of the budget:

1. ``env``: the machine (``nvidia-smi``'s line, torch, CUDA), and which of
   the package's dependencies are missing or at another version than pinned;
2. ``tests``: ``pytest -m cuda tests/cuda`` (the CUDA paths against the CPU's);
3. ``encoding``: ``benchmarks/encoding.py`` on the device (images/s, the ratio
   to the authors' conv2d + kthvalue, peak memory);
4. ``selection``: ``benchmarks/selection.py`` (the K-th-value selection over
   |D| = 2048 against the matrix product, and the histogram and fused selections);
5. ``train``: the CIFAR-10 ``paper`` row at |D| = 2048 (codes of augmented
   images recomputed every epoch), one epoch at a time through the resumable
   run, for as many epochs as fit; the per-epoch time and the extrapolated
   cost of the row's 80 epochs.

The folder holds at most 8 files, none in a sub-folder (what a lent machine
returns): ``check.log`` (this run's log), ``summary.json`` (everything
measured, with the hardware), and one log per stage. Checkpoints, caches and
unpacked data go to a scratch folder outside it.

Data on a machine without the data root: ``python -m patchbook gpu-check pack
FILE`` writes the CIFAR-10 JPEG tree (and the VGG16 weights the style tests
use) as one compressed ``.npz`` of their bytes (about 45 MB instead of
60,000 files); ``run --pack FILE`` unpacks it into the scratch folder and
uses that as the data root. The files come back byte for byte, so the decoded
images (and the data fingerprint, with the same Pillow) are those of the
data root. Nothing in it is code: names, offsets and bytes, read with
``allow_pickle=False``, every name checked before a file is written.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from patchbook.cache import atomic_write
from patchbook.pages import profiles
from patchbook.patchknn import pipeline
from patchbook.paths import data_root
from patchbook.runtime import hardware, resolve_device

REPO = Path(__file__).resolve().parents[3]
FULL_EPOCHS = 80
# What a pack may hold, relative to the data root.
PACK_PREFIXES = ("cifar10-jpeg/", "weights/")
PACK_WEIGHTS = ("weights/vgg16_features_imagenet.pth",)
# Seconds kept back at the end for the summary.
RESERVE_S = 15.0


# ------------------------------------------------------------------ packing ----

def pack(out: str | os.PathLike, root: str | os.PathLike | None = None, weights: bool = True) -> dict[str, Any]:
    """Write the CIFAR-10 JPEG tree of the data root ``root`` (default
    ``$PATCHBOOK_DATA``), and with ``weights`` the VGG16 weights if present,
    as one compressed ``.npz`` (arrays ``names``, ``offsets``, ``blob``,
    ``sha256``). Returns ``{"path", "files", "bytes", "packed_bytes"}``."""
    base = data_root(root)
    tree = base / "cifar10-jpeg"
    if not tree.is_dir():
        raise FileNotFoundError(f"{tree} is missing: pack needs a data root with cifar10-jpeg/{{train,test}}/")
    files = sorted(p for p in tree.rglob("*") if p.is_file() and not p.name.startswith("."))
    if weights:
        files += [base / w for w in PACK_WEIGHTS if (base / w).is_file()]
    names = [p.relative_to(base).as_posix() for p in files]
    chunks = [p.read_bytes() for p in files]
    offsets = np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64)
    blob = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    digest = hashlib.sha256(blob).hexdigest()
    out = Path(out)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, names=np.asarray(names, dtype=str), offsets=offsets, blob=blob,
                                sha256=np.asarray(digest))

    atomic_write(out, write)
    return {"path": str(out), "files": len(names), "bytes": int(offsets[-1]), "packed_bytes": out.stat().st_size}


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return (name.startswith(PACK_PREFIXES) and not name.startswith("/") and "\\" not in name
            and all(p not in ("", ".", "..") for p in parts))


def unpack(pack_file: str | os.PathLike, dest: str | os.PathLike) -> dict[str, Any]:
    """Write the files of a :func:`pack` into the folder ``dest`` (a data
    root); the checksum and every name are checked first."""
    dest = Path(dest)
    with np.load(pack_file, allow_pickle=False) as f:
        names, offsets, blob, digest = [str(n) for n in f["names"]], f["offsets"], f["blob"], str(f["sha256"])
    if hashlib.sha256(blob).hexdigest() != digest:
        raise ValueError(f"{pack_file}: checksum mismatch (truncated or corrupt pack)")
    if len(offsets) != len(names) + 1 or offsets[-1] != len(blob):
        raise ValueError(f"{pack_file}: offsets do not match the names and bytes")
    bad = [n for n in names if not _safe_name(n)]
    if bad:
        raise ValueError(f"{pack_file}: unexpected file names {bad[:3]} (a pack holds {PACK_PREFIXES} only)")
    raw = memoryview(blob)
    for name, a, b in zip(names, offsets[:-1], offsets[1:]):
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw[int(a):int(b)])
    return {"root": str(dest), "files": len(names), "bytes": int(offsets[-1])}


# ----------------------------------------------------------------- training ----

def paper_row(tiny: bool = False):
    """The first measured row of the CIFAR-10 page at the ``paper`` profile
    (|D| = 2048, augmented codes every epoch, 80 epochs), and its working
    memory; ``tiny``: the same recipe on a few images and atoms (for a CPU run
    of the check)."""
    changes = {"n_per_class": 6, "n_test_per_class": 4, "n_atoms": 64, "batch_size": 20} if tiny else {}
    P = profiles.resolve("cifar10-table", "paper", changes)
    return pipeline.PointConfig.from_params(P, **P["rows"][0]), int(P["memory_mb"])


def extrapolate(epochs: list[dict], setup_s: float, n_epochs: int = FULL_EPOCHS) -> dict[str, Any]:
    """The cost of ``n_epochs`` epochs from the measured ones (``epochs``:
    records with ``wall_s``, the wall time of one epoch with its test
    evaluation and checkpoint): the median of the epochs after the first
    (which pays for warm-up), or the first alone; plus one more test pass
    (the evaluation after the last epoch), estimated by an epoch's wall time
    less its training time (``train_s``)."""
    if not epochs:
        return {"epochs_measured": 0, "note": "no epoch finished within the budget"}
    walls = [e["wall_s"] for e in epochs]
    steady = walls[1:] or walls
    per = float(np.median(steady))
    # the final evaluation after the last epoch: about the test pass of an epoch (its wall less its training)
    final = float(np.median([e["wall_s"] - e["train_s"] for e in (epochs[1:] or epochs)]))
    total = setup_s + walls[0] + per * (n_epochs - 1) + final
    return {"epochs_measured": len(walls), "first_epoch_s": walls[0], "epoch_s": per, "final_eval_s": final,
            "epoch_s_min": float(min(steady)), "epoch_s_max": float(max(steady)),
            "basis": "median of epochs 1.." if len(walls) > 1 else "epoch 0 alone (includes warm-up)",
            "setup_s": setup_s, "n_epochs": n_epochs, "total_s": total, "total_h": total / 3600,
            "formula": f"setup {setup_s:.1f} s + epoch 0 {walls[0]:.1f} s + {n_epochs - 1} x {per:.2f} s "
                       f"+ final evaluation {final:.1f} s"}


def train(budget_s: float, output: str | os.PathLike, run_dir: str | os.PathLike, *, device: str = "auto",
          tiny: bool = False, memory_mb: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Train the paper row one epoch at a time (each call of
    :func:`patchbook.patchknn.pipeline.measure` resumes the checkpoint of the
    last) while another epoch fits in ``budget_s`` seconds from now; writes
    the results to the JSON file ``output`` after every epoch (a kill keeps
    what was measured) and returns them."""
    t_start = time.perf_counter()
    device = resolve_device(device)
    config, mem = paper_row(tiny)
    mem = memory_mb or mem
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"config": config.to_dict(), "key": config.key(), "device": device, "memory_mb": mem,
                           "hardware": hardware(), "budget_s": budget_s, "epochs": [], "complete": False}

    def save() -> None:
        atomic_write(Path(output), lambda tmp: tmp.write_text(json.dumps(out, indent=1)))

    t0 = time.perf_counter()
    train_split, test_split = pipeline.splits(config)
    out["data_s"] = time.perf_counter() - t0
    out["data"] = {"train": train_split.describe(), "test": test_split.describe(),
                   "train_fingerprint": train_split.key.get("fingerprint"),
                   "test_fingerprint": test_split.key.get("fingerprint")}
    t0 = time.perf_counter()
    pipeline.fitted_encoder(config, train_split, device=device, memory_mb=mem)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    out["fit_s"] = time.perf_counter() - t0
    setup = time.perf_counter() - t_start
    out["setup_s"] = setup
    save()
    print(f"data {out['data_s']:.1f} s, encoder fit {out['fit_s']:.1f} s", flush=True)
    history: list[dict] = []
    point = None
    for epoch in range(config.epochs):
        left = budget_s - (time.perf_counter() - t_start)
        est = max(e["wall_s"] for e in out["epochs"][-3:]) if out["epochs"] else 0.0
        if epoch and left < 1.15 * est + 2.0:
            break
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        point = pipeline.measure(config, device=device, memory_mb=mem, output=run_dir,
                                 stop_after=None if epoch == config.epochs - 1 else epoch, progress=progress)
        wall = time.perf_counter() - t0
        history = json.loads((run_dir / "history.json").read_text())["history"]
        rec = {k: v for k, v in history[-1].items()}
        rec.update(wall_s=wall, train_s=rec.pop("seconds"))
        if device.startswith("cuda"):
            rec["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["epochs"].append(rec)
        out["extrapolation"] = extrapolate(out["epochs"], setup, config.epochs)
        save()
        acc = f", test top-1 {rec['test_top1']:.2f}%" if "test_top1" in rec else ""
        print(f"epoch {epoch}: {wall:.2f} s (training {rec['train_s']:.2f} s){acc}", flush=True)
    out["complete"] = point is not None
    if point is not None:
        out["point"] = {k: v for k, v in point.as_dict().items() if k != "history"}
    elif out["epochs"]:
        tested = [e for e in out["epochs"] if "test_top1" in e]
        if tested:
            best = max(tested, key=lambda e: e["test_top1"])
            out["partial"] = {"epochs": len(out["epochs"]), "of": config.epochs,
                              "last_test_top1": tested[-1]["test_top1"], "best_test_top1": best["test_top1"],
                              "best_epoch": best["epoch"],
                              "note": "a partial run: not comparable to the published 80-epoch accuracy"}
    ex = out.get("extrapolation", {})
    if ex.get("epochs_measured"):
        print(f"per-epoch time {ex['epoch_s']:.2f} s ({ex['basis']}); the full {config.epochs}-epoch row: "
              f"{ex['total_s']:.0f} s = {ex['total_h']:.2f} h ({ex['formula']})", flush=True)
    out["seconds"] = time.perf_counter() - t_start
    save()
    return out


# ---------------------------------------------------------------- the check ----

def missing_dependencies(pyproject: Path = REPO / "pyproject.toml") -> dict[str, str]:
    """``{requirement: what is installed}`` for each dependency of
    ``pyproject.toml`` that is absent (``"missing"``) or at another version
    than an ``==`` pin."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out = {}
    for req in deps:
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==\s*([^\s;,]+))?", req)
        name, pin = m.group(1), m.group(2)
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[req] = "missing"
            continue
        if pin and have.split("+")[0] != pin:
            out[req] = have
    return out


def nvidia_smi() -> str | None:
    """One line naming the GPU(s), driver and memory, or ``None`` without ``nvidia-smi``."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    q = "name,driver_version,memory.total,clocks.max.sm,power.limit"
    try:
        r = subprocess.run([exe, f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi failed: {exc}"
    return (r.stdout.strip() or r.stderr.strip()).replace("\n", " | ")


def environment() -> dict[str, Any]:
    env = {"python": sys.version.split()[0], "executable": sys.executable, "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "hardware": hardware(),
           "nvidia_smi": nvidia_smi(), "missing_or_other_version": missing_dependencies(),
           "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    try:
        env["commit"] = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                       text=True, timeout=10).stdout.strip() or None
    except OSError:
        env["commit"] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env["gpu"] = {"name": p.name, "memory_gib": p.total_memory / 2**30,
                      "multiprocessors": p.multi_processor_count, "capability": f"{p.major}.{p.minor}"}
    return env


class Check:
    """The stages of one check, their logs in ``outdir`` and a deadline."""

    def __init__(self, outdir: Path, scratch: Path, deadline: float, env: dict[str, str]):
        self.outdir, self.scratch, self.deadline, self.env = outdir, scratch, deadline, env
        self.stages: dict[str, dict[str, Any]] = {}

    def left(self) -> float:
        return self.deadline - time.time()

    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(self.outdir / "check.log", "a") as f:
            f.write(line + "\n")

    def stage(self, name: str, cmd: list[str], cap_s: float, reserve_s: float = RESERVE_S) -> dict[str, Any]:
        """Run ``cmd`` with its output in ``<name>.log``, for at most ``cap_s``
        seconds and never past the deadline less ``reserve_s``."""
        limit = min(cap_s, self.left() - reserve_s)
        rec: dict[str, Any] = {"command": " ".join(cmd), "limit_s": round(limit, 1)}
        if limit < 5:
            rec.update(status="skipped", reason=f"{self.left():.0f} s left of the budget")
            self.log(f"{name}: skipped ({rec['reason']})")
            self.stages[name] = rec
            return rec
        self.log(f"{name}: {rec['command']} (at most {limit:.0f} s)")
        t0 = time.time()
        with open(self.outdir / f"{name}.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=self.env,
                                    start_new_session=True)
            try:
                rc = proc.wait(timeout=limit)
                status = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                rc, status = None, "timed out"
        rec.update(status=status, returncode=rc, seconds=round(time.time() - t0, 1))
        self.log(f"{name}: {status} in {rec['seconds']} s")
        self.stages[name] = rec
        return rec

    def read_json(self, name: str) -> Any:
        path = self.scratch / f"{name}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None


def _pytest_summary(log: Path) -> str | None:
    """The last line of a pytest run (``3 passed, 2 skipped in ...``)."""
    try:
        lines = [line for line in log.read_text().splitlines() if line.strip()]
    except OSError:
        return None
    found = [line.strip("= ") for line in lines if re.search(r"\b(passed|failed|skipped|error)", line)
             and " in " in line]
    return found[-1] if found else None


def run(outdir: str | os.PathLike, *, budget_s: float = 540.0, deadline: float | None = None,
        device: str = "auto", tiny: bool = False, data: str | None = None, pack_file: str | None = None,
        stages: tuple[str, ...] = ("tests", "encoding", "selection", "train"), keep_scratch: bool = False) -> int:
    """The whole check into ``outdir`` (see the module docstring); returns 0
    when every stage that ran passed, 1 otherwise. ``deadline`` (a Unix time)
    overrides ``budget_s`` from now (the shell script passes its own start)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for old in ("summary.json", "tests.log", "encoding.log", "selection.log", "train.log"):
        (outdir / old).unlink(missing_ok=True)          # check.log: the shell script's lines come first
    deadline = deadline or time.time() + budget_s
    device = resolve_device(device)
    scratch = Path(tempfile.mkdtemp(prefix="patchbook-gpu-check-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
               MPLBACKEND="Agg")
    env.setdefault("PATCHBOOK_CACHE", str(scratch / "cache"))
    src = str(REPO / "src")
    if src not in env.get("PYTHONPATH", "").split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    check = Check(outdir, scratch, deadline, env)
    summary: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "device": device, "tiny": tiny,
                               "budget_s": round(deadline - time.time(), 1)}
    check.log(f"gpu check: device {device}, {summary['budget_s']:.0f} s left, scratch {scratch}")
    summary["env"] = environment()
    check.log(f"nvidia-smi: {summary['env']['nvidia_smi']}")
    check.log(f"torch {torch.__version__}, CUDA {torch.version.cuda}; dependencies missing or at another "
              f"version: {summary['env']['missing_or_other_version'] or 'none'}")
    if pack_file:
        t0 = time.time()
        info = unpack(pack_file, scratch / "data")
        env["PATCHBOOK_DATA"] = info["root"]
        summary["data"] = {"pack": str(pack_file), **info, "unpack_s": round(time.time() - t0, 1)}
        check.log(f"data: unpacked {info['files']} files of {pack_file} in {summary['data']['unpack_s']} s")
    elif data:
        env["PATCHBOOK_DATA"] = str(Path(data).expanduser().resolve())
        summary["data"] = {"root": env["PATCHBOOK_DATA"]}
    else:
        summary["data"] = {"root": env.get("PATCHBOOK_DATA"),
                           "note": None if env.get("PATCHBOOK_DATA") else
                           "no data root: CIFAR-10 is downloaded by torchvision into $PATCHBOOK_CACHE/data"}
    py = sys.executable
    cuda_env = {} if device.startswith("cuda") else {"PATCHBOOK_CUDA_TEST_DEVICE": "cpu"}
    check.env = env = {**env, **cuda_env}
    if "tests" in stages:
        r = check.stage("tests", [py, "-m", "pytest", "-q", "-ra", "-m", "cuda", "-p", "no:cacheprovider",
                                  "tests/cuda"], cap_s=300 if tiny else 180)
        r["summary"] = _pytest_summary(outdir / "tests.log")
    if "encoding" in stages:
        args = (["--atoms", "256", "--dtypes", "float32", "--batch", "4", "--repeats", "2", "--data", "synthetic"]
                if tiny else ["--atoms", "2048", "--dtypes", "float32", "bfloat16", "--repeats", "5"])
        check.stage("encoding", [py, "benchmarks/encoding.py", "--devices", device.split(":")[0], "--sizes", "32",
                                 *args, "--json", str(scratch / "encoding.json")], cap_s=120 if tiny else 100)
        check.stages["encoding"]["results"] = check.read_json("encoding")
    if "selection" in stages:
        args = ["--rows", "1024", "--repeats", "2"] if tiny else []
        check.stage("selection", [py, "benchmarks/selection.py", "--device", device, *args,
                                  "--json", str(scratch / "selection.json")], cap_s=120 if tiny else 75)
        check.stages["selection"]["results"] = check.read_json("selection")
    if "train" in stages:
        budget = check.left() - RESERVE_S - 5
        cmd = [py, "-m", "patchbook", "gpu-check", "train", "--budget", f"{budget:.0f}", "--device", device,
               "--json", str(scratch / "train.json"), "--run-dir", str(scratch / "run")]
        check.stage("train", cmd + (["--tiny"] if tiny else []), cap_s=budget + 10, reserve_s=RESERVE_S - 10)
        res = check.read_json("train")
        check.stages["train"]["results"] = res
        ex = (res or {}).get("extrapolation", {})
        if ex.get("epochs_measured"):
            check.log(f"train: {ex['epochs_measured']} epochs, {ex['epoch_s']:.2f} s per epoch -> the "
                      f"{ex['n_epochs']}-epoch paper row {ex['total_s']:.0f} s ({ex['total_h']:.2f} h)")
    summary["stages"] = check.stages
    summary["seconds"] = round(time.time() - (deadline - summary["budget_s"]), 1)
    atomic_write(outdir / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=1, default=str)))
    ok = all(s.get("status") in ("ok", "skipped") for s in check.stages.values())
    check.log(f"done in {summary['seconds']} s: " + ", ".join(f"{k} {v['status']}" for k, v in check.stages.items())
              + f"; {len(list(outdir.iterdir()))} files in {outdir}")
    if not keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if ok else 1
