/*
 * dnc.h - the public C API of libdnc.
 *
 * Compile dnc source (from a string or a file) into a module, read its
 * diagnostics as data, enumerate its functions and their parameters, and
 * run their JIT-compiled kernels: element-wise and layer forms, forward
 * and backward, in f32, f64, bf16 and f16. docs/c-api.md is the manual.
 *
 * Errors are returned, never printed, and never exit the process. Strings
 * returned by the API belong to the object they came from and live as long
 * as it does. Every function may be called from several threads at once
 * (on the same or different contexts and modules).
 *
 * DNC_ABI_VERSION changes whenever a declaration here changes
 * incompatibly.
 */
#ifndef DNC_H
#define DNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What libdnc exports: it is built with hidden visibility, so the
 * functions declared here (marked DNC_API) are its whole dynamic symbol
 * table (tests/exports.sh checks). */
#if defined(__GNUC__)
#define DNC_API __attribute__((visibility("default")))
#else
#define DNC_API
#endif

/* The version of dnc, in one place: the Makefile, dnc.pc and the Python
 * wheel read it here. */
#define DNC_VERSION_STRING "0.4.0"
#define DNC_ABI_VERSION 6

/* The library's version string and ABI version (compare with the macros
 * to detect a header/library mismatch). */
DNC_API const char *dnc_version(void);
DNC_API int dnc_abi_version(void);

typedef enum dnc_status {
  DNC_OK = 0,
  DNC_ERR_SOURCE = 1,   /* the source has errors: see the diagnostics */
  DNC_ERR_ARGUMENT = 2, /* a null pointer, a bad size or index */
  DNC_ERR_NOT_FOUND = 3, /* no function or parameter of that name */
  DNC_ERR_DTYPE = 4,     /* an unknown dtype, or tensors of different dtypes */
  DNC_ERR_SHAPE = 5,     /* tensors of different shapes */
  DNC_ERR_COMPILE = 6,   /* LLVM failed, or a kernel is past a size limit
                            (docs/c-api.md): see dnc_last_error() */
  DNC_ERR_MEMORY = 7,    /* out of memory */
  DNC_ERR_LOAD = 8       /* a library that cannot be loaded, is not dnc's,
                            or has no level for this CPU: dnc_last_error() */
} dnc_status;

/* A short English description of a status. */
DNC_API const char *dnc_status_string(dnc_status s);
/* More about the last failure on this thread: DNC_ERR_COMPILE,
 * DNC_ERR_LOAD, a failed dnc_context_create, a kernel call out of memory
 * for its temporaries, and any call that refuses its arguments (naming
 * the call, the argument and why: "dnc_forward: x is NULL"). Read it
 * right after the failing call (later successful calls need not clear
 * it); DNC_ERR_SOURCE's explanation is the module's diagnostics, whose
 * first error it holds (FILE:LINE:COL: MESSAGE). */
DNC_API const char *dnc_last_error(void);

typedef struct dnc_context dnc_context;
typedef struct dnc_module dnc_module;
typedef struct dnc_function dnc_function;

