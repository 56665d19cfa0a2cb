/*
 * _torch_ext.cpp - dnc.torch's eager layer call in C++: PointwiseNorm's
 * forward and its autograd node, over libdnc's layer kernels.
 *
 * Built per PyTorch install by tools/torch_ext.sh (docs/python.md,
 * "Speed"); dnc/torch.py loads it where it matches the running PyTorch and
 * libdnc, and calls it only for the common eager call that _plain_forward
 * has decided (a plain CPU tensor, nothing tracing, transforming or
 * dispatching, parameters of the shapes _check takes). It does what
 * _kernel_forward, _LayerFn and _kernel_backward do there, in the same
 * order and with the same kernels, so the two give the same bits; what
 * it cannot do in C++ (a backward that builds a graph, create_graph=True;
 * a gradient without storage; a kernel's error) it hands back to Python.
 * Python's per-call cost was most of a small layer's step: an [8 x 512]
 * training step took 99 us through _LayerFn, 47 through this.
 *
 * libdnc's entry points come from the Python package (init), the same
 * loaded library whose handles dnc.torch passes here: nothing is linked.
 */
#include <torch/extension.h>
#include <torch/csrc/autograd/custom_function.h>

#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <pybind11/stl.h>

#include "dnc.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
namespace py = pybind11;

typedef dnc_status (*forward_fn)(const dnc_function *, const dnc_tensor *,
                                 const dnc_tensor *, const dnc_layer *);
typedef dnc_status (*backward_fn)(const dnc_function *, const dnc_tensor *,
                                  const dnc_tensor *, const dnc_tensor *,
                                  const dnc_layer *, const dnc_layer_grad *);

typedef dnc_status (*forward_cm_fn)(const dnc_function *, const dnc_tensor *,
                                    const dnc_tensor *, int64_t,
                                    const dnc_layer *);
typedef dnc_status (*backward_cm_fn)(const dnc_function *, const dnc_tensor *,
                                     const dnc_tensor *, const dnc_tensor *,
                                     int64_t, const dnc_layer *,
                                     const dnc_layer_grad *);

forward_fn layer_forward;
backward_fn layer_backward;
forward_cm_fn layer_forward_cm;
backward_cm_fn layer_backward_cm;
// Python: fallback(h, cm, x, dy, gamma, beta, params, need) -> the
// gradients (create_graph, or a dy without storage); fail(h, status,
// what) raises dnc's error for a kernel's status
py::object *fallback, *fail;

enum { MAX_PARAMS = 64 };

// Whether parameter i is per-channel in chan, the mask that torch.py's
// _ext_args makes: bit i for parameter i, all 64 of them, so that a 64th
// per-channel parameter makes it negative as an int64_t (its bits read as
// unsigned here)
bool per_channel(int64_t chan, size_t i)
{
  return (uint64_t)chan >> i & 1;
}

// ------------------------------------------------------------ outputs
// torch.py's _empty in C++: large outputs reuse the storage of an earlier
// one that nothing else holds (a fresh one costs the kernel zeroing its
// pages every step: glibc returns such blocks to the system on free).
// A storage is handed out again only while this list holds its one
// reference (no tensor, view, .grad or Python storage object has it) and
// its memory is the CPU allocator's own (not shared memory, which
// torch.multiprocessing's sender holds only weakly).
const int64_t REUSE_MIN = 1 << 20, HUGE_PAGE = 1 << 21;
std::mutex reuse_lock;
std::vector<c10::Storage> reuse;
int64_t reuse_keep = 4;

c10::DeleterFnPtr own_deleter;  // that of a storage at::empty makes

bool own_memory(const c10::Storage &st)
{
  return own_deleter && st.data_ptr().get_deleter() == own_deleter;
}

at::Tensor fresh(at::IntArrayRef shape, at::ScalarType dt)
{
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dt));
  int64_t n = t.numel() * t.element_size();
  if (n >= 8 * HUGE_PAGE) {
    uintptr_t a = (uintptr_t)t.data_ptr();
    uintptr_t lo = (a + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uintptr_t hi = (a + n) & ~(uintptr_t)(HUGE_PAGE - 1);
    if (hi > lo)
      madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
  }
  return t;
}

