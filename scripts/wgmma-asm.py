#!/usr/bin/env python3
"""Writes include/kvc/backend/cuda/wgmma.cuh: the inline PTX of wgmma.mma_async for the N that
kvc's kernels use. One asm statement holds all N / 2 accumulator registers of a thread, so
each shape is spelt out; this script spells them. Run it from the repository root."""

import subprocess

SHAPES = (32, 64, 128, 256)
TYPES = (("fp16", "f16"), ("bf16", "bf16"))
WIDTH = 100


def wrap(items, indent, first_prefix=""):
    """Joins items with ", " into lines of at most WIDTH characters."""
    lines, line = [], indent + first_prefix
    for i, item in enumerate(items):
        piece = item + ("," if i + 1 < len(items) else "")
        if len(line) + len(piece) + 1 > WIDTH and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += piece + " "
    lines.append(line.rstrip())
    return lines


def asm_statement(n, ptx_type, registers_a, indent):
    count = n // 2
    d = "{" + ", ".join(f"%{i}" for i in range(count)) + "}"
    if registers_a:
        a = "{" + ", ".join(f"%{count + i}" for i in range(4)) + "}"
        b, scale, tail = count + 4, count + 5, f"%{count + 6}"
        inputs = [f'"r"(a.reg[{i}])' for i in range(4)] + ['"l"(b)', '"r"(scale_d)', '"n"(TransB)']
    else:
        a = f"%{count}"
        b, scale, tail = count + 1, count + 2, f"%{count + 3}, %{count + 4}"
        inputs = ['"l"(a)', '"l"(b)', '"r"(scale_d)', '"n"(TransA)', '"n"(TransB)']
    registers = [f"%{i}" for i in range(count)]
    d_lists = [", ".join(registers[i:i + 12]) for i in range(0, count, 12)]
    pieces = ["{\\n", ".reg .pred p;\\n", f"setp.ne.b32 p, %{scale}, 0;\\n",
              f"wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ptx_type}.{ptx_type} {{"]
    pieces += [part + (", " if i + 1 < len(d_lists) else "}, ") for i, part in enumerate(d_lists)]
    pieces += [f"{a}, %{b}, p, 1, 1, {tail};\\n", "}\\n"]
    lines = [indent + "asm volatile(" + f'"{pieces[0]}"']
    lines += [indent + f'             "{p}"' for p in pieces[1:]]
    outputs = [f'"+f"(d.reg[{i}])' for i in range(count)]
    lines += wrap(outputs, indent + "             ", ": ")
    lines += wrap(inputs, indent + "             ", ": ")
    lines[-1] += ");"
    return lines


def function(n, registers_a):
    if registers_a:
        head = ["template <kernels::mma_input Input, int TransB>",
                f"__device__ __forceinline__ void wgmma_rs(kernels::wgmma_d<{n}>& d, "
                "const kernels::mma_a& a,",
                "                                          std::uint64_t b, int scale_d) {"]
    else:
        head = ["template <kernels::mma_input Input, int TransA, int TransB>",
                f"__device__ __forceinline__ void wgmma_ss(kernels::wgmma_d<{n}>& d, "
                "std::uint64_t a, std::uint64_t b,",
                "                                          int scale_d) {"]
    body = []
    for index, (name, ptx_type) in enumerate(TYPES):
        if index == 0:
            body.append(f"  if constexpr (Input == kernels::mma_input::{name}) {{")
        else:
            body.append("  } else {")
        body += asm_statement(n, ptx_type, registers_a, "    ")
    body.append("  }")
    return head + body + ["}", ""]


HEADER = """#pragma once
// The wgmma.mma_async instructions behind kvc::cuda::simt_context's wgmma (sm_90a): D is
// m64nNk16 in fp32, A fp16 or bf16 from registers (RS) or by descriptor (SS), B by
// descriptor; scale-d 0 makes D = A B. One asm statement names all N / 2 accumulator
// registers of the thread, so each N kvc's kernels use is spelt out: written by
// scripts/wgmma-asm.py, not by hand. Only compiled for sm_90a (the caller's guard).

#include <cstdint>

#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/wgmma.hpp"

namespace kvc::cuda::detail {

"""

FOOTER = """}  // namespace kvc::cuda::detail
"""


def main():
    out = [HEADER]
    for n in SHAPES:
        out.append("\n".join(function(n, True)) + "\n")
        out.append("\n".join(function(n, False)) + "\n")
    out.append(FOOTER)
    path = "include/kvc/backend/cuda/wgmma.cuh"
    with open(path, "w") as f:
        f.write("".join(out))
    subprocess.run(["clang-format", "-i", path], check=True)


if __name__ == "__main__":
    main()
