#pragma once
// The wgmma.mma_async instructions behind kvc::cuda::simt_context's wgmma (sm_90a): D is
// m64nNk16 in fp32, A fp16 or bf16 from registers (RS) or by descriptor (SS), B by
// descriptor; scale-d 0 makes D = A B. One asm statement names all N / 2 accumulator
// registers of the thread, so each N kvc's kernels use is spelt out: written by
// scripts/wgmma-asm.py, not by hand. Only compiled for sm_90a (the caller's guard).

#include <cstdint>

#include "kvc/kernels/mma.hpp"
#include "kvc/kernels/wgmma.hpp"

namespace kvc::cuda::detail {

template <kernels::mma_input Input, int TransB>
__device__ __forceinline__ void wgmma_rs(kernels::wgmma_d<32>& d, const kernels::mma_a& a,
                                         std::uint64_t b, int scale_d) {
  if constexpr (Input == kernels::mma_input::fp16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %21, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15}, "
        "{%16, %17, %18, %19}, %20, p, 1, 1, %22;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15])
        : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "l"(b), "r"(scale_d),
          "n"(TransB));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %21, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15}, "
        "{%16, %17, %18, %19}, %20, p, 1, 1, %22;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15])
        : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "l"(b), "r"(scale_d),
          "n"(TransB));
  }
}

template <kernels::mma_input Input, int TransA, int TransB>
__device__ __forceinline__ void wgmma_ss(kernels::wgmma_d<32>& d, std::uint64_t a, std::uint64_t b,
                                         int scale_d) {
  if constexpr (Input == kernels::mma_input::fp16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15}, "
        "%16, %17, p, 1, 1, %19, %20;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15])
        : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %18, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15}, "
        "%16, %17, p, 1, 1, %19, %20;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15])
        : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
  }
}

template <kernels::mma_input Input, int TransB>
__device__ __forceinline__ void wgmma_rs(kernels::wgmma_d<64>& d, const kernels::mma_a& a,
                                         std::uint64_t b, int scale_d) {
  if constexpr (Input == kernels::mma_input::fp16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, %38;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31])
        : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "l"(b), "r"(scale_d),
          "n"(TransB));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, %38;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31])
        : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "l"(b), "r"(scale_d),
          "n"(TransB));
  }
}

template <kernels::mma_input Input, int TransA, int TransB>
__device__ __forceinline__ void wgmma_ss(kernels::wgmma_d<64>& d, std::uint64_t a, std::uint64_t b,
                                         int scale_d) {
  if constexpr (Input == kernels::mma_input::fp16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, %35, %36;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31])
        : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, %35, %36;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31])
        : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
  }
}