/* Options of a context: fill with dnc_options_init, then change fields. */
typedef struct dnc_options {
  int opt_level;        /* LLVM optimisation, 0..3 (default 2) */
  int threads;          /* kernel threads; 0: $DNC_NUM_THREADS, else the CPUs
                           this process may run on (its affinity) */
  const char *cpu;      /* target CPU (LLVM's names, e.g. "x86-64-v3"); NULL:
                           the host's. An unknown name, or one whose code
                           this CPU cannot run, is DNC_ERR_ARGUMENT. */
  const char *features; /* e.g. "+avx2,+fma"; NULL: the host's when cpu is
                           NULL, else those the CPU implies. An unknown one,
                           or an instruction set this CPU lacks, is
                           DNC_ERR_ARGUMENT. */
  const char *dump_ir;  /* an existing directory: each kernel module's IR
                           (the four kernels of one function and dtype) is
                           written there before and after optimisation as
                           dnc<N>_<function>_<dtype>.before.ll and .after.ll
                           (..._<dtype>_stream.* for the stream kernels);
                           NULL: $DNC_DUMP_IR, else nothing */
  int math_bits;        /* the precision of the vector math (tanh, erf,
                           exp, ...) in the kernels: 0 (default) matches it
                           to each dtype: bf16 and f16 kernels, whose
                           results keep 8 and 11 bits, use shorter
                           approximations than f32 kernels
                           (docs/accuracy.md); 24: f32's everywhere, so
                           that bf16 and f16 kernels give the f32 kernels'
                           results rounded once; 8 or 11: bf16's or f16's
                           everywhere (f32 kernels too: for testing). f64
                           kernels always use their own. Else
                           DNC_ERR_ARGUMENT. */
  int cache;            /* the on-disk kernel cache (docs/c-api.md): 0
                           (default) on unless $DNC_CACHE is 0, off, no or
                           false (in any case); 1 on; -1 off. Else
                           DNC_ERR_ARGUMENT. */
  const char *cache_dir; /* its directory; NULL: $DNC_CACHE_DIR, else
                           $XDG_CACHE_HOME/dnc, else $HOME/.cache/dnc */
  long long stream_bytes; /* x86: a call whose f32 or f64 output (y, dx) has at
                           least this many bytes, every row aligned to 64
                           bytes, writes it with non-temporal stores, past
                           the caches (kernels compiled for it on first
                           use; the same results). 0 (default):
                           $DNC_STREAM_BYTES (-1, or bytes with K, M, G
                           or T for 2^10 to 2^40: 64M), else the last-level
                           cache's size capped at 64 MiB; -1: never. Else
                           DNC_ERR_ARGUMENT. */
} dnc_options;
DNC_API void dnc_options_init(dnc_options *o);

/* A context holds the JIT (target machine, options) and the thread pool
 * shared by the modules compiled in it. It lives until it is freed and the
 * last of its modules is freed. */
DNC_API dnc_status dnc_context_create(const dnc_options *o, dnc_context **out);
DNC_API dnc_context *dnc_context_new(void); /* defaults; NULL on failure */
DNC_API void dnc_context_free(dnc_context *ctx);
DNC_API int dnc_context_threads(const dnc_context *ctx);
DNC_API const char *dnc_context_cpu(const dnc_context *ctx);
DNC_API const char *dnc_context_features(const dnc_context *ctx);
/* The widest vector the kernels use, in bits (512 with AVX-512...). */
DNC_API int dnc_context_vector_bits(const dnc_context *ctx);
/* Run the context's kernel threads on an OpenMP runtime that the process
 * has already loaded (library: its soname or path, e.g. "libgomp.so.1"):
 * each call's blocks become one parallel region of dnc_context_threads
 * threads of the calling thread's team (GOMP_parallel), the same bits.
 * For a host whose own parallel code runs on that runtime (PyTorch's
 * ATen): its threads spin for a while after each region, and dnc's own
 * threads would compete with them for the cores. NULL: dnc's own threads
 * (the default). DNC_ERR_NOT_FOUND when the library is not loaded,
 * DNC_ERR_ARGUMENT when it has no GOMP_parallel. Once used, the runtime
 * is never unloaded (its threads live on). After fork() the child uses
 * dnc's own threads. */
DNC_API dnc_status dnc_context_use_openmp(dnc_context *ctx,
                                          const char *library);

typedef enum dnc_diag_severity {
  DNC_DIAG_ERROR = 0,
  DNC_DIAG_WARNING = 1,
  DNC_DIAG_NOTE = 2
} dnc_diag_severity;

typedef struct dnc_diagnostic {
  dnc_diag_severity severity;
  const char *file; /* the name given at compile time; "" when the
                       diagnostic is about no source (cannot open it, too
                       large) */
  int line, column; /* 1-based; 0 when about the whole file */
  const char *message;
} dnc_diagnostic;

/* Compile dnc source. *out receives a module even when the source has
 * errors (then DNC_ERR_SOURCE is returned and the module has no functions
 * but carries the diagnostics); free it with dnc_module_free. `name` is
 * used in diagnostics (NULL: "<string>"). */
DNC_API dnc_status dnc_compile_string(dnc_context *ctx, const char *name,
                                      const char *source, size_t len,
                                      dnc_module **out);
DNC_API dnc_status dnc_compile_file(dnc_context *ctx, const char *path,
                                    dnc_module **out);
DNC_API void dnc_module_free(dnc_module *m);

