#!/bin/bash
# Records and verifies all cells: record-all.sh [MODEL...]   (default: threads workers eventloop)
# Loads 1 4 16 32 64; requests per cell: record.sh's default (200 at c1/c4, 350 above).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
MODELS=${*:-threads workers eventloop}
rc=0
for m in $MODELS; do
    for c in 1 4 16 32 64; do
        echo "######## $m-c$c"
        "$HERE/record.sh" "$m" "$c" || { echo "record $m-c$c failed" >&2; rc=1; continue; }
        "$HERE/verify.py" "$m-c$c" > "$HERE/runs/$m-c$c/verify.txt" 2>&1
        v=$?
        tail -3 "$HERE/runs/$m-c$c/verify.txt"
        [ $v -eq 0 ] || rc=1
    done
done
exit $rc
