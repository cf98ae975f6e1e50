// The CopyEngine on a GPU: cudaMemcpyAsync on the caller's stream, one
// event recorded after each copy (its ticket), pinned staging memory.
// Built only with CUDA.
#pragma once

#include "comm/staged/copy_engine.h"

namespace smp::comm::staged {

class CudaCopyEngine final : public CopyEngine {
 public:
  std::unique_ptr<CopyQueue> queue(void *stream) override;
  void *alloc_host(size_t bytes) override;
  void free_host(void *p) noexcept override;
};

}  // namespace smp::comm::staged