at::Tensor empty(at::IntArrayRef shape, at::ScalarType dt)
{
  int64_t n = (int64_t)c10::elementSize(dt);
  for (int64_t d : shape)
    n *= d;
  if (n < REUSE_MIN)
    return at::empty(shape, at::TensorOptions().dtype(dt));
  {
    std::lock_guard<std::mutex> g(reuse_lock);
    if (reuse_keep == 0)
      return fresh(shape, dt);
    for (size_t i = 0; i < reuse.size(); i++) {
      c10::Storage st = reuse[i];  // a second reference: 2 is only ours
      if ((int64_t)st.nbytes() == n && st.use_count() == 2 &&
          own_memory(st)) {
        reuse.erase(reuse.begin() + (long)i);
        reuse.push_back(st);
        return at::empty({0}, at::TensorOptions().dtype(dt))
            .set_(st, 0, shape);
      }
    }
  }
  // allocated without the lock held: a fork() from another thread then
  // waits (at_fork) only for the list's bookkeeping
  at::Tensor t = fresh(shape, dt);
  std::lock_guard<std::mutex> g(reuse_lock);
  reuse.push_back(t.storage());
  if ((int64_t)reuse.size() > reuse_keep)
    reuse.erase(reuse.begin(), reuse.end() - reuse_keep);
  return t;
}

int64_t set_reuse(int64_t n)
{
  std::lock_guard<std::mutex> g(reuse_lock);
  int64_t old = reuse_keep;
  reuse_keep = n;
  if ((int64_t)reuse.size() > n)
    reuse.erase(reuse.begin(), reuse.end() - n);
  return old;
}

// ------------------------------------------------------------ views

struct types {
  dnc_dtype dt;
  at::ScalarType ct;  // the compute type: per-channel values, sums
};

types types_of(at::ScalarType s)
{
  switch (s) {
  case at::kFloat: return {DNC_F32, at::kFloat};
  case at::kDouble: return {DNC_F64, at::kDouble};
  case at::kBFloat16: return {DNC_BF16, at::kFloat};
  case at::kHalf: return {DNC_F16, at::kFloat};
  default: TORCH_CHECK(false, "dnc.torch: no kernels for ", s);
  }
}

// The kernels' [rows x cols] view of t: its last dimension the columns,
// or (cm, channels first: dimension 1 of N x C x ...) [N*C x HW]; unit
// column stride and one row stride. hold gets the tensor that has the
// data: t, or a contiguous copy where t's layout has no such view
// (torch.py's _view and _rows, dnc/_channels.py's _rows).
dnc_tensor view(const at::Tensor &t, bool cm, dnc_dtype dt, at::Tensor &hold)
{
  int64_t rows = 1, cols = 1, split = cm ? 2 : t.dim() - 1;
  for (int64_t i = 0; i < t.dim(); i++)
    (i < split ? rows : cols) *= t.size(i);
  if (t.is_contiguous()) {  // (no view made: a dispatcher call each)
    hold = t;
    return dnc_tensor{t.data_ptr(), dt, rows, cols, cols};
  }
  at::Tensor v = t.reshape({rows, cols});
  if ((cols > 1 && v.stride(1) != 1) || (rows > 1 && v.stride(0) < cols))
    v = v.contiguous();
  hold = v;
  return dnc_tensor{v.data_ptr(), dt, rows, cols,
                    rows > 1 ? v.stride(0) : cols};
}

// t's values in the compute type, contiguous (torch.py's _values)
at::Tensor values(const at::Tensor &t, at::ScalarType ct)
{
  if (t.scalar_type() == ct && t.is_contiguous())
    return t;
  return t.detach().to(ct).contiguous();
}

// A scalar parameter's one value, read from its CPU memory for the
// kernel dtypes (Tensor::item goes through the dispatcher: a microsecond
// of a small call)
double value_of(const at::Tensor &t)
{
  if (t.is_cpu() && t.layout() == at::kStrided) {
    const void *p = t.const_data_ptr();
    switch (t.scalar_type()) {
    case at::kFloat: return *(const float *)p;
    case at::kDouble: return *(const double *)p;
    case at::kBFloat16: return (float)*(const c10::BFloat16 *)p;
    case at::kHalf: return (float)*(const c10::Half *)p;
    default: break;
    }
  }
  return t.item<double>();
}

// A tensor of `sizes` in dtype holding v everywhere: at::full's result
// (the same conversion of v), written directly for f32 and f64, a scalar
// parameter's gradient
at::Tensor filled(at::IntArrayRef sizes, double v, at::ScalarType dt)
{
  if (dt != at::kFloat && dt != at::kDouble)
    return at::full(sizes, v, at::TensorOptions().dtype(dt));
  at::Tensor t = at::empty(sizes, at::TensorOptions().dtype(dt));
  if (dt == at::kFloat)
    std::fill_n((float *)t.data_ptr(), t.numel(), (float)v);
  else
    std::fill_n((double *)t.data_ptr(), t.numel(), v);
  return t;
}