/* Loads a library written by `dnc compile FILE... -o OUT.so`: a module with
 * exactly the API of one compiled from FILEs (functions, parameters, the
 * reference interpreter, the checked and threaded entry points of ctx),
 * whose kernels are the library's, for the CPU level it picked when loaded
 * (see dnc_module_cpu). A path without '/' is taken in the current
 * directory. DNC_ERR_LOAD when it cannot be opened, is not a dnc library
 * of this ABI, or has no level this CPU runs (dnc_last_error() says
 * which). The library stays loaded until the module is freed. */
DNC_API dnc_status dnc_module_load(dnc_context *ctx, const char *path,
                                   dnc_module **out);

/* The CPU a module's kernels are compiled for: the context's for a
 * compiled module, the chosen level (e.g. "x86-64-v3") for a loaded one. */
DNC_API const char *dnc_module_cpu(const dnc_module *m);

DNC_API size_t dnc_module_diagnostic_count(const dnc_module *m);
DNC_API const dnc_diagnostic *dnc_module_diagnostic(const dnc_module *m,
    size_t i);
/* Writes the diagnostics as dnc prints them (gcc style, with the source line
 * and a caret) into buf, snprintf-style: returns the length of the whole
 * text, of which at most n-1 bytes and a NUL are written. */
DNC_API size_t dnc_module_format_diagnostics(const dnc_module *m, char *buf,
                                             size_t n);

DNC_API int dnc_module_function_count(const dnc_module *m);
DNC_API const dnc_function *dnc_module_function(const dnc_module *m, int i);
DNC_API const dnc_function *dnc_module_find(const dnc_module *m,
                                            const char *name);

typedef enum dnc_param_kind {
  DNC_PARAM_SCALAR = 0,
  DNC_PARAM_PER_CHANNEL = 1 /* one value per channel of the tensor */
} dnc_param_kind;

typedef struct dnc_param_info {
  const char *name;
  double default_value;
  dnc_param_kind kind;
} dnc_param_info;

DNC_API const char *dnc_function_name(const dnc_function *f);
DNC_API int dnc_function_param_count(const dnc_function *f);
DNC_API dnc_status dnc_function_param(const dnc_function *f, int i,
                                      dnc_param_info *out);
/* Index of the parameter called `name`, or -1. */
DNC_API int dnc_function_param_index(const dnc_function *f, const char *name);

/* Reference interpreter: y[i] = f(x[i]; params) for i < n, computed in
 * extended precision and rounded to double. params holds one value per
 * parameter in declaration order (a per-channel parameter's value for the
 * channel in question); NULL means the defaults. x and y may be equal;
 * a y that overlaps x otherwise, or params, is DNC_ERR_ARGUMENT. */
DNC_API dnc_status dnc_function_eval(const dnc_function *f, const double *x,
                                     double *y, size_t n, const double *params);

/* f as dnc source, as `dnc print` writes it (shared subexpressions become
 * `let`s), snprintf-style: returns the length of the whole text, of which
 * at most n-1 bytes and a NUL are written to buf. */
DNC_API size_t dnc_function_source(const dnc_function *f, char *buf, size_t n);

/* Output formats of derivatives (`dnc diff --format`). */
typedef enum dnc_format {
  DNC_FORMAT_DSL = 0,   /* dnc source: one fn per derivative, named like
                           dyt__dx, dyt__dalpha2, dyt__dx_dalpha, with f's
                           parameters and defaults */
  DNC_FORMAT_LATEX = 1, /* LaTeX equations */
  DNC_FORMAT_C = 2,     /* C99 functions over double, after the helpers
                           they use */
  DNC_FORMAT_TORCH = 3  /* Python functions over PyTorch tensors, after
                           `import torch` and the helpers they use: f
                           itself (def dyt(x, alpha)), then each
                           derivative (def dyt__dx(x, alpha)), and
                           where they are first derivatives
                           dyt__all(x, alpha), returning f and them
                           as one tuple */
} dnc_format;

/* The simplified derivatives of f that `dnc diff --wrt WRT --order N`
 * prints: wrt "all" (every derivative of that order, mixed ones once
 * each), f's input or a parameter (its order-th derivative), or a list
 * "v1,v2" (the mixed derivative, in that order; order must be 1). The
 * text is written snprintf-style into buf (at most n-1 bytes and a NUL),
 * and *len (if len is not NULL) receives its whole length: call with n = 0
 * to learn it. DNC_ERR_NOT_FOUND when f has no such variable,
 * DNC_ERR_ARGUMENT for an order outside 1..16, too many derivatives or
 * one too large (more than 100,000 DAG nodes: docs/c-api.md, Limits;
 * dnc_last_error() says which). */
