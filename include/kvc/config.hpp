#pragma once
// The one macro of the library: functions that the CUDA kernels share with the host.

#if defined(__CUDACC__)
#define KVC_HOST_DEVICE __host__ __device__
#else
#define KVC_HOST_DEVICE
#endif
