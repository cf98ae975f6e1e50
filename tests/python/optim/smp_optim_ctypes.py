"""ctypes view of libsmp's sharded-optimizer C API (smp.h), for tests and
benchmarks that compare it with torch before the Python bindings cover it."""
import ctypes as C

SMP_FLOAT32, SMP_FLOAT64, SMP_FLOAT16, SMP_BFLOAT16 = 0, 1, 2, 3
SMP_WORLD, SMP_PP_GROUP, SMP_TP_GROUP, SMP_DP_GROUP, SMP_RDP_GROUP, SMP_MP_GROUP = range(6)
SMP_ADAMW, SMP_SGD = 0, 1
SMP_NORM_GROUP_AUTO, SMP_NORM_GROUP_NONE = -1, -2


class Config(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("kind", C.c_int), ("lr", C.c_double),
                ("beta1", C.c_double), ("beta2", C.c_double), ("eps", C.c_double),
                ("weight_decay", C.c_double), ("momentum", C.c_double),
                ("dampening", C.c_double), ("nesterov", C.c_int), ("group", C.c_int),
                ("norm_group", C.c_int), ("bucket_bytes", C.c_size_t),
                ("max_grad_norm", C.c_double), ("check_finite", C.c_int)]

    @classmethod
    def init(cls, **kw):
        """SMP_OPTIMIZER_CONFIG_INIT, then the given fields."""
        c = cls(C.sizeof(cls), SMP_ADAMW, -1.0, 0.9, 0.999, 1e-8, -1.0, 0.0, 0.0, 0,
                SMP_DP_GROUP, SMP_NORM_GROUP_AUTO, 0, 0.0, 0)
        for k, v in kw.items():
            setattr(c, k, v)
        return c


class Tensor(C.Structure):
    _fields_ = [("name", C.c_char_p), ("count", C.c_size_t), ("dtype", C.c_int),
                ("param", C.c_void_p), ("grad", C.c_void_p), ("tp_replicated", C.c_int)]


class Lib:
    def __init__(self, path):
        self.lib = C.CDLL(path)
        L = self.lib
        L.smp_last_error.restype = C.c_char_p
        L.smp_optimizer_create.argtypes = [C.POINTER(Config), C.POINTER(Tensor), C.c_size_t,
                                           C.POINTER(C.c_void_p)]
        L.smp_optimizer_step.argtypes = [C.c_void_p, C.c_double, C.POINTER(C.c_int),
                                         C.POINTER(C.c_double)]
        L.smp_optimizer_destroy.argtypes = [C.c_void_p]
        L.smp_optimizer_state_bytes.argtypes = [C.c_void_p, C.POINTER(C.c_size_t)]

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: status {status}: {self.lib.smp_last_error().decode()}")

    def init(self):
        self.check(self.lib.smp_init(None), "smp_init")

    def finalize(self):
        self.check(self.lib.smp_finalize(), "smp_finalize")

    def rank_size(self, group):
        r, s = C.c_int(), C.c_int()
        self.check(self.lib.smp_rank(group, C.byref(r)), "smp_rank")
        self.check(self.lib.smp_size(group, C.byref(s)), "smp_size")
        return r.value, s.value


class Optimizer:
    """An smp_optimizer_t over torch tensors (contiguous, CPU) that the
    caller keeps alive: params are updated in place by step()."""

    DTYPES = {"torch.float32": SMP_FLOAT32, "torch.bfloat16": SMP_BFLOAT16,
              "torch.float16": SMP_FLOAT16}

    def __init__(self, lib, config, named_params, grads):
        self.lib = lib
        self.names = [n.encode() for n, _ in named_params]
        arr = (Tensor * len(named_params))()
        for i, ((_, p), g) in enumerate(zip(named_params, grads)):
            assert p.is_contiguous() and g.is_contiguous() and p.dtype == g.dtype
            arr[i] = Tensor(self.names[i], p.numel(), self.DTYPES[str(p.dtype)],
                            p.data_ptr(), g.data_ptr(), 0)
        self.handle = C.c_void_p()
        lib.check(lib.lib.smp_optimizer_create(C.byref(config), arr, len(named_params),
                                                C.byref(self.handle)), "smp_optimizer_create")

    def step(self, grad_scale=1.0):
        skipped, norm = C.c_int(), C.c_double()
        self.lib.check(self.lib.lib.smp_optimizer_step(self.handle, grad_scale, C.byref(skipped),
                                                       C.byref(norm)), "smp_optimizer_step")
        return bool(skipped.value), norm.value

    def state_bytes(self):
        b = C.c_size_t()
        self.lib.check(self.lib.lib.smp_optimizer_state_bytes(self.handle, C.byref(b)), "state_bytes")
        return b.value

    def close(self):
        if self.handle:
            self.lib.check(self.lib.lib.smp_optimizer_destroy(self.handle), "destroy")
            self.handle = C.c_void_p()
