#!/usr/bin/env python3
"""The static check of the device kernels (scripts/sass-check.sh runs it): reads ptxas's
report (-Xptxas -v), the SASS (nvdisasm -c) and the kernels' figures (sass_figures.cpp), prints
per kernel what a GPU would see, and exits 1 when a decode kernel breaks a budget:

  registers, spills, local memory   0 spill bytes, no LDL/STL anywhere in the kernel
  blocks per SM                     >= 4 (registers and shared memory of an H100/H200 SM)
  steady-state loop                 no CALL, no block barrier (BAR), no integer division,
                                    copies of 16 bytes (but int8's 4-byte per-token scales),
                                    a partial wait (DEPBAR.LE SB0, N>=1)
  instructions per K/V byte         <= 4.5 for 16-bit storage, <= 10 for 8-bit (static: both
                                    sides of a branch count, so the loop a GPU runs is shorter;
                                    docs/benchmarks.md has the estimate of what it runs)

Extend kernels (the tensor-core prefill, Llama 3 8B layer in fp16 and bf16):

  registers, spills, local memory   0 spill bytes, no LDL/STL anywhere in the kernel
  blocks per SM                     >= 2 (8 warps an SM: the tiles' occupancy by design)
  key-tile loop                     the smallest loop with HMMA (the body without soft-cap):
                                    HMMA.16816.F32 (.BF16 for bf16) and ldmatrix (LDSM, as
                                    stored and .MT transposed), 16-byte copies, no CALL and no
                                    integer division; at most 10 instructions per HMMA
                                    (static: the masked path of diagonal tiles counts too)

The steady-state loop is the smallest loop (a backward branch) holding both the asynchronous
copies (LDGSTS) and the wait (DEPBAR); its instructions are counted statically, once each,
over the K/V bytes one thread reads per iteration. Append kernels are reported (registers,
spills, 16-byte stores) and must not spill or use local memory.
"""
import collections
import re
import sys

SM_SHARED = 233472        # bytes of shared memory an SM of sm_90 gives its blocks
BLOCK_RESERVED = 1024     # per block, for the system
SM_REGISTERS = 65536
THREADS = 128
BUDGET = {16: 4.5, 8: 10.0}
BITS = {"fp16": 16, "bf16": 16, "fp8_e4m3": 8, "int8": 8}
FRAGMENT = {"fp16": "4fp16", "bf16": "4bf16", "fp8_e4m3": "8fp8_e4m3", "int8": "4int8"}