// A dnc_layer and what it points to (torch.py's _layer)
struct layer {
  double pv[MAX_PARAMS] = {0};
  const void *ptrs[MAX_PARAMS] = {nullptr};
  std::vector<at::Tensor> keep;
  dnc_layer lay{};

  layer(int64_t chan, int64_t cols, at::ScalarType ct, at::TensorList params,
        const std::optional<at::Tensor> &gamma,
        const std::optional<at::Tensor> &beta)
  {
    for (size_t i = 0; i < params.size(); i++) {
      const at::Tensor &t = params[i];
      if (per_channel(chan, i)) {
        at::Tensor a = values(
            t.numel() == cols ? t : t.reshape(-1).slice(0, 0, 1).expand(cols),
            ct);
        ptrs[i] = a.data_ptr();
        keep.push_back(a);
      } else {
        pv[i] = value_of(t);
      }
    }
    const void *g = nullptr, *b = nullptr;
    if (gamma && gamma->defined()) {
      keep.push_back(values(*gamma, ct));
      g = keep.back().data_ptr();
    }
    if (beta && beta->defined()) {
      keep.push_back(values(*beta, ct));
      b = keep.back().data_ptr();
    }
    lay = dnc_layer{pv, ptrs, g, b};
  }
};

// A Python exception raised under a call from C++ (held by pybind11), as
// autograd's engine carries one to the thread that called backward: the
// original exception there, not a RuntimeError with its text
[[noreturn]] void rethrow(py::error_already_set &e)
{
  e.restore();
  python_error err;
  err.persist();
  throw std::move(err);
}

// The GIL let go of for a kernel's call where this thread holds it (a
// call from Python; the dispatcher may call the operators' kernels below
// without it)
struct nogil {
  PyThreadState *state;
  explicit nogil(bool release = true)
      : state(release && PyGILState_Check() ? PyEval_SaveThread() : nullptr)
  {
  }
  ~nogil()
  {
    if (state)
      PyEval_RestoreThread(state);
  }
};

// f(args...) in Python, with the GIL, its result as R; a Python error
// raised there leaves as itself (rethrow)
template <typename R, typename... A> R call_python(py::object *f, A &&...args)
{
  py::gil_scoped_acquire gil;
  try {
    return (*f)(std::forward<A>(args)...).template cast<R>();
  } catch (py::error_already_set &e) {
    rethrow(e);
  }
}

// dnc's exception for a kernel's status (fail raises it)
[[noreturn]] void failed(int64_t h, dnc_status st, const char *what)
{
  py::gil_scoped_acquire gil;
  try {
    (*fail)(h, (int)st, what);
  } catch (py::error_already_set &e) {
    rethrow(e);
  }
  TORCH_CHECK(false, "dnc.torch: ", what, " failed: status ", (int)st);
}

// y by the layer forward: over the last dimension, or (cm) over
// dimension 1 by the channel-major kernel; y is contiguous, of x's shape.
// release: let go of the GIL for the kernel where this thread holds it
// (the calls from Python); not in the operator's kernel (cpu_forward),
// whose caller holding the GIL means to hold it: AOTInductor's loaded
// model (aoti_load_package) runs with it, and another thread's call of
// that model waits for it holding the GIL, so that taking it back here
// waited for ever (a model served from two threads hung at once)
at::Tensor kernel_forward(int64_t h, int64_t chan, bool cm,
                          const at::Tensor &x,
                          const std::optional<at::Tensor> &gamma,
                          const std::optional<at::Tensor> &beta,
                          at::TensorList params, bool release = true)
{
  types ty = types_of(x.scalar_type());
  at::Tensor y = empty(x.sizes(), x.scalar_type());
  if (y.numel() == 0)
    return y;
  at::Tensor xh, yh;
  dnc_tensor tx = view(x, cm, ty.dt, xh), tyv = view(y, cm, ty.dt, yh);
  int64_t chans = cm ? x.size(1) : tx.cols;
  layer l(chan, chans, ty.ct, params, gamma, beta);
  dnc_status st;
  {
    nogil released(release);
    st = cm ? layer_forward_cm((const dnc_function *)h, &tx, &tyv, chans,
                               &l.lay)
            : layer_forward((const dnc_function *)h, &tx, &tyv, &l.lay);
  }
  if (st != DNC_OK)
    failed(h, st, cm ? "layer_forward_cm" : "layer_forward");
  return y;
}

