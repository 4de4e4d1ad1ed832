#pragma once
// <cuda_runtime.h> for a build without CUDA: put this directory first on the include path
// (the CMake target kvc::cuda_emulated does) and a GPU engine written against kvc::cuda
// compiles with a host compiler and runs its kernels in the SIMT emulator
// (kvc/backend/simt/emulated_cuda_runtime.hpp says what is emulated; docs/simt.md).

// Feature guard: kvc/backend/cuda/launch.cuh then launches kernels in the emulator.
#define KVC_CUDA_EMULATED 1

#include "kvc/backend/simt/emulated_cuda_runtime.hpp"
