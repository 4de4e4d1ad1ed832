#pragma once
// A kernel that runs the warp matrix multiply-accumulate of the SIMT context on problems laid
// out plainly in memory: each warp loads its A (16 x 16, row-major), B (16 x 8, B[k][n] at
// k * 8 + n) and C (16 x 8, row-major) into fragments by the layouts of kernels/mma.hpp, and
// stores D back the same way. test_simt_mma runs it in the emulator, tests/cuda on a GPU; the
// expectations are a plain matrix product computed on the host.

#include <cstddef>
#include <cstdint>

#include "kvc/config.hpp"
#include "kvc/kernels/mma.hpp"

namespace kvc::testing {

inline constexpr unsigned mma_a_size = 16 * 16, mma_b_size = 16 * 8, mma_c_size = 16 * 8;

struct mma_probe {
  const std::uint16_t* a;  ///< per problem: A's bits, fp16 or bf16
  const std::uint16_t* b;
  const float* c;
  float* d;
  bool bf16 = false;
  /// Loads A by a wrong layout (rows and columns exchanged): the check must catch it.
  bool wrong_layout = false;
  /// Stages A and B in shared memory (ldmatrix_shared_bytes a warp) and loads their fragments
  /// with load_matrices: A as stored, B (stored [k][n]) transposed. With wrong_layout, A is
  /// loaded transposed.
  bool through_ldmatrix = false;
  static constexpr unsigned ldmatrix_shared_bytes = 16 * 32 + 16 * 16;

  // Element (row, column) of a matrix of `columns` columns.
  KVC_HOST_DEVICE static unsigned at(kernels::mma_place p, int columns) {
    return static_cast<unsigned>(p.row * columns + p.column);
  }

  template <class Context>
  KVC_HOST_DEVICE void operator()(const Context& ctx) const {
    const unsigned lane = ctx.lane();
    const unsigned problem = ctx.block_idx().x * (ctx.block_threads() / 32u) + ctx.warp();
    const std::uint16_t* pa = a + problem * mma_a_size;
    const std::uint16_t* pb = b + problem * mma_b_size;
    kernels::mma_a fa{};
    kernels::mma_b fb{};
    kernels::mma_c fc{};
    if (through_ldmatrix) {
      // A: rows of 32 bytes, B: rows of 16; lanes 8 m .. 8 m + 7 name the rows of matrix m.
      std::byte* area = ctx.dynamic_shared() + ctx.warp() * ldmatrix_shared_bytes;
      auto* sa = reinterpret_cast<std::uint16_t*>(area);
      auto* sb = reinterpret_cast<std::uint16_t*>(area + 16 * 32);
      for (unsigned i = lane; i < mma_a_size; i += 32) sa[i] = pa[i];
      for (unsigned i = lane; i < mma_b_size; i += 32) sb[i] = pb[i];
      ctx.sync_warp();
      const unsigned m = lane / 8, r = lane % 8;
      // A's matrices: rows 0-7 and 8-15 of columns 0-7, then of columns 8-15 (registers 0-3).
      const std::uint16_t* a_row = sa + (r + 8 * (m % 2)) * 16 + 8 * (m / 2);
      const kernels::mma_matrices a_regs = wrong_layout ? ctx.template load_matrices<true>(a_row)
                                                        : ctx.template load_matrices<false>(a_row);
      // B's: rows k 0-7 and 8-15, transposed (matrices 2 and 3 repeat them).
      const kernels::mma_matrices b_regs =
          ctx.template load_matrices<true>(sb + (r + 8 * (m % 2)) * 8);
      for (int i = 0; i < 4; ++i) fa.reg[i] = a_regs.reg[i];
      for (int i = 0; i < 2; ++i) fb.reg[i] = b_regs.reg[i];
    } else {
      for (int i = 0; i < 8; ++i) {
        const kernels::mma_place p = kernels::mma_a_place(lane, i);
        fa.set(i, pa[wrong_layout ? at({p.column, p.row}, 16) : at(p, 16)]);
      }
      for (int i = 0; i < 4; ++i) {
        const kernels::mma_place p = kernels::mma_b_place(lane, i);
        fb.set(i, pb[at(p, 8)]);
      }
    }
    for (int i = 0; i < 4; ++i) {
      const kernels::mma_place p = kernels::mma_c_place(lane, i);
      fc.reg[i] = c[problem * mma_c_size + at(p, 8)];
    }
    const kernels::mma_c fd = bf16
                                  ? ctx.template mma_m16n8k16<kernels::mma_input::bf16>(fa, fb, fc)
                                  : ctx.template mma_m16n8k16<kernels::mma_input::fp16>(fa, fb, fc);
    for (int i = 0; i < 4; ++i) {
      const kernels::mma_place p = kernels::mma_c_place(lane, i);
      d[problem * mma_c_size + at(p, 8)] = fd.reg[i];
    }
  }
};

}  // namespace kvc::testing
