// CK(call): a benchmark cannot go on after a failed CUDA call; say which
// and exit.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>

#define CK(call)                                                                                   \
  do {                                                                                             \
    const cudaError_t e_ = (call);                                                                 \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e_));                             \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)