// The fused layer backward's kernels (torch.py's _kernel_backward): dx,
// dgamma, dbeta and each parameter's gradient, undefined where need says
// no (or gamma, beta absent); cm: over dimension 1 (channels first)
std::vector<at::Tensor> kernel_backward(int64_t h, int64_t chan, bool cm,
                                        const at::Tensor &x, at::Tensor dy,
                                        const at::Tensor &gamma,
                                        const at::Tensor &beta,
                                        const std::vector<at::Tensor> &params,
                                        const std::vector<bool> &need)
{
  size_t np = params.size();
  std::vector<at::Tensor> out(3 + np);
  types ty = types_of(x.scalar_type());
  if (dy.scalar_type() != x.scalar_type())
    dy = dy.to(x.scalar_type());
  at::Tensor xh, dyh, dxh;
  dnc_tensor tx = view(x, cm, ty.dt, xh), tdy = view(dy, cm, ty.dt, dyh);
  int64_t cols = cm ? x.size(1) : tx.cols;  // the channels
  at::Tensor dx = empty(x.sizes(), x.scalar_type());
  double dp[MAX_PARAMS] = {0};
  void *dptrs[MAX_PARAMS] = {nullptr};
  std::vector<at::Tensor> dchan(np);
  at::TensorOptions copt = at::TensorOptions().dtype(ty.ct);
  for (size_t i = 0; i < np; i++)
    if (per_channel(chan, i) && need[3 + i]) {
      dchan[i] = at::zeros({cols}, copt);
      dptrs[i] = dchan[i].data_ptr();
    }
  at::Tensor dg, db;
  if (gamma.defined() && need[1])
    dg = at::zeros({cols}, copt);
  if (beta.defined() && need[2])
    db = at::zeros({cols}, copt);
  if (dx.numel()) {
    layer l(chan, cols, ty.ct, params, gamma, beta);
    dnc_tensor tdx = view(dx, cm, ty.dt, dxh);
    dnc_layer_grad gr{dp, dptrs, dg.defined() ? dg.data_ptr() : nullptr,
                      db.defined() ? db.data_ptr() : nullptr};
    const dnc_function *f = (const dnc_function *)h;
    dnc_status st = cm ? layer_backward_cm(f, &tx, &tdy, &tdx, cols,
                                           &l.lay, &gr)
                       : layer_backward(f, &tx, &tdy, &tdx, &l.lay, &gr);
    if (st != DNC_OK)
      failed(h, st, cm ? "layer_backward_cm" : "layer_backward");
  }
  if (need[0])
    out[0] = dx;
  if (dg.defined())
    out[1] = dg.scalar_type() == gamma.scalar_type()
                 ? dg : dg.to(gamma.scalar_type());
  if (db.defined())
    out[2] = db.scalar_type() == beta.scalar_type()
                 ? db : db.to(beta.scalar_type());
  for (size_t i = 0; i < np; i++) {
    const at::Tensor &t = params[i];
    if (!need[3 + i])
      continue;
    if (per_channel(chan, i)) {
      at::Tensor d = t.numel() == cols ? dchan[i] : dchan[i].sum();
      out[3 + i] = d.to(t.scalar_type()).reshape(t.sizes());
    } else {
      out[3 + i] = filled(t.sizes(), dp[i], t.scalar_type());
    }
  }
  return out;
}

// ------------------------------------------------------------ autograd

}  // namespace

