#!/usr/bin/env bash
# Runs the kernel tests on small sizes under compute-sanitizer: memcheck (out-of-bounds and
# misaligned accesses, leaks) and racecheck (shared-memory hazards). Exits non-zero on the first
# tool that reports an error.
#
#   tests/kernels/run_sanitizers.sh [path/to/test_attention_kernels]
#
# Default binary: build-kernels/bin/test_attention_kernels under the repository root.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary="${1:-${root}/build-kernels/bin/test_attention_kernels}"
sanitizer="${COMPUTE_SANITIZER:-compute-sanitizer}"
if ! command -v "${sanitizer}" >/dev/null; then
    sanitizer=/usr/local/cuda/bin/compute-sanitizer
fi

# Small attention sizes (T = 1, 17, 64, 200: partial tiles, several tiles, GQA, padded strides)
# plus every compaction case up to 10000 tokens.
filter='*/T1_*:*/T17_*:*/T64_*:*/T200_*:Sizes/CompactionTest.*/T0_*:Sizes/CompactionTest.*/T1_*'
filter+=':Sizes/CompactionTest.*/T17_*:Sizes/CompactionTest.*/T409*:Sizes/CompactionTest.*/T10000_*'

for tool in memcheck racecheck; do
    echo "== compute-sanitizer --tool ${tool}"
    extra=()
    if [[ "${tool}" == memcheck ]]; then extra=(--leak-check full); fi
    "${sanitizer}" --tool "${tool}" "${extra[@]}" --error-exitcode 1 \
        "${binary}" --gtest_filter="${filter}" --gtest_brief=1
done
echo "compute-sanitizer: memcheck and racecheck clean"
