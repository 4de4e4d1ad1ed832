// serve_device.cpp built by nvcc: the device kernels run on the GPU.
#include "serve_device.cpp"