DNC_API dnc_status dnc_function_diff(const dnc_function *f, const char *wrt,
                                     int order, dnc_format format, char *buf,
                                     size_t n, size_t *len);

/* ------------------------------------------------------ least squares */

/* Fits f's parameters to the n points (x[i], y[i]) by least squares,
 * min sum (y - f(x; p))^2 (or y - gamma f(x; p) with options' gain), by
 * Levenberg-Marquardt with f's symbolic derivatives as the Jacobian,
 * evaluated by the reference interpreter: the solver of `dnc fit`
 * (docs/fit.md). */
typedef enum dnc_fit_status {
  DNC_FIT_OK = 0,     /* converged; why says by which test */
  DNC_FIT_MAXITER,    /* the iteration limit came first */
  DNC_FIT_STALLED,    /* no step lowers the sum of squares, gradient not 0 */
  DNC_FIT_ILLPOSED,   /* a parameter is not determined by the points */
  DNC_FIT_NONFINITE,  /* f or a derivative is NaN or infinite at a point
                         at the start */
  DNC_FIT_TOOFEW,     /* fewer points than free parameters */
  DNC_FIT_TOOLARGE,   /* a derivative passes DNC_MAX_DIFF_NODES */
} dnc_fit_status;

typedef struct dnc_fit_options {
  int max_iter;     /* steps, the polishing ones included; default 200 */
  double ftol;      /* relative decrease of the sum of squares; 1e-14 */
  double xtol;      /* relative step; 1e-12 */
  double gtol;      /* cosine of the residual and the Jacobian; 1e-12 */
  int gain;         /* fit gamma * f(x) with gamma free */
  double gain_init; /* its value when fixed (gain_fixed); free, its start
                       is the least-squares gain for the parameters'
                       starts where that is within gamma's bounds, and
                       gain_init, put within the bounds, where it is not
                       or none can be had (f 0 at every point); default
                       1 */
  int gain_fixed;
} dnc_fit_options;
/* The defaults (every field; gain off). */
DNC_API void dnc_fit_options_init(dnc_fit_options *o);

typedef struct dnc_fit_result {
  dnc_fit_status status;
  char why[200];      /* how it stopped, in words */
  int iterations;     /* steps taken, polishing included: <= max_iter */
  double *value;      /* nparams + 1 values: the parameters in declaration
                         order, then gamma (1 without a gain); malloc'd:
                         free with dnc_fit_result_free */
  double *se;         /* standard errors; NaN for fixed ones or when
                         there are no more points than free parameters */
  double gain, gain_se;
  double ssq, mean_abs, max_abs, rms; /* of the residuals y - model; NaN
                         where the fit never ran (NONFINITE, TOOFEW,
                         TOOLARGE) */
  int bad_point;      /* DNC_FIT_NONFINITE: the point; ILLPOSED: -1 */
  int bad_param;      /* DNC_FIT_ILLPOSED: the parameter (nparams: gamma);
                         NONFINITE: the parameter whose derivative is not
                         finite at bad_point, -1 when f is not (or
                         the point itself is not) */
} dnc_fit_result;


/* params: the start, one value per parameter in declaration order (a
 * per-channel parameter is fitted as one value); NULL: the defaults.
 * fixed: NULL, or one flag per parameter, nonzero to hold it at its
 * start. o NULL: the defaults. Returns DNC_OK when the fit ran: r then
 * says how it ended (r->status, r->why; a fit that did not converge is
 * not an error of the call) and must be freed with dnc_fit_result_free;
 * DNC_ERR_ARGUMENT (nothing to free; r cleared) for a NULL f, x, y or
 * r, n above INT_MAX, or options out of range (max_iter < 0, a negative
 * or NaN tolerance). */
DNC_API dnc_status dnc_function_fit(const dnc_function *f, const double *x,
                                    const double *y, size_t n,
                                    const double *params, const int *fixed,
                                    const dnc_fit_options *o,
                                    dnc_fit_result *r);