template <kernels::mma_input Input, int TransB>
__device__ __forceinline__ void wgmma_rs(kernels::wgmma_d<128>& d, const kernels::mma_a& a,
                                         std::uint64_t b, int scale_d) {
  if constexpr (Input == kernels::mma_input::fp16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "
        "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "
        "%60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p, 1, 1, %70;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31]), "+f"(d.reg[32]), "+f"(d.reg[33]), "+f"(d.reg[34]),
          "+f"(d.reg[35]), "+f"(d.reg[36]), "+f"(d.reg[37]), "+f"(d.reg[38]), "+f"(d.reg[39]),
          "+f"(d.reg[40]), "+f"(d.reg[41]), "+f"(d.reg[42]), "+f"(d.reg[43]), "+f"(d.reg[44]),
          "+f"(d.reg[45]), "+f"(d.reg[46]), "+f"(d.reg[47]), "+f"(d.reg[48]), "+f"(d.reg[49]),
          "+f"(d.reg[50]), "+f"(d.reg[51]), "+f"(d.reg[52]), "+f"(d.reg[53]), "+f"(d.reg[54]),
          "+f"(d.reg[55]), "+f"(d.reg[56]), "+f"(d.reg[57]), "+f"(d.reg[58]), "+f"(d.reg[59]),
          "+f"(d.reg[60]), "+f"(d.reg[61]), "+f"(d.reg[62]), "+f"(d.reg[63])
        : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "l"(b), "r"(scale_d),
          "n"(TransB));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "
        "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "
        "%60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p, 1, 1, %70;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31]), "+f"(d.reg[32]), "+f"(d.reg[33]), "+f"(d.reg[34]),
          "+f"(d.reg[35]), "+f"(d.reg[36]), "+f"(d.reg[37]), "+f"(d.reg[38]), "+f"(d.reg[39]),
          "+f"(d.reg[40]), "+f"(d.reg[41]), "+f"(d.reg[42]), "+f"(d.reg[43]), "+f"(d.reg[44]),
          "+f"(d.reg[45]), "+f"(d.reg[46]), "+f"(d.reg[47]), "+f"(d.reg[48]), "+f"(d.reg[49]),
          "+f"(d.reg[50]), "+f"(d.reg[51]), "+f"(d.reg[52]), "+f"(d.reg[53]), "+f"(d.reg[54]),
          "+f"(d.reg[55]), "+f"(d.reg[56]), "+f"(d.reg[57]), "+f"(d.reg[58]), "+f"(d.reg[59]),
          "+f"(d.reg[60]), "+f"(d.reg[61]), "+f"(d.reg[62]), "+f"(d.reg[63])
        : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "l"(b), "r"(scale_d),
          "n"(TransB));
  }
}

template <kernels::mma_input Input, int TransA, int TransB>
__device__ __forceinline__ void wgmma_ss(kernels::wgmma_d<128>& d, std::uint64_t a, std::uint64_t b,
                                         int scale_d) {
  if constexpr (Input == kernels::mma_input::fp16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "
        "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "
        "%60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, %67, %68;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31]), "+f"(d.reg[32]), "+f"(d.reg[33]), "+f"(d.reg[34]),
          "+f"(d.reg[35]), "+f"(d.reg[36]), "+f"(d.reg[37]), "+f"(d.reg[38]), "+f"(d.reg[39]),
          "+f"(d.reg[40]), "+f"(d.reg[41]), "+f"(d.reg[42]), "+f"(d.reg[43]), "+f"(d.reg[44]),
          "+f"(d.reg[45]), "+f"(d.reg[46]), "+f"(d.reg[47]), "+f"(d.reg[48]), "+f"(d.reg[49]),
          "+f"(d.reg[50]), "+f"(d.reg[51]), "+f"(d.reg[52]), "+f"(d.reg[53]), "+f"(d.reg[54]),
          "+f"(d.reg[55]), "+f"(d.reg[56]), "+f"(d.reg[57]), "+f"(d.reg[58]), "+f"(d.reg[59]),
          "+f"(d.reg[60]), "+f"(d.reg[61]), "+f"(d.reg[62]), "+f"(d.reg[63])
        : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "
        "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "
        "%60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, %67, %68;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31]), "+f"(d.reg[32]), "+f"(d.reg[33]), "+f"(d.reg[34]),
          "+f"(d.reg[35]), "+f"(d.reg[36]), "+f"(d.reg[37]), "+f"(d.reg[38]), "+f"(d.reg[39]),
          "+f"(d.reg[40]), "+f"(d.reg[41]), "+f"(d.reg[42]), "+f"(d.reg[43]), "+f"(d.reg[44]),
          "+f"(d.reg[45]), "+f"(d.reg[46]), "+f"(d.reg[47]), "+f"(d.reg[48]), "+f"(d.reg[49]),
          "+f"(d.reg[50]), "+f"(d.reg[51]), "+f"(d.reg[52]), "+f"(d.reg[53]), "+f"(d.reg[54]),
          "+f"(d.reg[55]), "+f"(d.reg[56]), "+f"(d.reg[57]), "+f"(d.reg[58]), "+f"(d.reg[59]),
          "+f"(d.reg[60]), "+f"(d.reg[61]), "+f"(d.reg[62]), "+f"(d.reg[63])
        : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
  }
}