namespace dnc_torch {
// the node's name in autograd's messages and graphs:
// torch::autograd::CppNode<dnc_torch::PointwiseNorm>
struct PointwiseNorm : public torch::autograd::Function<PointwiseNorm> {
  // arguments: h, chan, cm, x, gamma, beta, params (torch.py's _LayerFn;
  // cm: dnc/_channels.py's _ChannelsFirstFn)
  static at::Tensor forward(AutogradContext *ctx, int64_t h, int64_t chan,
                            bool cm, const at::Tensor &x,
                            const std::optional<at::Tensor> &gamma,
                            const std::optional<at::Tensor> &beta,
                            at::TensorList params)
  {
    std::vector<at::Tensor> save{x, gamma ? *gamma : at::Tensor(),
                                 beta ? *beta : at::Tensor()};
    save.insert(save.end(), params.begin(), params.end());
    ctx->save_for_backward(save);
    ctx->saved_data["h"] = h;
    ctx->saved_data["chan"] = chan;
    ctx->saved_data["cm"] = cm;
    return kernel_forward(h, chan, cm, x, gamma, beta, params);
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads)
  {
    variable_list s = ctx->get_saved_variables();
    int64_t h = ctx->saved_data["h"].toInt();
    int64_t chan = ctx->saved_data["chan"].toInt();
    bool cm = ctx->saved_data["cm"].toBool();
    at::Tensor x = s[0], gamma = s[1], beta = s[2], dy = grads[0];
    std::vector<at::Tensor> params(s.begin() + 3, s.end());
    size_t np = params.size();
    // needs_input_grad counts the inputs that are tensors: x, gamma and
    // beta where given, the parameters
    std::vector<bool> need(3 + np, false);
    size_t e = 0;
    need[0] = ctx->needs_input_grad(e++);
    if (gamma.defined())
      need[1] = ctx->needs_input_grad(e++);
    if (beta.defined())
      need[2] = ctx->needs_input_grad(e++);
    for (size_t i = 0; i < np; i++)
      need[3 + i] = ctx->needs_input_grad(e++);
    variable_list out(3 + 3 + np);  // h, chan and cm get none
    if (!dy.defined())
      return out;
    if (at::GradMode::is_enabled() || !dy.has_storage()) {
      // a backward that builds a graph (create_graph=True), or the
      // batched gradients of the legacy vmap: dnc's symbolic derivatives
      // in Python, as _LayerFn.backward
      py::gil_scoped_acquire gil;
      std::vector<std::optional<at::Tensor>> r;
      try {
        py::object g = (*fallback)(
            h, cm, x, dy, gamma.defined() ? py::cast(gamma) : py::none(),
            beta.defined() ? py::cast(beta) : py::none(), params, need);
        r = g.cast<std::vector<std::optional<at::Tensor>>>();
      } catch (py::error_already_set &e) {
        rethrow(e);
      }
      for (size_t i = 0; i < r.size() && i < 3 + np; i++)
        if (r[i])
          out[3 + i] = *r[i];
      return out;
    }
    std::vector<at::Tensor> g =
        kernel_backward(h, chan, cm, x, dy, gamma, beta, params, need);
    for (size_t i = 0; i < g.size(); i++)
      out[3 + i] = g[i];
    return out;
  }
};
}  // namespace dnc_torch

