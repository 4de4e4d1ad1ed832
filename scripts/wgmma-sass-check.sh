#!/usr/bin/env bash
# The static check of the SIMT context's warpgroup matrix multiply-accumulate (CTest label
# sass): compiles tests/sass/wgmma_kernels.cu for sm_90a and fails unless each kernel's SASS
# holds its wgmma as HGMMA of the shapes asked (the MLA decode's and the extend's among them),
# and setmaxnreg where a block hands registers from its producer to its consumers, ptxas
# injected no warpgroup.arrive or warpgroup.wait of its own (C7519, C7517: it does so where a
# kernel touches a wgmma's registers without the fence or the wait the PTX ISA asks for,
# and the tensor cores then wait), and nothing spills. Without nvcc or nvdisasm it reports
# itself skipped (nvdisasm: scripts/install-deps.sh, as for scripts/sass-check.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/cuda-tools.sh"
"$nvcc" -std=c++20 -O3 -DNDEBUG -arch=sm_90a -I"$root/include" -cubin -Xptxas -v \
  "$root/tests/sass/wgmma_kernels.cu" -o "$work/kernels.cubin" 2>"$work/ptxas.txt"
"$nvdisasm" -c "$work/kernels.cubin" >"$work/kernels.sass"
failed=0
count() { grep -c "$1" "$work/kernels.sass" || true; }
# The two shape kernels: 36 of 64x64x16 and 4 of 64x256x16; the decode, in each of its two
# bodies (with and without the soft-cap): 18 of 64x32x16 for the first tile's scores, 18 and 2
# of 64x256x16 in the loop (this tile's scores, the last tile's P V), 2 for the last P V; the
# same in fp16 (no type in the name) for its fp8 e4m3 twin; the extend, in each of its two
# bodies, 8 + 8 of 64x64x16 (the first tile's scores, the loop's) and 4 + 4 of 64x128x16 (the
# loop's P V, the last), and the same in fp16 for its fp8 e4m3, int8 and int4 twins; the extend of a
# head dim of 256 (bf16), in each body 16 + 16 of 64x32x16 and 2 + 2 of 64x256x16.
for expected in "68 HGMMA.64x64x16.F32.BF16" "16 HGMMA.64x128x16.F32.BF16" \
  "20 HGMMA.64x256x16.F32.BF16" \
  "136 HGMMA.64x32x16.F32.BF16" "8 HGMMA.64x256x16.F32 " "72 HGMMA.64x32x16.F32 " \
  "96 HGMMA.64x64x16.F32 " "48 HGMMA.64x128x16.F32 "; do
  want=${expected%% *} shape=${expected#* }
  got=$(count "$shape")
  echo "$shape: $got (want $want)"
  [[ $got == "$want" ]] || failed=1
done
# The register handover: one of each setmaxnreg (0xe8: 232, 0x28: 40), named barriers' arrivals.
for expected in "1 USETMAXREG.TRY_ALLOC.CTAPOOL UP0, 0xe8" "1 USETMAXREG.DEALLOC.CTAPOOL 0x28"; do
  want=${expected%% *} shape=${expected#* }
  got=$(count "$shape")
  echo "$shape: $got (want $want)"
  [[ $got == "$want" ]] || failed=1
done
arrivals=$(count "BAR.ARV")
echo "BAR.ARV: $arrivals (want at least 1)"
[[ $arrivals -ge 1 ]] || failed=1
# The handover needs exactly 168 registers at entry (TRY_ALLOC would wait forever with fewer),
# and no "'setmaxnreg' ignored" (C7508) from ptxas.
entry=$(awk '/Compiling entry function .*named_barrier_ringILb1E/ {f = 1} f && /Used [0-9]+ registers/ {
  sub(/.*Used /, ""); sub(/ registers.*/, ""); print; exit }' "$work/ptxas.txt")
ignored=$(grep -c "C7508" "$work/ptxas.txt" || true)
echo "the handover's registers at entry: ${entry:-none} (want 168); setmaxnreg ignored: $ignored (want 0)"
[[ $entry == 168 && $ignored == 0 ]] || failed=1
injected=$(grep -c "is injected" "$work/ptxas.txt" || true)
spills=$(grep -cE "[1-9][0-9]* bytes spill" "$work/ptxas.txt" || true)
echo "warpgroup.arrive or .wait injected by ptxas: $injected (want 0); kernels that spill: $spills (want 0)"
grep -E "registers|injected" "$work/ptxas.txt" || true
[[ $injected == 0 && $spills == 0 ]] || failed=1
if [[ $failed != 0 ]]; then
  echo "FAIL: the wgmma kernels' SASS is not what tests/sass/wgmma_kernels.cu asks for"
  exit 1
fi
echo "PASS"
