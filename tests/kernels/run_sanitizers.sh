#!/usr/bin/env bash
# Runs the kernel tests on small sizes under compute-sanitizer: memcheck (out-of-bounds and
# misaligned accesses, leaks), racecheck (shared-memory hazards) and synccheck (barriers used
# wrongly). Exits non-zero on the first tool that reports an error.
#
#   tests/kernels/run_sanitizers.sh [path/to/test_attention_kernels]
#
# Default binary: build-kernels/bin/test_attention_kernels under the repository root.
#
# The attention cases run on both paths (names end in _mma or _wgmma; the wgmma ones skip off
# Hopper). Under racecheck, a wgmma case that runs after another wgmma case in the same process
# was seen to stall (H100, CUDA 13.0; the same case alone passes clean, and no stall was ever
# seen without the sanitizer), so racecheck runs each wgmma case in its own process, with a time
# limit that turns a stall into a failure naming the case.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary="${1:-${root}/build-kernels/bin/test_attention_kernels}"
sanitizer="${COMPUTE_SANITIZER:-compute-sanitizer}"
if ! command -v "${sanitizer}" >/dev/null; then
    sanitizer=/usr/local/cuda/bin/compute-sanitizer
fi
case_limit_s="${L2A_SANITIZER_CASE_LIMIT_S:-120}"

# Small attention sizes (T = 1, 17, 64, 200: partial tiles, several tiles, GQA, padded strides)
# plus every compaction case up to 10000 tokens.
filter='*/T1_*:*/T17_*:*/T64_*:*/T200_*:Sizes/CompactionTest.*/T0_*:Sizes/CompactionTest.*/T1_*'
filter+=':Sizes/CompactionTest.*/T17_*:Sizes/CompactionTest.*/T409*:Sizes/CompactionTest.*/T10000_*'
# Windowed cases with more blocks than a Hopper has SMs (224 at 1,000 tokens x 28 heads).
filter+=':Window/AttentionTest.*/T1000_D*_H28x4_bf16_W100_*'
# Routed counts at the edges of the Hopper kernel's pairs of 128-row blocks (a second block
# past the rows, with one row, full, and a lone second pair), paired and unpaired.
filter+=':Global/AttentionTest.*/T128_*:Global/AttentionTest.*/T129_*'
filter+=':Global/AttentionTest.*/T256_*:Global/AttentionTest.*/T257_*'

echo "== compute-sanitizer --tool memcheck"
"${sanitizer}" --tool memcheck --leak-check full --error-exitcode 1 \
    "${binary}" --gtest_filter="${filter}" --gtest_brief=1

echo "== compute-sanitizer --tool racecheck (mma.sync path and compaction)"
"${sanitizer}" --tool racecheck --error-exitcode 1 \
    "${binary}" --gtest_filter="${filter}:-*_wgmma" --gtest_brief=1

echo "== compute-sanitizer --tool racecheck (wgmma path, one case per process)"
mapfile -t wgmma_cases < <("${binary}" --gtest_list_tests --gtest_filter="${filter}" |
    awk '/^[^ ]/ { suite = $1 } /^  / && $1 ~ /_wgmma$/ { print suite $1 }')
for name in "${wgmma_cases[@]}"; do
    if ! timeout "${case_limit_s}" "${sanitizer}" --tool racecheck --error-exitcode 1 \
        "${binary}" --gtest_filter="${name}" --gtest_brief=1 >/tmp/l2a_racecheck_case.log 2>&1; then
        cat /tmp/l2a_racecheck_case.log
        echo "racecheck failed or ran past ${case_limit_s} s on ${name}" >&2
        exit 1
    fi
done
echo "racecheck: ${#wgmma_cases[@]} wgmma cases clean"
echo "== compute-sanitizer --tool synccheck"
"${sanitizer}" --tool synccheck --error-exitcode 1 \
    "${binary}" --gtest_filter="${filter}" --gtest_brief=1

echo "compute-sanitizer: memcheck, racecheck and synccheck clean"