namespace {

// Whether the call is to be differentiated: grad mode on and an input
// requiring a gradient (what the eager call, _inference, and
// torch.library's Python autograd kernel decide)
bool any_requires_grad(const at::Tensor &x, const at::Tensor *dy,
                       const std::optional<at::Tensor> &weight,
                       const std::optional<at::Tensor> &bias,
                       at::TensorList params)
{
  if (!at::GradMode::is_enabled())
    return false;
  bool r = x.requires_grad() || (dy && dy->requires_grad()) ||
           (weight && weight->requires_grad()) ||
           (bias && bias->requires_grad());
  for (const at::Tensor &p : params)
    r = r || p.requires_grad();
  return r;
}

// The layer's eager call: the kernels alone where nothing will
// differentiate it (grad mode off, or no input requires a gradient: what
// _inference decides, the tracer and forward mode being ruled out by the
// caller), else the autograd node.
at::Tensor call(int64_t h, int64_t chan, bool cm, const at::Tensor &x,
                const std::optional<at::Tensor> &gamma,
                const std::optional<at::Tensor> &beta,
                const std::vector<at::Tensor> &params)
{
  // PyTorch's own translation of C++ errors: a Python exception raised
  // inside (a saved-tensor hook's, such as checkpoint's early stop) leaves
  // as itself, c10's errors as their Python types, warnings as warnings
  HANDLE_TH_ERRORS
  TORCH_CHECK(params.size() <= MAX_PARAMS, "dnc.torch: more than ",
              (int)MAX_PARAMS, " parameters");
  if (!any_requires_grad(x, nullptr, gamma, beta, params))
    return kernel_forward(h, chan, cm, x, gamma, beta, params);
  return dnc_torch::PointwiseNorm::apply(h, chan, cm, x, gamma, beta,
                                        at::TensorList(params));
  END_HANDLE_TH_ERRORS_PYBIND
}

// Whether x, gamma, beta and params are what _check takes without a word
// for a layer over x's last dimension of c channels: x a dense CPU tensor
// of a kernel dtype; weight and bias absent or [c] in x's dtype on the
// CPU; each parameter in x's dtype on the CPU, one value or (per-channel
// ones) [c]
// a dtype the kernels take
bool kernel_dtype(at::ScalarType dt)
{
  return dt == at::kFloat || dt == at::kDouble || dt == at::kBFloat16 ||
         dt == at::kHalf;
}

// A tensor whose data the kernels may read: not a tensor subclass that
// dispatches to Python (a DTensor parameter of a plain x: its data pointer
// was read, SIGSEGV), and with storage
bool own_data(const at::Tensor &t)
{
  return t.has_storage() && !t.unsafeGetTensorImpl()->is_python_dispatch();
}

bool plain_args(int64_t chan, int64_t c, const at::Tensor &x,
                const std::optional<at::Tensor> &gamma,
                const std::optional<at::Tensor> &beta,
                const std::vector<at::Tensor> &params)
{
  at::ScalarType dt = x.scalar_type();
  if (!x.is_cpu() || x.is_nested() || x.layout() != at::kStrided ||
      !own_data(x) || x.dim() == 0 || x.size(-1) != c ||
      !kernel_dtype(dt) || params.size() > MAX_PARAMS)
    return false;
  for (const std::optional<at::Tensor> *t : {&gamma, &beta})
    if (*t && ((*t)->scalar_type() != dt || !(*t)->is_cpu() ||
               (*t)->layout() != at::kStrided || !own_data(**t) ||
               (*t)->dim() != 1 || (*t)->size(0) != c))
      return false;
  for (size_t i = 0; i < params.size(); i++) {
    const at::Tensor &t = params[i];
    if (t.scalar_type() != dt || !t.is_cpu() ||
        t.layout() != at::kStrided || !own_data(t))
      return false;
    int64_t n = t.numel();
    if (n != 1 && (n != c || t.dim() != 1 || !per_channel(chan, i)))
      return false;
  }
  return true;
}

// PointwiseNorm's plain call over the last dimension (_plain_forward,
// which has ruled out what is Python's to see: tracing, transforms,
// dispatch modes, a tensor subclass): the layer, or None where a tensor
// is not what plain_args takes. None sends the call the whole way in
// Python, which decides it and raises what it refuses.
std::optional<at::Tensor> plain(int64_t h, int64_t chan, int64_t c,
                                const at::Tensor &x,
                                const std::optional<at::Tensor> &gamma,
                                const std::optional<at::Tensor> &beta,
                                const std::vector<at::Tensor> &params)
{
  if (!plain_args(chan, c, x, gamma, beta, params))
    return std::nullopt;
  return call(h, chan, false, x, gamma, beta, params);
}

// The fused backward of dnc::layer_backward: every gradient, no autograd
// node; nothing where the tensors are not plain_args's (and dy not a CPU
// tensor of x's shape with storage), which Python's kernels then take.
std::optional<std::vector<at::Tensor>> op_backward(
    int64_t h, int64_t chan, const at::Tensor &x, const at::Tensor &dy,
    const std::optional<at::Tensor> &gamma,
    const std::optional<at::Tensor> &beta,
    const std::vector<at::Tensor> &params)
{
  if (x.dim() == 0 || !plain_args(chan, x.size(-1), x, gamma, beta, params) ||
      !dy.is_cpu() || dy.layout() != at::kStrided || !dy.has_storage() ||
      dy.sizes() != x.sizes() || !kernel_dtype(dy.scalar_type()))
    return std::nullopt;
  std::vector<bool> need(3 + params.size(), true);
  std::vector<at::Tensor> g = kernel_backward(
      h, chan, false, x, dy, gamma ? *gamma : at::Tensor(),
      beta ? *beta : at::Tensor(), params, need);
  // outputs may not alias each other: two empty tensors, not one
  for (int i = 1; i <= 2; i++)
    if (!g[i].defined())
      g[i] = at::empty({0}, x.options());
  return g;
}

// ------------------------------------------------------------ operators
// The CPU kernels of dnc::layer_forward and dnc::layer_backward, registered
// with the dispatcher (init): a compiled graph's call reaches libdnc
// without entering Python, where torch.library.custom_op's Python
// backend and torch.py's _op_forward took 8 us of a 10 us call at [8 x
// 512]. The function's handle is found by (source, name, threads), which
// Python registers when it first makes the handle (register_function);
// a function not yet registered, arguments plain_args does not take, and
// op_kernels off go to Python's implementation (torch.py's
// _op_forward_py and _op_backward_py), which decides and raises what it
// refuses.
struct fn_entry {
  int64_t h, chan, nparams;
};
std::mutex fn_lock;
std::unordered_map<std::string, fn_entry> fn_handles;
std::atomic<bool> op_kernels{true};
py::object *py_forward, *py_backward;

std::string fn_key(const std::string &source, const std::string &name,
                   int64_t threads)
{
  return std::to_string(threads) + "\n" + name + "\n" + source;
}

void register_function(const std::string &source, const std::string &name,
                       int64_t threads, int64_t h, int64_t chan,
                       int64_t nparams)
{
  std::lock_guard<std::mutex> g(fn_lock);
  fn_handles[fn_key(source, name, threads)] = {h, chan, nparams};
}

bool set_op_kernels(bool on)
{
  bool old = op_kernels;
  op_kernels = on;
  return old;
}

// (handle, per-channel mask) of the function, or false: not registered,
// or given another number of parameters than it has, which Python refuses
// (threads 0: at::get_num_threads() now, as torch.py's _function)
bool find_function(const std::string &source, const std::string &name,
                   const c10::SymInt &threads, size_t nparams, int64_t &h,
                   int64_t &chan)
{
  std::optional<int64_t> t = threads.maybe_as_int();
  if (!op_kernels || !t)
    return false;
  int64_t n = *t ? *t : (int64_t)at::get_num_threads();
  std::lock_guard<std::mutex> g(fn_lock);
  auto it = fn_handles.find(fn_key(source, name, n));
  if (it == fn_handles.end() || it->second.nparams != (int64_t)nparams)
    return false;
  h = it->second.h;
  chan = it->second.chan;
  return true;
}

// Forward-mode AD's tangent on a tensor (level 0, as PyTorch's own
// operators test it): the operators have no forward-mode rule, and the
// call's result would carry no tangent, silently
bool has_tangent(const at::Tensor *t)
{
  return t && t->defined() && t->_fw_grad(0).defined();
}

void refuse_tangents(const char *what, const at::Tensor &x,
                     const at::Tensor *dy,
                     const std::optional<at::Tensor> &weight,
                     const std::optional<at::Tensor> &bias,
                     at::TensorList params)
{
  bool any = has_tangent(&x) || has_tangent(dy) ||
             (weight && has_tangent(&*weight)) ||
             (bias && has_tangent(&*bias));
  for (const at::Tensor &p : params)
    any = any || has_tangent(&p);
  TORCH_CHECK_NOT_IMPLEMENTED(
      !any, "dnc.torch: ", what, " has no forward-mode derivative (its "
      "tangent would be dropped); dnc.torch.pointwise and PointwiseNorm "
      "compute one from dnc's derivatives");
}

at::Tensor cpu_forward(const at::Tensor &x,
                       const std::optional<at::Tensor> &weight,
                       const std::optional<at::Tensor> &bias,
                       at::TensorList params, std::string source,
                       std::string name, c10::SymInt threads)
{
  std::vector<at::Tensor> ps(params.begin(), params.end());
  int64_t h, chan;
  if (x.dim() > 0 && find_function(source, name, threads, ps.size(), h, chan) &&
      plain_args(chan, x.size(-1), x, weight, bias, ps))
    return kernel_forward(h, chan, false, x, weight, bias, params, false);
  return call_python<at::Tensor>(py_forward, x, weight, bias, ps, source,
                                 name, threads);
}

std::vector<at::Tensor> cpu_backward(const at::Tensor &x,
                                     const at::Tensor &dy,
                                     const std::optional<at::Tensor> &weight,
                                     const std::optional<at::Tensor> &bias,
                                     at::TensorList params,
                                     std::string source, std::string name,
                                     c10::SymInt threads)
{
  std::vector<at::Tensor> ps(params.begin(), params.end());
  int64_t h, chan;
  if (x.dim() > 0 && find_function(source, name, threads, ps.size(), h, chan)) {
    std::optional<std::vector<at::Tensor>> g =
        op_backward(h, chan, x, dy, weight, bias, ps);
    if (g)
      return *g;
  }
  return call_python<std::vector<at::Tensor>>(py_backward, x, dy, weight,
                                              bias, ps, source, name,
                                              threads);
}

// Their autograd kernels for CPU tensors: where nothing will
// differentiate the call (grad mode off, or no input requires a
// gradient: what torch.library's Python autograd kernel decides), the
// call goes on below autograd from here; else to that Python kernel
// (torch._library.autograd.make_autograd_impl's, the custom op's own),
// which records the node. In a compiled graph, which calls the operators
// with grad mode off, the Python kernel's redispatch was 6 us of a call.
py::object *py_autograd_forward, *py_autograd_backward;

typedef at::Tensor forward_sig(const at::Tensor &,
                               const std::optional<at::Tensor> &,
                               const std::optional<at::Tensor> &,
                               at::TensorList, std::string, std::string,
                               c10::SymInt);
typedef std::vector<at::Tensor> backward_sig(
    const at::Tensor &, const at::Tensor &, const std::optional<at::Tensor> &,
    const std::optional<at::Tensor> &, at::TensorList, std::string,
    std::string, c10::SymInt);

at::Tensor autograd_forward(c10::DispatchKeySet ks, const at::Tensor &x,
                            const std::optional<at::Tensor> &weight,
                            const std::optional<at::Tensor> &bias,
                            at::TensorList params, std::string source,
                            std::string name, c10::SymInt threads)
{
  refuse_tangents("dnc::layer_forward", x, nullptr, weight, bias, params);
  if (!any_requires_grad(x, nullptr, weight, bias, params)) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("dnc::layer_forward", "")
                         .typed<forward_sig>();
    at::AutoDispatchBelowAutograd below;
    return op.redispatch(ks & c10::after_autograd_keyset, x, weight, bias,
                         params, std::move(source), std::move(name),
                         std::move(threads));
  }
  std::vector<at::Tensor> ps(params.begin(), params.end());
  return call_python<at::Tensor>(py_autograd_forward, ks.raw_repr(), x,
                                 weight, bias, ps, source, name, threads);
}