/* dnc_function_fit with bounds on the free parameters, lower[j] <= p_j <=
 * upper[j], by a projected Levenberg-Marquardt (docs/fit.md, "Bounds").
 * lower and upper: NULL (none) or nparams values in declaration order,
 * and gamma's after them (nparams + 1) when o->gain is set; -INFINITY and
 * INFINITY for no bound. at_bound: NULL, or nparams + 1 ints that
 * receive, per parameter then gamma, -1 when it ended at its lower bound,
 * 1 at its upper one, else 0 (all 0 where the fit never ran: NONFINITE,
 * TOOFEW, TOOLARGE); such a parameter's r->se is NaN (the
 * minimum is on the bound, where a two-sided error means nothing), and
 * the others' standard errors are those with it held there.
 * DNC_ERR_ARGUMENT, besides dnc_function_fit's, with dnc_last_error()
 * naming the parameter: a NaN bound, a lower bound of +inf or an upper
 * one of -inf, lower > upper, lower == upper (fix it instead), a finite
 * bound on a fixed parameter (or gamma's with o->gain_fixed), a
 * parameter's start (params or the default) outside its bounds (a free
 * gamma's o->gain_init is not checked: see dnc_fit_options). Added in
 * 0.4.0 without changing DNC_ABI_VERSION: dnc_function_fit is this with
 * no bounds. */
DNC_API dnc_status dnc_function_fit_bounded(const dnc_function *f,
                                            const double *x, const double *y,
                                            size_t n, const double *params,
                                            const int *fixed,
                                            const double *lower,
                                            const double *upper,
                                            const dnc_fit_options *o,
                                            dnc_fit_result *r,
                                            int *at_bound);
/* Frees r's arrays; NULL does nothing. */
DNC_API void dnc_fit_result_free(dnc_fit_result *r);

/* ------------------------------------------------------------ kernels */

/* Storage types of tensors. bf16 and f16 are computed in f32 and rounded
 * to nearest even when stored. */
typedef enum dnc_dtype {
  DNC_F32 = 0,
  DNC_F64 = 1,
  DNC_BF16 = 2,
  DNC_F16 = 3
} dnc_dtype;
/* "f32", "f64", "bf16", "f16"; NULL for another value. */
DNC_API const char *dnc_dtype_name(dnc_dtype t);

/* A 2-D view of a tensor: rows x cols elements, row r starting at element
 * r * stride (stride 0 means cols). A vector is 1 x n. */
typedef struct dnc_tensor {
  void *data;
  dnc_dtype dtype;
  int64_t rows, cols;
  int64_t stride;
} dnc_tensor;

/* Element-wise kernels, over every element of the view.
 *   forward:  y = f(x; params)
 *   backward: dx = dy * df/dx, and dparams[k] += sum of dy * df/dp_k
 * params: one value per parameter in declaration order (a per-channel
 * parameter takes the one value given); NULL: the defaults. dparams: NULL
 * when not wanted. y may be x, dx may be dy (the same view); an output
 * sharing memory with an input otherwise is DNC_ERR_ARGUMENT. The sums are accumulated in double, after
 * groups of 8 terms per vector lane in f32 for f32, bf16 and f16 (see
 * docs/c-api.md) and are bitwise the same for any number of threads. */
DNC_API dnc_status dnc_forward(const dnc_function *f, const dnc_tensor *x,
                               const dnc_tensor *y, const double *params);
DNC_API dnc_status dnc_backward(const dnc_function *f, const dnc_tensor *x,
                                const dnc_tensor *dy, const dnc_tensor *dx,
                                const double *params, double *dparams);

/* Layer kernels over a [rows x C] tensor, channel c = column c:
 *   forward:  y[r,c] = gamma[c] * f(x[r,c]; params, channel[.][c]) + beta[c]
 *   backward (one pass over x and dy): dx, and the sums over all rows of
 *   dy*gamma*df/dp for scalar parameters, per channel for per-channel
 *   ones, dgamma[c] += sum_r dy * f, dbeta[c] += sum_r dy.
 * Per-channel values, gamma, beta and the per-channel gradients are
 * arrays of C values of the compute type: float for f32, bf16 and f16
 * tensors, double for f64. */
typedef struct dnc_layer {
  const double *params;       /* by parameter index, scalar parameters
                                 (per-channel entries unused); NULL:
                                 defaults */
  const void *const *channel; /* by parameter index: C values for each
                                 per-channel parameter; NULL, or a NULL
                                 entry: its default in every channel */
  const void *gamma, *beta;   /* C values, or NULL: gamma 1, beta 0 */
} dnc_layer;

