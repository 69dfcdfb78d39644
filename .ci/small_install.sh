#!/usr/bin/env bash
# The screening-only installs, proven: fresh virtual environments with '.[cpu]' and '.[cpu,web,dicom]' from this checkout
# (run after `make demo`, which leaves export/ and data/demo_inputs/). In each: the gate screens the demo's sample
# inputs, torch and ultralytics cannot be imported, a training command (and --dicom without its extra) names the
# extra it needs; with '.[cpu,web,dicom]' the gate writes DICOM results and the web server answers /api/health and
# screens an upload. Prints each environment's install time and size on disk.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2> /dev/null
    rm -rf "$work"
}
trap cleanup EXIT
test -f export/manifest.json && test -d data/demo_inputs || { echo "error: run make demo first" >&2; exit 2; }

fresh() {  # NAME EXTRAS: a new venv with the project installed (not editable) with those extras
    local venv="$work/$1" start
    start=$(date +%s)
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --no-cache-dir "$repo[$2]" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
    echo "$1: pip install '.[$2]' took $(( $(date +%s) - start )) s; $(du -sm "$venv" | cut -f1) MB on disk"
}

fresh cpu cpu
py="$work/cpu/bin/python"
cd "$work"  # away from the checkout: the installed package is what runs, not the source folder
"$work/cpu/bin/spine-cad" gate "$repo/data/demo_inputs" --models "$repo/export" --out "$work/gate"  # console script
test -f "$work/gate/summary.csv"
for module in torch ultralytics; do
    if "$py" -c "import $module" 2> /dev/null; then echo "error: $module is importable in the screening install" >&2; exit 1; fi
done
set +e
"$work/cpu/bin/spine-cad" export --ensemble "$repo/runs/ensemble/ensemble.json" 2> "$work/export.err"
rc=$?
set -e
grep -q "pip install 'spine-cad\[train\]'" "$work/export.err" && [ "$rc" -eq 2 ] || {
    echo "error: spine-cad export without the train extra exited $rc:" >&2; cat "$work/export.err" >&2; exit 1; }
set +e
"$work/cpu/bin/spine-cad" gate "$repo/data/demo_inputs" --models "$repo/export" --out "$work/gate" --dicom \
    2> "$work/dicom.err"
rc=$?
set -e
grep -q "pip install 'spine-cad\[dicom\]'" "$work/dicom.err" && [ "$rc" -eq 2 ] || {
    echo "error: spine-cad gate --dicom without the dicom extra exited $rc:" >&2; cat "$work/dicom.err" >&2; exit 1; }
echo "cpu: the gate screened $(($(wc -l < "$work/gate/summary.csv") - 1)) inputs; torch and ultralytics absent;" \
    "a training command says: $(cat "$work/export.err")"
echo "cpu: the largest parts (MB):"
(cd "$work"/cpu/lib/python*/site-packages && du -sm -- * | sort -rn | head -8)

fresh web cpu,web,dicom
py="$work/web/bin/python"
"$work/web/bin/spine-cad" gate "$repo/data/demo_inputs" --models "$repo/export" --out "$work/gate-dicom" --dicom \
    > /dev/null
echo "web,dicom: the gate wrote $(find "$work/gate-dicom" -name '*.dcm' | wc -l) DICOM results"
port=$("$py" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$py" -m dernet.web --models "$repo/export" --port "$port" > "$work/web.log" 2>&1 &
server=$!
for _ in $(seq 60); do
    curl -sf "http://127.0.0.1:$port/api/health" > "$work/health.json" 2> /dev/null && break
    sleep 1
done
grep -q '"status":"ok"' "$work/health.json" || { echo "error: no health answer" >&2; cat "$work/web.log" >&2; exit 1; }
sample=$(find "$repo/data/demo_inputs" -type f | sort | head -1)
code=$(curl -s -o "$work/analyze.json" -w '%{http_code}' -F "file=@$sample" "http://127.0.0.1:$port/api/analyze")
[ "$code" = 200 ] || { echo "error: /api/analyze answered $code" >&2; cat "$work/analyze.json" >&2; exit 1; }
echo "web: /api/health $(cat "$work/health.json" | head -c 200); /api/analyze on $(basename "$sample"): $code"