std::vector<at::Tensor> autograd_backward(
    c10::DispatchKeySet ks, const at::Tensor &x, const at::Tensor &dy,
    const std::optional<at::Tensor> &weight,
    const std::optional<at::Tensor> &bias, at::TensorList params,
    std::string source, std::string name, c10::SymInt threads)
{
  refuse_tangents("dnc::layer_backward", x, &dy, weight, bias, params);
  if (!any_requires_grad(x, &dy, weight, bias, params)) {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("dnc::layer_backward", "")
                         .typed<backward_sig>();
    at::AutoDispatchBelowAutograd below;
    return op.redispatch(ks & c10::after_autograd_keyset, x, dy, weight, bias,
                         params, std::move(source), std::move(name),
                         std::move(threads));
  }
  std::vector<at::Tensor> ps(params.begin(), params.end());
  return call_python<std::vector<at::Tensor>>(py_autograd_backward,
                                              ks.raw_repr(), x, dy, weight,
                                              bias, ps, source, name,
                                              threads);
}

void init(int64_t fwd, int64_t bwd, int64_t fwd_cm, int64_t bwd_cm,
          py::object fb, py::object fl, py::object pyf, py::object pyb,
          py::object agf, py::object agb)
{
  layer_forward = (forward_fn)fwd;
  layer_backward = (backward_fn)bwd;
  layer_forward_cm = (forward_cm_fn)fwd_cm;
  layer_backward_cm = (backward_cm_fn)bwd_cm;
  // kept for the life of the process (the autograd engine's threads may
  // call them at exit)
  fallback = new py::object(std::move(fb));
  fail = new py::object(std::move(fl));
  own_deleter = at::empty({1}).storage().data_ptr().get_deleter();
  py_forward = new py::object(std::move(pyf));
  py_backward = new py::object(std::move(pyb));
  // once a process, and only here, where the entry points are set: a
  // build that torch.py refuses is loaded but never registered
  static torch::Library *cpu = nullptr;
  if (!cpu) {
    cpu = new torch::Library(torch::Library::IMPL, "dnc",
                             c10::DispatchKey::CPU, __FILE__, __LINE__);
    cpu->impl("layer_forward", TORCH_FN(cpu_forward));
    cpu->impl("layer_backward", TORCH_FN(cpu_backward));
    // the autograd kernels where this PyTorch has the Python ones to
    // hand the differentiated calls to (None: torch.library's own stay)
    if (!agf.is_none() && !agb.is_none()) {
      py_autograd_forward = new py::object(std::move(agf));
      py_autograd_backward = new py::object(std::move(agb));
      auto *ag = new torch::Library(torch::Library::IMPL, "dnc",
                                    c10::DispatchKey::AutogradCPU, __FILE__,
                                    __LINE__);
      ag->impl("layer_forward", TORCH_FN(autograd_forward));
      ag->impl("layer_backward", TORCH_FN(autograd_backward));
    }
  }
}

}  // namespace

