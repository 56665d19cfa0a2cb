"""dnc_step.py - dnc's layer forward and backward on fixed buffers, through
libdnc's C API (the Python package's binding): the raw kernels of a
training step, as bench/kernels.c times them, for the Python benchmarks
that compare against them in the same run (jax_peer.py, torch_eager.py)."""
import ctypes

import numpy as np

from dnc import _capi as C


class DncStep:
    """dnc's layer forward and backward on fixed buffers, every gradient
    wanted (bench/kernels.c's fwdbwd)."""

    def __init__(self, fn, x, dy, gamma, beta, p):
        """fn: a dnc.Function; x, dy: float32 [rows, cols] C-contiguous
        arrays; gamma, beta: float32 [cols]; p: the parameters' values.
        The arrays must outlive the object (it keeps them)."""
        rows, cols = x.shape
        f32 = C.F32
        self.fn = fn
        self.y = np.empty_like(x)
        self.dx = np.empty_like(x)
        self.keep = [x, dy, gamma, beta]
        n = max(len(p), 1)
        self.pv = (ctypes.c_double * n)(*p)
        self.ptrs = (ctypes.c_void_p * n)()
        self.dp = (ctypes.c_double * n)()
        self.dptrs = (ctypes.c_void_p * n)()
        self.dg = np.zeros(cols, np.float32)
        self.db = np.zeros(cols, np.float32)
        self.lay = C.Layer(self.pv, self.ptrs, gamma.ctypes.data,
                           beta.ctypes.data)
        self.grad = C.LayerGrad(self.dp, self.dptrs, self.dg.ctypes.data,
                                self.db.ctypes.data)
        self.tx = C.Tensor(x.ctypes.data, f32, rows, cols, cols)
        self.tdy = C.Tensor(dy.ctypes.data, f32, rows, cols, cols)
        self.ty = C.Tensor(self.y.ctypes.data, f32, rows, cols, cols)
        self.tdx = C.Tensor(self.dx.ctypes.data, f32, rows, cols, cols)

    def __call__(self):
        st = C.lib.dnc_layer_forward(self.fn._h, self.tx, self.ty,
                                     ctypes.byref(self.lay))
        if st == C.OK:
            self.dg[:] = 0
            self.db[:] = 0
            st = C.lib.dnc_layer_backward(self.fn._h, self.tx, self.tdy,
                                          self.tdx, ctypes.byref(self.lay),
                                          ctypes.byref(self.grad))
        if st != C.OK:
            raise RuntimeError("dnc layer kernels failed: %d" % st)
