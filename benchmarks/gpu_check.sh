#!/usr/bin/env bash
# The GPU check, from a fresh clone: install, the cuda tests, the encoding and
# selection benchmarks on the GPU, then the CIFAR-10 `paper` row at |D| = 2048
# (codes recomputed every epoch) for as many epochs as fit; everything in OUTDIR
# (at most 8 files, no sub-folder). See src/patchbook/pages/gpu_check.py.
#
# usage: benchmarks/gpu_check.sh OUTDIR [--budget SECONDS] [--data ROOT | --pack FILE]
#                                [--device cuda|cpu] [--tiny] [--install auto|yes|no]
#                                [--stages tests,encoding,selection,train]
#
#   OUTDIR     output folder (default ./gpu-check-out)
#   --budget   seconds for the whole check, install included (default 540: 9 minutes)
#   --data     data root (default: $PATCHBOOK_DATA; without one CIFAR-10 is downloaded)
#   --pack     a data pack made by `python -m patchbook gpu-check pack FILE` from a data root
#              (CIFAR-10 JPEGs and the VGG16 weights, ~46 MB): for a machine without the data
#   --install  auto (default): `pip install -e .`, and where that fails (no registry) the
#              python at hand with src/ on PYTHONPATH, the missing packages named in the log;
#              yes: fail if pip fails; no: never call pip
#   --tiny     a few images and atoms, CPU-sized: checks the check itself (with --device cpu)
#   PYTHON     the interpreter to use (default: python3, else python)
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outdir=gpu-check-out
if [[ $# -gt 0 && $1 != --* ]]; then
    outdir=$1
    shift
fi
budget=540
install=auto
pass=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --budget) budget=$2; shift 2 ;;
        --install) install=$2; shift 2 ;;
        --data|--pack) pass+=("$1" "$(realpath -m "$2")"); shift 2 ;;   # the run starts in the repo
        --device|--stages) pass+=("$1" "$2"); shift 2 ;;
        --tiny|--keep-scratch) pass+=("$1"); shift ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $install in auto|yes|no) ;; *) echo "gpu_check.sh: --install must be auto, yes or no" >&2; exit 2 ;; esac

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
log=$outdir/check.log
: > "$log"
say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$log"; }

py=${PYTHON:-}
if [[ -z $py ]]; then
    py=$(command -v python3 || command -v python || true)
fi
if [[ -z $py ]]; then
    say "no python3 or python on PATH (set PYTHON)"
    exit 2
fi
say "gpu_check.sh in $repo, output $outdir, budget ${budget} s, python $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"
if command -v nvidia-smi > /dev/null; then
    say "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | paste -sd ';' -)"
else
    say "nvidia-smi: not found"
fi

installed=no
if [[ $install != no ]]; then
    # no kill on a timer (a killed pip can leave torch half-replaced): no retries, 15 s per connection
    say "install: $py -m pip install -e $repo"
    if "$py" -m pip install --disable-pip-version-check --retries 0 --timeout 15 -q -e "$repo" >> "$log" 2>&1; then
        installed=yes
        say "install: done"
    elif [[ $install == yes ]]; then
        say "install: pip failed (see above)"
        exit 1
    else
        say "install: pip failed (no registry?): using $py as it is, with $repo/src on PYTHONPATH"
    fi
fi
if [[ $installed == no ]]; then
    export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$py" -c 'import torch, numpy, scipy, yaml, PIL, tqdm, sklearn' >> "$log" 2>&1; then
    say "the python at hand lacks a package patchbook needs to run the check (see above)"
    exit 1
fi

deadline=$((start + budget))
cd "$repo"
set +e
"$py" -m patchbook gpu-check run "$outdir" --deadline "$deadline" "${pass[@]}"
rc=$?
set -e
say "gpu_check.sh: exit $rc after $(($(date +%s) - start)) s; files: $(find "$outdir" -mindepth 1 -printf '%P ')"
exit "$rc"