// fork() while another thread holds reuse_lock or fn_lock (a backward,
// which runs without the GIL) left the child's copy locked for good: its
// first large PointwiseNorm call hung. Both are taken around the fork,
// so that the child's are unlocked (libdnc is fork-safe itself:
// docs/c-api.md, section 11).
void fork_prepare()
{
  fn_lock.lock();
  reuse_lock.lock();
}

void fork_done()
{
  reuse_lock.unlock();
  fn_lock.unlock();
}

PYBIND11_MODULE(_dnc_torch, m)
{
  static bool forks = pthread_atfork(fork_prepare, fork_done, fork_done) == 0;
  (void)forks;
  m.doc() = "dnc.torch's eager layer call in C++ (tools/torch_ext.sh)";
  m.def("init", &init);
  m.def("call", &call);
  m.def("plain", &plain);
  m.def("set_reuse", &set_reuse);
  m.def("register_function", &register_function);
  m.def("set_op_kernels", &set_op_kernels);
  m.attr("torch_version") = DNC_TORCH_VERSION;
  m.attr("abi_version") = DNC_ABI_VERSION;
  // what dnc/torch.py calls here (_EXT_INTERFACE there): raised with any
  // change to these functions, so that a build older than the Python
  // package (a checkout updated without make) is not used
  m.attr("interface") = 5;
}
