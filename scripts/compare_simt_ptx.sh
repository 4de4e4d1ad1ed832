#!/usr/bin/env bash
# The zero-cost check of the SIMT context: compiles kernels::row_sums through
# kvc::cuda::launch and its hand-written twins (tests/cuda/row_sums_by_hand.cu) for each
# architecture, then compares
#   - the PTX of the kernels, with symbol, label and register names made neutral
#     (registers renumbered in order of first use), as a diff;
#   - what ptxas makes of it (SASS): registers, and the size of each kernel's code.
# No disassembler ships with this toolkit (no cuobjdump, no nvdisasm); a cubin's
# .text.<kernel> section is the kernel's SASS, 16 bytes per instruction.
# The check fails when the SASS differs (what runs); PTX is shown for what it tells.
# Usage: scripts/compare_simt_ptx.sh [architectures...]   (default: 80 90)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
architectures=("$@")
[[ $# -eq 0 ]] && architectures=(80 90)

# One kernel's body, names made neutral, one instruction per line.
kernel_body() {  # ptx, mangled-name pattern
  awk -v name="$2" '
    $0 ~ /^\.visible \.entry/ { inside = ($0 ~ name) }
    inside { print }
    inside && /^}/ { inside = 0 }' "$1" |
    sed -E -e 's/_Z[A-Za-z0-9_]+_param_([0-9]+)/PARAM_\1/g' \
      -e 's/_Z[A-Za-z0-9_]+|dynamic_shared/SYMBOL/g' -e 's/\$L__BB[0-9]+_/$L__BB_/g' \
      -e 's/^\s+//' -e '/^\/\//d' -e '/^$/d' -e '/^\.reg/d' |
    perl -pe 'BEGIN { %n = (); %c = (); }
              s{%(r|rd|f|fd|p|rs|h)(\d+)\b}{"%$1" . ($n{"$1$2"} //= ++$c{$1})}ge'
}
instructions() { grep -Ev '^(\.|\{|\}|\$L__|\)|\()' "$1" | grep -c ';' || true; }
# A kernel's SASS, the bytes of its .text section, into a file.
sass() {  # cubin, mangled-name pattern, output
  local offset size
  read -r offset size < <(readelf -SW "$1" 2>/dev/null |
    awk -v name="$2" '$2 ~ /^\.text\./ && $2 ~ name { print $5, $6 }')
  dd if="$1" of="$3" bs=1 skip=$((16#$offset)) count=$((16#$size)) status=none
}
bytes() { stat -c %s "$1"; }

status=0
for arch in "${architectures[@]}"; do
  ptx=$work/sm_$arch.ptx cubin=$work/sm_$arch.cubin
  nvcc -std=c++20 -arch=sm_"$arch" -Iinclude -ptx tests/cuda/row_sums_by_hand.cu -o "$ptx"
  ptxas -arch=sm_"$arch" -v "$ptx" -o "$cubin" 2>"$work/ptxas.txt"
  kernel_body "$ptx" 'run_kernel' >"$work/context.txt"
  kernel_body "$ptx" 'row_sums_by_handILj128ELb1E' >"$work/by_hand_broadcast.txt"
  kernel_body "$ptx" 'row_sums_by_handILj128ELb0E' >"$work/by_hand_thread0.txt"
  echo "sm_$arch PTX instructions: context $(instructions "$work/context.txt")," \
    "by hand with broadcast $(instructions "$work/by_hand_broadcast.txt")," \
    "by hand with the sum in thread 0 only $(instructions "$work/by_hand_thread0.txt")"
  sass "$cubin" run_kernel "$work/context.sass"
  sass "$cubin" 'row_sums_by_handILj128ELb1E' "$work/by_hand_broadcast.sass"
  sass "$cubin" 'row_sums_by_handILj128ELb0E' "$work/by_hand_thread0.sass"
  echo "sm_$arch SASS instructions (16 bytes each): context $(($(bytes "$work/context.sass") / 16))," \
    "by hand with broadcast $(($(bytes "$work/by_hand_broadcast.sass") / 16))," \
    "by hand with the sum in thread 0 only $(($(bytes "$work/by_hand_thread0.sass") / 16))"
  grep -o "Used [0-9]* registers, used [0-9]* barriers, [0-9]* bytes smem" "$work/ptxas.txt" |
    paste -d' ' <(grep -o "^ptxas info    : Compiling entry function '[^']*'" "$work/ptxas.txt" |
      sed -E "s/.*'(.*)'/\1/; s/.*run_kernel.*/context:/; s/.*Lb1E.*/by hand with broadcast:/; s/.*Lb0E.*/by hand, thread 0 only:/") - |
    sed "s/^/sm_$arch ptxas: /"
  if diff "$work/context.txt" "$work/by_hand_broadcast.txt"; then
    echo "sm_$arch: the context's kernel and its hand-written twin have the same PTX"
  else
    echo "sm_$arch: the context's kernel and its hand-written twin differ in PTX (diff above)"
  fi
  if cmp -s "$work/context.sass" "$work/by_hand_broadcast.sass"; then
    echo "sm_$arch: ... and the same SASS, byte for byte"
  else
    echo "sm_$arch: ... and differ in SASS ($(cmp -l "$work/context.sass" "$work/by_hand_broadcast.sass" | wc -l) bytes)"
    status=1
  fi
done
exit $status
