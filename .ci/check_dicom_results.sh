#!/usr/bin/env bash
# The DICOM results the demo wrote, checked by tools nobody here wrote: dicom3tools' IOD validator (dciodvfy) on
# every .sr.dcm, .sc.dcm and .pr.dcm (any line with "Error" fails), dcmtk's dsrdump on every SR.
set -euo pipefail
folder=${1:-runs/gate}
mapfile -t files < <(find "$folder" -name '*.dcm' | sort)
[ ${#files[@]} -gt 0 ] || { echo "error: no DICOM results under $folder: run make demo first" >&2; exit 2; }
failed=0
for file in "${files[@]}"; do
    if dciodvfy "$file" 2>&1 | grep "Error"; then
        echo "error: dciodvfy: $file" >&2
        failed=1
    fi
    case "$file" in
        *.sr.dcm) dsrdump "$file" > /dev/null || { echo "error: dsrdump: $file" >&2; failed=1; } ;;
    esac
done
echo "${#files[@]} DICOM results: $( [ $failed -eq 0 ] && echo "no dciodvfy errors, every SR rendered by dsrdump" || echo FAILED)"
exit $failed