typedef struct dnc_layer_grad {
  double *params;       /* by parameter index, += for scalar parameters
                           (per-channel entries untouched); NULL: unwanted */
  void *const *channel; /* by parameter index: += C sums for each
                           per-channel parameter; NULL (or entry): unwanted */
  void *gamma, *beta;   /* += C sums; NULL: unwanted */
} dnc_layer_grad;

DNC_API dnc_status dnc_layer_forward(const dnc_function *f, const dnc_tensor *x,
                                     const dnc_tensor *y,
                                     const dnc_layer *layer);
DNC_API dnc_status dnc_layer_backward(const dnc_function *f,
                                      const dnc_tensor *x, const dnc_tensor *dy,
                                      const dnc_tensor *dx,
                                      const dnc_layer *layer,
                                      const dnc_layer_grad *grad);

/* The same layers channels first: x is [rows x cols] with row r in
 * channel r % channels (rows a multiple of channels, else DNC_ERR_SHAPE),
 * as an N x C x HW tensor is [N*C x HW]; per-channel values, gamma, beta
 * and their gradients hold `channels` values:
 *   y[r,j] = gamma[r%C] * f(x[r,j]; params, channel[.][r%C]) + beta[r%C]
 * and the backward's per-channel sums run over the rows of a channel and
 * all columns. Bitwise the same for any number of threads. */
DNC_API dnc_status dnc_layer_forward_cm(const dnc_function *f,
                                        const dnc_tensor *x,
                                        const dnc_tensor *y, int64_t channels,
                                        const dnc_layer *layer);
DNC_API dnc_status dnc_layer_backward_cm(const dnc_function *f,
                                         const dnc_tensor *x,
                                         const dnc_tensor *dy,
                                         const dnc_tensor *dx, int64_t channels,
                                         const dnc_layer *layer,
                                         const dnc_layer_grad *grad);

/* Raw kernels: no checks, no threads, for zero-overhead calls on the
 * caller's thread. Pointers are to the storage type T of the dtype;
 * C is the compute type (see above); lengths and strides in elements.
 *   forward(x, y, n, p)                 y[i] = f(x[i]; p)
 *   backward(x, dy, dx, n, p, dp)       dx[i] = dy[i] * df/dx;
 *                                       dp[k] = sum (stored, not added)
 *   layer_forward(x, ldx, y, ldy, rows, cols, p, channel, gamma, beta)
 *                                       gamma and beta both given or both
 *                                       NULL; channel[k] for per-channel k
 *   layer_backward(x, ldx, dy, lddy, dx, lddx, rows, cols, p, channel,
 *                  gamma, beta, dp, dchannel, dgamma, dbeta)
 *                                       dp[k] stored for scalar k;
 *                                       dchannel[k] (double, cols), dgamma,
 *                                       dbeta (double, cols) added to;
 *                                       dgamma/dbeta used iff gamma given
 * p holds every parameter's value as double. */
typedef void (*dnc_forward_fn)(const void *x, void *y, int64_t n,
                               const double *p);
typedef void (*dnc_backward_fn)(const void *x, const void *dy, void *dx,
                                int64_t n, const double *p, double *dp);
typedef void (*dnc_layer_forward_fn)(const void *x, int64_t ldx, void *y,
                                     int64_t ldy, int64_t rows, int64_t cols,
                                     const double *p,
                                     const void *const *channel,
                                     const void *gamma, const void *beta);
typedef void (*dnc_layer_backward_fn)(
    const void *x, int64_t ldx, const void *dy, int64_t lddy, void *dx,
    int64_t lddx, int64_t rows, int64_t cols, const double *p,
    const void *const *channel, const void *gamma, const void *beta,
    double *dp, double *const *dchannel, double *dgamma, double *dbeta);

typedef struct dnc_kernels {
  dnc_forward_fn forward;
  dnc_backward_fn backward;
  dnc_layer_forward_fn layer_forward;
  dnc_layer_backward_fn layer_backward;
} dnc_kernels;

/* The kernels of f in a dtype, compiled on first use (later calls return
 * the same pointers). They live as long as f's module. */
DNC_API dnc_status dnc_function_kernels(const dnc_function *f, dnc_dtype t,
                                        dnc_kernels *out);

#ifdef __cplusplus
}
#endif

#endif