template <kernels::mma_input Input, int TransB>
__device__ __forceinline__ void wgmma_rs(kernels::wgmma_d<256>& d, const kernels::mma_a& a,
                                         std::uint64_t b, int scale_d) {
  if constexpr (Input == kernels::mma_input::fp16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %133, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "
        "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "
        "%60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, "
        "%72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, "
        "%84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, "
        "%108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, "
        "%120, %121, %122, %123, %124, %125, %126, %127}, "
        "{%128, %129, %130, %131}, %132, p, 1, 1, %134;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31]), "+f"(d.reg[32]), "+f"(d.reg[33]), "+f"(d.reg[34]),
          "+f"(d.reg[35]), "+f"(d.reg[36]), "+f"(d.reg[37]), "+f"(d.reg[38]), "+f"(d.reg[39]),
          "+f"(d.reg[40]), "+f"(d.reg[41]), "+f"(d.reg[42]), "+f"(d.reg[43]), "+f"(d.reg[44]),
          "+f"(d.reg[45]), "+f"(d.reg[46]), "+f"(d.reg[47]), "+f"(d.reg[48]), "+f"(d.reg[49]),
          "+f"(d.reg[50]), "+f"(d.reg[51]), "+f"(d.reg[52]), "+f"(d.reg[53]), "+f"(d.reg[54]),
          "+f"(d.reg[55]), "+f"(d.reg[56]), "+f"(d.reg[57]), "+f"(d.reg[58]), "+f"(d.reg[59]),
          "+f"(d.reg[60]), "+f"(d.reg[61]), "+f"(d.reg[62]), "+f"(d.reg[63]), "+f"(d.reg[64]),
          "+f"(d.reg[65]), "+f"(d.reg[66]), "+f"(d.reg[67]), "+f"(d.reg[68]), "+f"(d.reg[69]),
          "+f"(d.reg[70]), "+f"(d.reg[71]), "+f"(d.reg[72]), "+f"(d.reg[73]), "+f"(d.reg[74]),
          "+f"(d.reg[75]), "+f"(d.reg[76]), "+f"(d.reg[77]), "+f"(d.reg[78]), "+f"(d.reg[79]),
          "+f"(d.reg[80]), "+f"(d.reg[81]), "+f"(d.reg[82]), "+f"(d.reg[83]), "+f"(d.reg[84]),
          "+f"(d.reg[85]), "+f"(d.reg[86]), "+f"(d.reg[87]), "+f"(d.reg[88]), "+f"(d.reg[89]),
          "+f"(d.reg[90]), "+f"(d.reg[91]), "+f"(d.reg[92]), "+f"(d.reg[93]), "+f"(d.reg[94]),
          "+f"(d.reg[95]), "+f"(d.reg[96]), "+f"(d.reg[97]), "+f"(d.reg[98]), "+f"(d.reg[99]),
          "+f"(d.reg[100]), "+f"(d.reg[101]), "+f"(d.reg[102]), "+f"(d.reg[103]), "+f"(d.reg[104]),
          "+f"(d.reg[105]), "+f"(d.reg[106]), "+f"(d.reg[107]), "+f"(d.reg[108]), "+f"(d.reg[109]),
          "+f"(d.reg[110]), "+f"(d.reg[111]), "+f"(d.reg[112]), "+f"(d.reg[113]), "+f"(d.reg[114]),
          "+f"(d.reg[115]), "+f"(d.reg[116]), "+f"(d.reg[117]), "+f"(d.reg[118]), "+f"(d.reg[119]),
          "+f"(d.reg[120]), "+f"(d.reg[121]), "+f"(d.reg[122]), "+f"(d.reg[123]), "+f"(d.reg[124]),
          "+f"(d.reg[125]), "+f"(d.reg[126]), "+f"(d.reg[127])
        : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "l"(b), "r"(scale_d),
          "n"(TransB));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %133, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "
        "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "
        "%60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, "
        "%72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, "
        "%84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, "
        "%108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, "
        "%120, %121, %122, %123, %124, %125, %126, %127}, "
        "{%128, %129, %130, %131}, %132, p, 1, 1, %134;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31]), "+f"(d.reg[32]), "+f"(d.reg[33]), "+f"(d.reg[34]),
          "+f"(d.reg[35]), "+f"(d.reg[36]), "+f"(d.reg[37]), "+f"(d.reg[38]), "+f"(d.reg[39]),
          "+f"(d.reg[40]), "+f"(d.reg[41]), "+f"(d.reg[42]), "+f"(d.reg[43]), "+f"(d.reg[44]),
          "+f"(d.reg[45]), "+f"(d.reg[46]), "+f"(d.reg[47]), "+f"(d.reg[48]), "+f"(d.reg[49]),
          "+f"(d.reg[50]), "+f"(d.reg[51]), "+f"(d.reg[52]), "+f"(d.reg[53]), "+f"(d.reg[54]),
          "+f"(d.reg[55]), "+f"(d.reg[56]), "+f"(d.reg[57]), "+f"(d.reg[58]), "+f"(d.reg[59]),
          "+f"(d.reg[60]), "+f"(d.reg[61]), "+f"(d.reg[62]), "+f"(d.reg[63]), "+f"(d.reg[64]),
          "+f"(d.reg[65]), "+f"(d.reg[66]), "+f"(d.reg[67]), "+f"(d.reg[68]), "+f"(d.reg[69]),
          "+f"(d.reg[70]), "+f"(d.reg[71]), "+f"(d.reg[72]), "+f"(d.reg[73]), "+f"(d.reg[74]),
          "+f"(d.reg[75]), "+f"(d.reg[76]), "+f"(d.reg[77]), "+f"(d.reg[78]), "+f"(d.reg[79]),
          "+f"(d.reg[80]), "+f"(d.reg[81]), "+f"(d.reg[82]), "+f"(d.reg[83]), "+f"(d.reg[84]),
          "+f"(d.reg[85]), "+f"(d.reg[86]), "+f"(d.reg[87]), "+f"(d.reg[88]), "+f"(d.reg[89]),
          "+f"(d.reg[90]), "+f"(d.reg[91]), "+f"(d.reg[92]), "+f"(d.reg[93]), "+f"(d.reg[94]),
          "+f"(d.reg[95]), "+f"(d.reg[96]), "+f"(d.reg[97]), "+f"(d.reg[98]), "+f"(d.reg[99]),
          "+f"(d.reg[100]), "+f"(d.reg[101]), "+f"(d.reg[102]), "+f"(d.reg[103]), "+f"(d.reg[104]),
          "+f"(d.reg[105]), "+f"(d.reg[106]), "+f"(d.reg[107]), "+f"(d.reg[108]), "+f"(d.reg[109]),
          "+f"(d.reg[110]), "+f"(d.reg[111]), "+f"(d.reg[112]), "+f"(d.reg[113]), "+f"(d.reg[114]),
          "+f"(d.reg[115]), "+f"(d.reg[116]), "+f"(d.reg[117]), "+f"(d.reg[118]), "+f"(d.reg[119]),
          "+f"(d.reg[120]), "+f"(d.reg[121]), "+f"(d.reg[122]), "+f"(d.reg[123]), "+f"(d.reg[124]),
          "+f"(d.reg[125]), "+f"(d.reg[126]), "+f"(d.reg[127])
        : "r"(a.reg[0]), "r"(a.reg[1]), "r"(a.reg[2]), "r"(a.reg[3]), "l"(b), "r"(scale_d),
          "n"(TransB));
  }
}

