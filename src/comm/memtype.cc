#include "comm/memtype.h"

#if SMP_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace smp::comm {

// With CUDA: device and managed memory are Cuda (cudaPointerGetAttributes);
// the runtime is not asked at all when the machine has no GPU.
#if SMP_HAVE_CUDA
MemType classify(const void *p) { return cuda::is_device_pointer(p) ? MemType::Cuda : MemType::Host; }
#else
MemType classify(const void *) { return MemType::Host; }
#endif

}  // namespace smp::comm
