// The CUDA consumer built by the host compiler against kvc::cuda_emulated: the CUDA runtime
// emulated on the host, so that it runs without a GPU.
#include "cuda_consumer.cu"