template <kernels::mma_input Input, int TransA, int TransB>
__device__ __forceinline__ void wgmma_ss(kernels::wgmma_d<256>& d, std::uint64_t a, std::uint64_t b,
                                         int scale_d) {
  if constexpr (Input == kernels::mma_input::fp16) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "
        "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "
        "%60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, "
        "%72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, "
        "%84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, "
        "%108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, "
        "%120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1, %131, %132;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31]), "+f"(d.reg[32]), "+f"(d.reg[33]), "+f"(d.reg[34]),
          "+f"(d.reg[35]), "+f"(d.reg[36]), "+f"(d.reg[37]), "+f"(d.reg[38]), "+f"(d.reg[39]),
          "+f"(d.reg[40]), "+f"(d.reg[41]), "+f"(d.reg[42]), "+f"(d.reg[43]), "+f"(d.reg[44]),
          "+f"(d.reg[45]), "+f"(d.reg[46]), "+f"(d.reg[47]), "+f"(d.reg[48]), "+f"(d.reg[49]),
          "+f"(d.reg[50]), "+f"(d.reg[51]), "+f"(d.reg[52]), "+f"(d.reg[53]), "+f"(d.reg[54]),
          "+f"(d.reg[55]), "+f"(d.reg[56]), "+f"(d.reg[57]), "+f"(d.reg[58]), "+f"(d.reg[59]),
          "+f"(d.reg[60]), "+f"(d.reg[61]), "+f"(d.reg[62]), "+f"(d.reg[63]), "+f"(d.reg[64]),
          "+f"(d.reg[65]), "+f"(d.reg[66]), "+f"(d.reg[67]), "+f"(d.reg[68]), "+f"(d.reg[69]),
          "+f"(d.reg[70]), "+f"(d.reg[71]), "+f"(d.reg[72]), "+f"(d.reg[73]), "+f"(d.reg[74]),
          "+f"(d.reg[75]), "+f"(d.reg[76]), "+f"(d.reg[77]), "+f"(d.reg[78]), "+f"(d.reg[79]),
          "+f"(d.reg[80]), "+f"(d.reg[81]), "+f"(d.reg[82]), "+f"(d.reg[83]), "+f"(d.reg[84]),
          "+f"(d.reg[85]), "+f"(d.reg[86]), "+f"(d.reg[87]), "+f"(d.reg[88]), "+f"(d.reg[89]),
          "+f"(d.reg[90]), "+f"(d.reg[91]), "+f"(d.reg[92]), "+f"(d.reg[93]), "+f"(d.reg[94]),
          "+f"(d.reg[95]), "+f"(d.reg[96]), "+f"(d.reg[97]), "+f"(d.reg[98]), "+f"(d.reg[99]),
          "+f"(d.reg[100]), "+f"(d.reg[101]), "+f"(d.reg[102]), "+f"(d.reg[103]), "+f"(d.reg[104]),
          "+f"(d.reg[105]), "+f"(d.reg[106]), "+f"(d.reg[107]), "+f"(d.reg[108]), "+f"(d.reg[109]),
          "+f"(d.reg[110]), "+f"(d.reg[111]), "+f"(d.reg[112]), "+f"(d.reg[113]), "+f"(d.reg[114]),
          "+f"(d.reg[115]), "+f"(d.reg[116]), "+f"(d.reg[117]), "+f"(d.reg[118]), "+f"(d.reg[119]),
          "+f"(d.reg[120]), "+f"(d.reg[121]), "+f"(d.reg[122]), "+f"(d.reg[123]), "+f"(d.reg[124]),
          "+f"(d.reg[125]), "+f"(d.reg[126]), "+f"(d.reg[127])
        : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
  } else {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, "
        "%12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
        "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, "
        "%36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, "
        "%60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, "
        "%72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, "
        "%84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
        "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, "
        "%108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, "
        "%120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1, %131, %132;\n"
        "}\n"
        : "+f"(d.reg[0]), "+f"(d.reg[1]), "+f"(d.reg[2]), "+f"(d.reg[3]), "+f"(d.reg[4]),
          "+f"(d.reg[5]), "+f"(d.reg[6]), "+f"(d.reg[7]), "+f"(d.reg[8]), "+f"(d.reg[9]),
          "+f"(d.reg[10]), "+f"(d.reg[11]), "+f"(d.reg[12]), "+f"(d.reg[13]), "+f"(d.reg[14]),
          "+f"(d.reg[15]), "+f"(d.reg[16]), "+f"(d.reg[17]), "+f"(d.reg[18]), "+f"(d.reg[19]),
          "+f"(d.reg[20]), "+f"(d.reg[21]), "+f"(d.reg[22]), "+f"(d.reg[23]), "+f"(d.reg[24]),
          "+f"(d.reg[25]), "+f"(d.reg[26]), "+f"(d.reg[27]), "+f"(d.reg[28]), "+f"(d.reg[29]),
          "+f"(d.reg[30]), "+f"(d.reg[31]), "+f"(d.reg[32]), "+f"(d.reg[33]), "+f"(d.reg[34]),
          "+f"(d.reg[35]), "+f"(d.reg[36]), "+f"(d.reg[37]), "+f"(d.reg[38]), "+f"(d.reg[39]),
          "+f"(d.reg[40]), "+f"(d.reg[41]), "+f"(d.reg[42]), "+f"(d.reg[43]), "+f"(d.reg[44]),
          "+f"(d.reg[45]), "+f"(d.reg[46]), "+f"(d.reg[47]), "+f"(d.reg[48]), "+f"(d.reg[49]),
          "+f"(d.reg[50]), "+f"(d.reg[51]), "+f"(d.reg[52]), "+f"(d.reg[53]), "+f"(d.reg[54]),
          "+f"(d.reg[55]), "+f"(d.reg[56]), "+f"(d.reg[57]), "+f"(d.reg[58]), "+f"(d.reg[59]),
          "+f"(d.reg[60]), "+f"(d.reg[61]), "+f"(d.reg[62]), "+f"(d.reg[63]), "+f"(d.reg[64]),
          "+f"(d.reg[65]), "+f"(d.reg[66]), "+f"(d.reg[67]), "+f"(d.reg[68]), "+f"(d.reg[69]),
          "+f"(d.reg[70]), "+f"(d.reg[71]), "+f"(d.reg[72]), "+f"(d.reg[73]), "+f"(d.reg[74]),
          "+f"(d.reg[75]), "+f"(d.reg[76]), "+f"(d.reg[77]), "+f"(d.reg[78]), "+f"(d.reg[79]),
          "+f"(d.reg[80]), "+f"(d.reg[81]), "+f"(d.reg[82]), "+f"(d.reg[83]), "+f"(d.reg[84]),
          "+f"(d.reg[85]), "+f"(d.reg[86]), "+f"(d.reg[87]), "+f"(d.reg[88]), "+f"(d.reg[89]),
          "+f"(d.reg[90]), "+f"(d.reg[91]), "+f"(d.reg[92]), "+f"(d.reg[93]), "+f"(d.reg[94]),
          "+f"(d.reg[95]), "+f"(d.reg[96]), "+f"(d.reg[97]), "+f"(d.reg[98]), "+f"(d.reg[99]),
          "+f"(d.reg[100]), "+f"(d.reg[101]), "+f"(d.reg[102]), "+f"(d.reg[103]), "+f"(d.reg[104]),
          "+f"(d.reg[105]), "+f"(d.reg[106]), "+f"(d.reg[107]), "+f"(d.reg[108]), "+f"(d.reg[109]),
          "+f"(d.reg[110]), "+f"(d.reg[111]), "+f"(d.reg[112]), "+f"(d.reg[113]), "+f"(d.reg[114]),
          "+f"(d.reg[115]), "+f"(d.reg[116]), "+f"(d.reg[117]), "+f"(d.reg[118]), "+f"(d.reg[119]),
          "+f"(d.reg[120]), "+f"(d.reg[121]), "+f"(d.reg[122]), "+f"(d.reg[123]), "+f"(d.reg[124]),
          "+f"(d.reg[125]), "+f"(d.reg[126]), "+f"(d.reg[127])
        : "l"(a), "l"(b), "r"(scale_d), "n"(TransA), "n"(TransB));
  }
}

}  // namespace kvc::cuda::detail