def ptxas_report(text):
    """name -> {registers, spill_stores, spill_loads, stack}"""
    kernels, current = {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            current = m.group(1)
            kernels[current] = {}
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            kernels[current].update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                                    spill_loads=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            kernels[current]["registers"] = int(m.group(1))
    return kernels


def sass_functions(text):
    """name -> (instructions, labels): instructions as text, labels as instruction indices."""
    functions, name = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*\.text\.(\S+):", line)
        if m:
            name = m.group(1)
            functions[name] = ([], {})
            continue
        if name is None:
            continue
        instructions, labels = functions[name]
        m = re.match(r"\s*(\.L_x_\d+):", line)
        if m:
            labels[m.group(1)] = len(instructions)
            continue
        m = re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", line)
        if m:
            instructions.append(m.group(1))
    return functions


def opcode(instruction):
    parts = instruction.split()
    if parts and parts[0].startswith("@"):
        parts = parts[1:]
    return parts[0] if parts else ""


def loops(instructions, labels):
    found = []
    for i, ins in enumerate(instructions):
        m = re.search(r"\bBRA\b.*?`\((\.L_x_\d+)\)", ins)
        if m and labels.get(m.group(1), len(instructions)) <= i:
            found.append((labels[m.group(1)], i))
    return found


def steady_loop(instructions, labels):
    candidates = [(a, b) for a, b in loops(instructions, labels)
                  if any(opcode(x).startswith("LDGSTS") for x in instructions[a:b + 1])
                  and any(opcode(x).startswith("DEPBAR") for x in instructions[a:b + 1])]
    return min(candidates, key=lambda r: r[1] - r[0]) if candidates else None


def main():
    ptxas_path, sass_path, figures_path = sys.argv[1:4]
    report = ptxas_report(open(ptxas_path).read())
    functions = sass_functions(open(sass_path).read())
    figures, tensor_core = {}, {}
    for line in open(figures_path):
        dtype, shared, per_iteration, kind = line.split()
        if kind in ("extend", "latent", "latent_extend", "group16", "group8"):
            tensor_core[(kind, dtype)] = (int(shared), int(per_iteration))
        else:
            figures[dtype] = (int(shared), int(per_iteration), kind)

    failures = []
    print(f"{'kernel':<22} {'regs':>4} {'spill':>5} {'smem':>6} {'blk/SM':>6} {'loop':>5} "
          f"{'B/it':>4} {'ins/B':>5}  loop contents")
    for dtype, (shared, per_iteration, kind) in figures.items():
        names = [n for n in functions if "decode" in n and FRAGMENT[dtype] + "ES" in n
                 and "extend_mma" not in n and "decode_mma" not in n
                 and "extend_by_token" not in n
                 and "merge" not in n]
        if len(names) != 1:
            failures.append(f"decode {dtype}: {len(names)} kernels in the SASS match")
            continue
        name = names[0]
        instructions, labels = functions[name]
        r = report.get(name, {})
        regs = r.get("registers", 0)
        spills = r.get("spill_stores", 0) + r.get("spill_loads", 0)
        by_registers = SM_REGISTERS // (((regs + 7) // 8 * 8) * THREADS) if regs else 0
        by_shared = SM_SHARED // (shared + BLOCK_RESERVED)
        blocks = min(by_registers, by_shared)
        local = sum(opcode(x).startswith(("LDL", "STL")) for x in instructions)
        loop = steady_loop(instructions, labels)
        label = f"decode {dtype} ({kind})"
        if loop is None:
            failures.append(f"{label}: no steady-state loop found")
            continue
        body = instructions[loop[0]:loop[1] + 1]
        ops = collections.Counter(opcode(x) for x in body)
        per_byte = len(body) / per_iteration
        copies = {k: v for k, v in ops.items() if k.startswith("LDGSTS")}
        waits = [x for x in body if opcode(x).startswith("DEPBAR")]
        calls = sum(v for k, v in ops.items() if k.startswith("CALL"))
        barriers = sum(v for k, v in ops.items() if k.startswith("BAR"))
        divisions = ops.get("I2F.U32.RP", 0) + ops.get("I2F.RP", 0)
        conversions = {k: v for k, v in ops.items()
                       if k.startswith(("HADD2.F32", "F2FP", "PRMT", "I2F", "F2F", "I2FP"))}
        shuffles = sum(v for k, v in ops.items() if k.startswith("SHFL"))
        syncs = sum(v for k, v in ops.items() if k.startswith("WARPSYNC") or k == "NOP")
        contents = (f"copies {dict(copies)}, waits {[w.split(',')[-1].strip() for w in waits]}, "
                    f"FFMA {ops.get('FFMA', 0)}, conversions {dict(conversions)}, SHFL {shuffles}, "
                    f"BAR {barriers}, CALL {calls}, division {divisions}, LDS "
                    f"{sum(v for k, v in ops.items() if k.startswith('LDS'))}, LDG "
                    f"{sum(v for k, v in ops.items() if k.startswith('LDG.'))}")
        print(f"{label:<22} {regs:>4} {spills:>5} {shared:>6} {blocks:>6} {len(body):>5} "
              f"{per_iteration:>4} {per_byte:>5.2f}  {contents}")
        budget = BUDGET[BITS[dtype]]
        if spills or local:
            failures.append(f"{label}: {spills} spill bytes, {local} local-memory instructions")
        if blocks < 4:
            failures.append(f"{label}: {blocks} blocks per SM (registers allow {by_registers}, "
                            f"shared memory {by_shared}); at least 4")
        if calls or barriers or divisions:
            failures.append(f"{label}: the loop has {calls} calls, {barriers} block barriers, "
                            f"{divisions} integer divisions")
        narrow = sum(v for k, v in copies.items() if not k.endswith(".128"))
        if narrow > (2 if dtype == "int8" else 0):
            failures.append(f"{label}: copies narrower than 16 bytes in the loop: {copies}")
        if not any(re.search(r"SB0,\s*0x[1-9]", w) for w in waits):
            failures.append(f"{label}: no partial wait in the loop (waits: {waits})")
        if per_byte > budget:
            failures.append(f"{label}: {per_byte:.2f} instructions per K/V byte; at most {budget}")

    for name, (instructions, labels) in sorted(functions.items()):
        if "append" not in name:
            continue
        r = report.get(name, {})
        ops = collections.Counter(opcode(x) for x in instructions)
        stores = {k: v for k, v in ops.items() if k.startswith("STG")}
        local = sum(v for k, v in ops.items() if k.startswith(("LDL", "STL")))
        spills = r.get("spill_stores", 0) + r.get("spill_loads", 0)
        dtype = "int8" if "4int8" in name else "fp16"
        print(f"{'append ' + dtype:<22} {r.get('registers', 0):>4} {spills:>5}   stores {stores}")
        if spills or local:
            failures.append(f"append {dtype}: {spills} spill bytes, {local} local-memory instructions")
        if "STG.E.128" not in stores:
            failures.append(f"append {dtype}: no 16-byte stores")

    # The tensor-core kernels: the extend (2 blocks of 4 warps an SM), the latent decode and
    # the latent extend, its body (one block of 8 warps: its 128 accumulators a thread and
    # 162 KB of tiles take the SM), and the group decode of groups of 16 and of 8 (blocks of 2
    # warps: 43 KB each in bf16, 5 an SM; 27 KB in fp8, 8 an SM).
    for name, (instructions, labels) in sorted(functions.items()):
        kind = ("extend" if "extend_mma" in name
                else "latent_extend" if "extend_by_token" in name
                else ("latent" if "Lb1ELNS_11page_layoutE" in name else "group")
                if "decode_mma" in name else None)
        if kind is None:
            continue
        if kind == "group":  # the group size, from the shape's template arguments
            group = re.search(r"decode_shapeINS_\w+?ES\w*?_Li(\d+)ELi128ELi128", name)
            if group is None:
                failures.append(f"a group decode kernel whose group the check cannot read: {name}")
                continue
            kind += group.group(1)
        dtype = ("bf16" if "4bf16" in name else "fp8_e4m3" if "8fp8_e4m3" in name
                 else "fp16")
        label = f"{kind} {dtype}"
        r = report.get(name, {})
        regs = r.get("registers", 0)
        spills = r.get("spill_stores", 0) + r.get("spill_loads", 0)
        if (kind, dtype) not in tensor_core:
            failures.append(f"{label}: no figures from sass_figures.cpp")
            continue
        shared, threads = tensor_core[(kind, dtype)]
        min_blocks = 1 if kind in ("latent", "latent_extend") else 2
        by_registers = SM_REGISTERS // (((regs + 7) // 8 * 8) * threads) if regs else 0
        blocks = min(by_registers, SM_SHARED // (shared + BLOCK_RESERVED))
        local = sum(opcode(x).startswith(("LDL", "STL")) for x in instructions)
        candidates = [(a, b) for a, b in loops(instructions, labels)
                      if any(opcode(x).startswith("HMMA") for x in instructions[a:b + 1])
                      and any(opcode(x).startswith("LDGSTS") for x in instructions[a:b + 1])]
        if not candidates:
            failures.append(f"{label}: no loop with HMMA and copies")
            continue
        a, b = min(candidates, key=lambda x: x[1] - x[0])
        body = instructions[a:b + 1]
        ops = collections.Counter(opcode(x) for x in body)
        hmma = {k: v for k, v in ops.items() if k.startswith("HMMA")}
        ldsm = {k: v for k, v in ops.items() if k.startswith("LDSM")}
        copies = {k: v for k, v in ops.items() if k.startswith("LDGSTS")}
        calls = sum(v for k, v in ops.items() if k.startswith("CALL"))
        divisions = ops.get("I2F.U32.RP", 0) + ops.get("I2F.RP", 0)
        per_hmma = len(body) / max(1, sum(hmma.values()))
        print(f"{label:<22} {regs:>4} {spills:>5} {shared:>6} {blocks:>6} {len(body):>5} "
              f"HMMA {dict(hmma)}, LDSM {dict(ldsm)}, copies {dict(copies)}, "
              f"{per_hmma:.1f} instructions per HMMA, CALL {calls}, division {divisions}, "
              f"MUFU.EX2 {ops.get('MUFU.EX2', 0)}")
        want = "HMMA.16816.F32.BF16" if dtype == "bf16" else "HMMA.16816.F32"
        if spills or local:
            failures.append(f"{label}: {spills} spill bytes, {local} local-memory instructions")
        if blocks < min_blocks:
            failures.append(f"{label}: {blocks} blocks per SM (registers allow {by_registers}); "
                            f"at least {min_blocks}")
        if want not in hmma or len(ldsm) < 2:
            failures.append(f"{label}: the loop lacks {want} or ldmatrix both ways: {hmma} {ldsm}")
        if calls or divisions:
            failures.append(f"{label}: the loop has {calls} calls, {divisions} integer divisions")
        if any(not k.endswith(".128") for k in copies) or not copies:
            failures.append(f"{label}: copies in the loop are not all 16 bytes: {copies}")
        if kind.startswith("group"):
            # Memory-bound: the budget is the decode's, in instructions per K/V byte.
            per_byte = len(body) / (16 * sum(copies.values()))
            budget = BUDGET[BITS[dtype]]
            print(f"{'':<22} {per_byte:.2f} instructions per K/V byte a thread copies")
            if per_byte > budget:
                failures.append(f"{label}: {per_byte:.2f} instructions per K/V byte; at most "
                                f"{budget}")
        elif per_hmma > 10:
            failures.append(f"{label}: {per_hmma:.1f} instructions per HMMA; at most 10")

    for f in failures:
        print("FAIL", f)
    print("sass check:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
