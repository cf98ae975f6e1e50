# meson's probe of the torch the Python bindings' interpreter imports: its
# version, C++ ABI, header and library directories, torch.distributed.
import os
import sys
try:
    import torch
    import torch.distributed as dist
    from torch.utils import cpp_extension
except Exception as e:  # noqa: BLE001 - any failure means "no torch"
    print(f"import failed: {e}")
    sys.exit(0)
print(torch.__version__.split("+")[0])
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
# Only the directories that exist (Debian ships no TH/THC).
print(";".join(p for p in cpp_extension.include_paths() if os.path.isdir(p)))
print(";".join(cpp_extension.library_paths()))
print(int(dist.is_available()))
