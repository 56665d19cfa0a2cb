/*
 * kernels.c - the checked kernel entry points: argument checks, a fixed
 * grid of blocks run on the context's thread pool, and reductions added in
 * a fixed order.
 *
 * The grid depends on the tensor's shape only, never on the number of
 * threads: blocks of at most BLOCK columns and enough rows to make about
 * BLOCK elements, with at most MAX_ROW_BLOCKS row blocks (so the
 * per-channel partial sums stay small). Each block writes its own partial
 * sums (in double, see codegen.c); they are added block by block in grid
 * order afterwards. Hence every output and every gradient is bitwise the
 * same for 1, 2 or N threads.
 *
 * Accumulation precision: each element's contribution dy * df/dp is
 * formed in the compute type and added in it over groups of 8 (a scalar
 * parameter's: 8 vectors per lane; a per-channel one's: 8 rows; codegen.c,
 * SUM_VECS and emit_tiles), whose sums go to double lanes; lanes and
 * blocks are then summed in double in a fixed order. A sum is thus off by
 * at most 7 * 2^-24 of its terms' magnitudes in f32 (0 in f64), plus about
 * n * 2^-53 (plus each term's own rounding in the compute type).
 */
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

enum { BLOCK = 65536, MAX_ROW_BLOCKS = 64 };
/* channels first: columns per kernel call, whose broadcast per-channel
 * values are filled once per task (task_cm_fwd) */
enum { CM_CHUNK = 512 };

typedef struct grid {
  int64_t rows, cols;
  int64_t rb, cb;   /* block extent */
  int64_t nrb, ncb; /* blocks per dimension */
} grid;

static void grid_init(grid *g, int64_t rows, int64_t cols)
{
  g->rows = rows;
  g->cols = cols;
  g->cb = cols < BLOCK ? cols : BLOCK;
  if (g->cb < 1)
    g->cb = 1;
  int64_t rb = BLOCK / g->cb;
  int64_t min_rb = (rows + MAX_ROW_BLOCKS - 1) / MAX_ROW_BLOCKS;
  g->rb = rb > min_rb ? rb : min_rb;
  if (g->rb < 1)
    g->rb = 1;
  g->nrb = (rows + g->rb - 1) / g->rb;
  g->ncb = (cols + g->cb - 1) / g->cb;
}

static size_t storage_size(int dt)
{
  return dt == DNC_F64 ? 8 : dt == DNC_F32 ? 4 : 2;
}

static size_t compute_size(int dt)
{
  return dt == DNC_F64 ? 8 : 4;
}

/* Checks one view, the argument `name` of `call`; *ld receives its row
 * stride. */
static dnc_status check_tensor(const char *call, const char *name,
                               const dnc_tensor *t, int64_t *ld)
{
  if (!t)
    return dnc_refuse(DNC_ERR_ARGUMENT, call, "%s is NULL", name);
  if ((unsigned)t->dtype >= DNC_DT__COUNT)
    return dnc_refuse(DNC_ERR_DTYPE, call, "%s has dtype %d, which is none of "
                  "f32, f64, bf16, f16", name, (int)t->dtype);
  if (t->rows < 0 || t->cols < 0 || t->stride < 0)
    return dnc_refuse(DNC_ERR_ARGUMENT, call, "%s has a negative size or stride "
                  "(rows %lld, cols %lld, stride %lld)", name,
                  (long long)t->rows, (long long)t->cols, (long long)t->stride);
  *ld = t->stride ? t->stride : t->cols;
  if (t->rows > 1 && *ld < t->cols)
    return dnc_refuse(DNC_ERR_ARGUMENT, call, "%s's stride %lld is less than its "
                  "cols %lld: its %lld rows would overlap", name,
                  (long long)*ld, (long long)t->cols, (long long)t->rows);
  if (t->rows && t->cols) {
    if (!t->data)
      return dnc_refuse(DNC_ERR_ARGUMENT, call, "%s has %lld x %lld elements and "
                    "NULL data", name, (long long)t->rows, (long long)t->cols);
    /* the last element's byte offset must fit, and so must cols values of
     * any type (the per-channel arrays): cols first, or INT64_MAX / 8 -
     * cols is negative and the division truncates it to 0 */
    if (t->cols > INT64_MAX / 8 ||
        t->rows - 1 > (INT64_MAX / 8 - t->cols) / *ld)
      return dnc_refuse(DNC_ERR_ARGUMENT, call, "%s is too large (rows %lld, "
                    "cols %lld, stride %lld: 2^60 elements or more)", name,
                    (long long)t->rows, (long long)t->cols, (long long)*ld);
  }
  return DNC_OK;
}

static dnc_status check_pair(const char *call, const char *na,
                             const dnc_tensor *a, const char *nb,
                             const dnc_tensor *b)
{
  if (a->dtype != b->dtype)
    return dnc_refuse(DNC_ERR_DTYPE, call, "%s is %s but %s is %s", na,
                  dnc_dtype_name(a->dtype), nb, dnc_dtype_name(b->dtype));
  if (a->rows != b->rows || a->cols != b->cols)
    return dnc_refuse(DNC_ERR_SHAPE, call, "%s is [%lld x %lld] but %s is "
                  "[%lld x %lld]", na, (long long)a->rows, (long long)a->cols,
                  nb, (long long)b->rows, (long long)b->cols);
  return DNC_OK;
}

/* Whether two views of the same shape and dtype (checked) share a byte:
 * row r of a covers [r*lda*es, r*lda*es + cols*es) from a's data, and
 * likewise b's; for each row of a, the rows of b that could meet it are
 * found by division. O(rows), only when the two spans meet. */
static int views_overlap(const dnc_tensor *a, int64_t lda, const dnc_tensor *b,
                         int64_t ldb)
{
  if (!a->rows || !a->cols)
    return 0;
  typedef __int128 i128; /* byte offsets reach 2^63 */
  i128 es = (i128)storage_size(a->dtype), w = a->cols * es;
  i128 la = (a->rows > 1 ? lda : a->cols) * es;
  i128 lb = (b->rows > 1 ? ldb : b->cols) * es;
  i128 d = (i128)(intptr_t)b->data - (i128)(intptr_t)a->data;
  i128 span_a = (a->rows - 1) * la + w, span_b = (b->rows - 1) * lb + w;
  if (d >= span_a || -d >= span_b)
    return 0;
  for (int64_t r = 0; r < a->rows; r++) {
    /* b's row t meets a's row r iff lo < t*lb < hi */
    i128 lo = r * la - w - d, hi = r * la + w - d;
    i128 q = lo / lb;
    if (q * lb > lo)
      q--; /* floor */
    i128 t = q + 1 > 0 ? q + 1 : 0;
    if (t < b->rows && t * lb < hi)
      return 1;
  }
  return 0;
}

/* An output view, `out`, must not share memory with an input `in` of the
 * call, except as the very same view where `same_ok` (y = x, dx = dy: in
 * place, element by element). */
static dnc_status check_overlap(const char *call, const char *nout,
                                const dnc_tensor *out, int64_t ldout,
                                const char *nin, const dnc_tensor *in,
                                int64_t ldin, int same_ok)
{
  if (same_ok && out->data == in->data && (ldout == ldin || out->rows <= 1))
    return DNC_OK;
  if (!views_overlap(out, ldout, in, ldin))
    return DNC_OK;
  if (same_ok)
    return dnc_refuse(DNC_ERR_ARGUMENT, call, "%s overlaps %s without being the "
                  "same view (in place, %s may be %s itself)", nout, nin,
                  nout, nin);
  return dnc_refuse(DNC_ERR_ARGUMENT, call, "%s overlaps %s (%s may share no "
                "memory with %s)", nout, nin, nout, nin);
}

/* Everything a block needs. */
typedef struct call {
  const dnc_kernels *k;
  int dt, np;
  size_t es, cs;
  grid g;
  const char *x, *dy;
  char *y, *dx;
  int64_t ldx, ldy, lddy, lddx;
  const double *p;
  double *sums; /* blocks x np */
  /* layer */
  const dnc_fn *f;
  const char *pc[DNC_MAX_PARAMS];
  const char *gamma, *beta;
  double *partial[DNC_MAX_PARAMS]; /* per-channel sums: nrb x cols */
  double *pgamma, *pbeta;           /* the same for gamma and beta */
} call;

static void block_extent(const call *c, int64_t t, int64_t *r0, int64_t *nr,
                         int64_t *c0, int64_t *nc, int64_t *rblock)
{
  int64_t i = t / c->g.ncb, j = t % c->g.ncb;
  *rblock = i;
  *r0 = i * c->g.rb;
  *nr = c->g.rows - *r0 < c->g.rb ? c->g.rows - *r0 : c->g.rb;
  *c0 = j * c->g.cb;
  *nc = c->g.cols - *c0 < c->g.cb ? c->g.cols - *c0 : c->g.cb;
}

static void task_fwd(void *arg, int64_t t)
{
  call *c = arg;
  int64_t r0, nr, c0, nc, i;
  block_extent(c, t, &r0, &nr, &c0, &nc, &i);
  for (int64_t r = r0; r < r0 + nr; r++)
    c->k->forward(c->x + (size_t)(r * c->ldx + c0) * c->es,
                  c->y + (size_t)(r * c->ldy + c0) * c->es, nc, c->p);
}

static void task_bwd(void *arg, int64_t t)
{
  call *c = arg;
  int64_t r0, nr, c0, nc, i;
  block_extent(c, t, &r0, &nr, &c0, &nc, &i);
  double row[DNC_MAX_PARAMS + 1];
  double *sum = c->sums + t * c->np;
  for (int64_t r = r0; r < r0 + nr; r++) {
    c->k->backward(c->x + (size_t)(r * c->ldx + c0) * c->es,
                   c->dy + (size_t)(r * c->lddy + c0) * c->es,
                   c->dx + (size_t)(r * c->lddx + c0) * c->es, nc, c->p, row);
    for (int k = 0; k < c->np; k++)
      sum[k] = r == r0 ? row[k] : sum[k] + row[k];
  }
}

static void task_layer_fwd(void *arg, int64_t t)
{
  call *c = arg;
  int64_t r0, nr, c0, nc, i;
  block_extent(c, t, &r0, &nr, &c0, &nc, &i);
  const void *pc[DNC_MAX_PARAMS + 1];
  for (int k = 0; k < c->np; k++)
    pc[k] = c->pc[k] ? c->pc[k] + (size_t)c0 * c->cs : NULL;
  c->k->layer_forward(c->x + (size_t)(r0 * c->ldx + c0) * c->es, c->ldx,
                      c->y + (size_t)(r0 * c->ldy + c0) * c->es, c->ldy, nr,
                      nc, c->p, pc,
                      c->gamma ? c->gamma + (size_t)c0 * c->cs : NULL,
                      c->beta ? c->beta + (size_t)c0 * c->cs : NULL);
}

static void task_layer_bwd(void *arg, int64_t t)
{
  call *c = arg;
  int64_t r0, nr, c0, nc, i;
  block_extent(c, t, &r0, &nr, &c0, &nc, &i);
  const void *pc[DNC_MAX_PARAMS + 1];
  double *dpc[DNC_MAX_PARAMS + 1];
  size_t off = (size_t)(i * c->g.cols + c0), bytes = (size_t)nc * sizeof(double);
  for (int k = 0; k < c->np; k++) {
    pc[k] = c->pc[k] ? c->pc[k] + (size_t)c0 * c->cs : NULL;
    dpc[k] = c->partial[k] ? c->partial[k] + off : NULL;
    if (dpc[k])
      memset(dpc[k], 0, bytes);
  }
  int aff = c->gamma != NULL;
  if (aff) {
    memset(c->pgamma + off, 0, bytes);
    memset(c->pbeta + off, 0, bytes);
  }
  c->k->layer_backward(
      c->x + (size_t)(r0 * c->ldx + c0) * c->es, c->ldx,
      c->dy + (size_t)(r0 * c->lddy + c0) * c->es, c->lddy,
      c->dx + (size_t)(r0 * c->lddx + c0) * c->es, c->lddx, nr, nc, c->p, pc,
      aff ? c->gamma + (size_t)c0 * c->cs : NULL,
      aff ? c->beta + (size_t)c0 * c->cs : NULL, c->sums + t * c->np, dpc,
      aff ? c->pgamma + off : NULL, aff ? c->pbeta + off : NULL);
}

/* The parameter values: given, or the defaults. */
static void param_values(const dnc_fn *f, const double *given, double *p)
{
  for (int k = 0; k < f->nparams; k++)
    p[k] = given ? given[k] : f->params[k].def;
}

static int64_t run_grid(call *c, const dnc_function *f,
                        void (*task)(void *, int64_t))
{
  int64_t n = c->g.nrb * c->g.ncb;
  dnc_module *mod = dnc_function_module(f);
  dnc_pool_run(mod->ctx->pool, n, task, c);
  return n;
}

/* dparams[k] += the blocks' sums, in block order */
static void add_sums(const call *c, int64_t nblocks, double *dparams,
                     int scalars_only)
{
  for (int k = 0; k < c->np; k++) {
    if (scalars_only && c->f->params[k].per_channel)
      continue;
    double s = 0;
    for (int64_t t = 0; t < nblocks; t++)
      s += c->sums[t * c->np + k];
    dparams[k] += s;
  }
}

static dnc_status prepare(const char *call, const dnc_function *f,
                          const dnc_tensor *x, const dnc_kernels **k)
{
  if (!f || !dnc_function_module(f))
    return dnc_refuse(DNC_ERR_ARGUMENT, call, "the function is NULL");
  dnc_status st = dnc_get_kernels(f, x->dtype, k);
  if (st == DNC_ERR_MEMORY)
    dnc_refuse(st, call, "out of memory compiling the kernels");
  return st;
}

/* A forward call's checks (x in, y out, y = x allowed), and its kernels;
 * who: the entry point, for dnc_last_error() */
static dnc_status check_fwd(const char *who, const dnc_function *f,
                            const dnc_tensor *x, const dnc_tensor *y, call *c)
{
  dnc_status st;
  if ((st = check_tensor(who, "x", x, &c->ldx)) ||
      (st = check_tensor(who, "y", y, &c->ldy)) ||
      (st = check_pair(who, "x", x, "y", y)) ||
      (st = check_overlap(who, "y", y, c->ldy, "x", x, c->ldx, 1)))
    return st;
  return prepare(who, f, x, &c->k);
}

/* A backward call's checks (x and dy in, dx out, dx = dy allowed) */
static dnc_status check_bwd(const char *who, const dnc_function *f,
                            const dnc_tensor *x, const dnc_tensor *dy,
                            const dnc_tensor *dx, call *c)
{
  dnc_status st;
  if ((st = check_tensor(who, "x", x, &c->ldx)) ||
      (st = check_tensor(who, "dy", dy, &c->lddy)) ||
      (st = check_tensor(who, "dx", dx, &c->lddx)) ||
      (st = check_pair(who, "x", x, "dy", dy)) ||
      (st = check_pair(who, "x", x, "dx", dx)) ||
      (st = check_overlap(who, "dx", dx, c->lddx, "x", x, c->ldx, 0)) ||
      (st = check_overlap(who, "dx", dx, c->lddx, "dy", dy, c->lddy, 1)))
    return st;
  return prepare(who, f, x, &c->k);
}

/* A view of element-wise operands as one row when they are all contiguous,
 * so that blocks are cut along the data, not per row. */
static void flatten(call *c, const dnc_tensor *const *ts, const int64_t *lds,
                    int n)
{
  int64_t rows = ts[0]->rows, cols = ts[0]->cols;
  int flat = rows > 1;
  for (int i = 0; i < n; i++)
    if (lds[i] != cols)
      flat = 0;
  if (flat) {
    cols *= rows;
    rows = 1;
  }
  grid_init(&c->g, rows, cols);
}

/* Kernel calls start at multiples of BLOCK or CM_CHUNK columns into a
 * row: 64 bytes apart for every element size pick_stream streams. */
_Static_assert(BLOCK % 16 == 0 && CM_CHUNK % 16 == 0,
               "column blocks keep 64-byte alignment for 4-byte elements");

/* The stream kernels (non-temporal stores) for a call whose output, out
 * with `rows` rows of row stride ld (elements), is f32 or f64, at least
 * the context's stream_bytes, and has every vector store aligned: each
 * row's start on 64 bytes (the widest vector; movntps faults on less),
 * and so each column block's (above). The grid must be set. Else the
 * call keeps c->k: the same results. */
static void pick_stream(call *c, const void *out, int64_t ld, int64_t rows)
{
#if defined(__x86_64__)
  long long limit = dnc_function_module(c->f)->ctx->stream_bytes;
  double bytes = (double)rows * (double)c->g.cols * (double)c->es;
  /* not 2-byte outputs: their 32-byte streaming stores (half a line
   * each) made bf16's forward 4-8% slower at [8192 x 4096], no faster
   * backward (docs/performance.md, round five) */
  if (limit < 0 || c->es < 4 || bytes < (double)limit || (uintptr_t)out % 64 ||
      (rows > 1 && (size_t)ld * c->es % 64))
    return;
  const dnc_kernels *k = dnc_get_stream_kernels(c->f, c->dt);
  if (k)
    c->k = k;
#else
  (void)c, (void)out, (void)ld, (void)rows;
#endif
}

/* What every call shares: the function, x's dtype and sizes, x's data
 * and the parameter values p (the caller's array). */
static void call_init(call *c, const dnc_function *f, const dnc_tensor *x,
                      const double *p)
{
  c->f = f;
  c->np = f->nparams;
  c->dt = x->dtype;
  c->es = storage_size(c->dt);
  c->cs = compute_size(c->dt);
  c->x = x->data;
  c->p = p;
}

/* A call's result; out of memory for its temporaries (the sums, the
 * defaulted per-channel arrays) is said in dnc_last_error() too, which
 * otherwise kept an older, unrelated message. */
static dnc_status finish(const char *who, dnc_status st, const dnc_tensor *x)
{
  if (st == DNC_ERR_MEMORY)
    dnc_refuse(st, who, "out of memory for the temporaries of a [%lld x %lld] "
               "call", (long long)x->rows, (long long)x->cols);
  return st;
}

dnc_status dnc_forward(const dnc_function *f, const dnc_tensor *x,
                       const dnc_tensor *y, const double *params)
{
  call c = {0};
  dnc_status st;
  if ((st = check_fwd("dnc_forward", f, x, y, &c)))
    return st;
  double p[DNC_MAX_PARAMS + 1];
  param_values(f, params, p);
  call_init(&c, f, x, p);
  c.y = y->data;
  const dnc_tensor *ts[2] = {x, y};
  int64_t lds[2] = {c.ldx, c.ldy};
  flatten(&c, ts, lds, 2);
  pick_stream(&c, c.y, c.ldy, c.g.rows);
  run_grid(&c, f, task_fwd);
  return DNC_OK;
}

dnc_status dnc_backward(const dnc_function *f, const dnc_tensor *x,
                        const dnc_tensor *dy, const dnc_tensor *dx,
                        const double *params, double *dparams)
{
  call c = {0};
  dnc_status st;
  if ((st = check_bwd("dnc_backward", f, x, dy, dx, &c)))
    return st;
  double p[DNC_MAX_PARAMS + 1];
  param_values(f, params, p);
  call_init(&c, f, x, p);
  c.dy = dy->data;
  c.dx = dx->data;
  const dnc_tensor *ts[3] = {x, dy, dx};
  int64_t lds[3] = {c.ldx, c.lddy, c.lddx};
  flatten(&c, ts, lds, 3);
  pick_stream(&c, c.dx, c.lddx, c.g.rows);
  int64_t nblocks = c.g.nrb * c.g.ncb;
  c.sums = calloc((size_t)(nblocks * c.np) + 1, sizeof *c.sums);
  if (!c.sums)
    return finish("dnc_backward", DNC_ERR_MEMORY, x);
  run_grid(&c, f, task_bwd);
  if (dparams)
    add_sums(&c, nblocks, dparams, 0);
  free(c.sums);
  return DNC_OK;
}

/* Per-channel inputs in the compute type: the caller's, or a default
 * filled in (recorded in owned[] to be freed). */
static const char *channel_values(size_t cs, int64_t cols, const void *given,
                                  double value, void **owned)
{
  if (given)
    return given;
  char *a = malloc((size_t)cols * cs + cs);
  if (!a)
    return NULL;
  for (int64_t i = 0; i < cols; i++) {
    if (cs == 8)
      ((double *)a)[i] = value;
    else
      ((float *)a)[i] = (float)value;
  }
  *owned = a;
  return a;
}

typedef struct layer_state {
  void *owned[DNC_MAX_PARAMS + 2];
} layer_state;

static void layer_state_free(layer_state *ls, call *c)
{
  for (int i = 0; i < DNC_MAX_PARAMS + 2; i++)
    free(ls->owned[i]);
  free(c->sums);
}

/* ------------------------------------------- the backward's partial sums
 *
 * A layer backward's per-channel partial sums (row blocks x columns
 * doubles for gamma, beta and each per-channel parameter: 4 MiB for a
 * [8192 x 4096] layer with gamma and beta) live in a buffer that the
 * calling thread keeps from one call to the next. Allocated afresh, such
 * a buffer came from mmap and went back to the system at every call: its
 * pages faulted in again on every call, on the workers, and its unmapping
 * interrupted every thread to flush its TLB, which took 2-thread
 * backwards from 2 times a 1-thread one's speed to 1.1 times. Each task
 * zeroes its own slice before its kernel adds to it. A buffer over
 * SCRATCH_KEEP bytes is freed after the call, so what a thread keeps is
 * bounded. */

enum { SCRATCH_KEEP = 64 << 20 };

typedef struct scratch {
  size_t size; /* bytes */
  double *data;
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_destroy(void *p)
{
  scratch *s = p;
  free(s->data);
  free(s);
}

static void scratch_init(void)
{
  scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

/* When libdnc is unloaded (dlclose) or the process exits: the key goes,
 * so that no thread exiting later calls a destructor that is no longer
 * mapped; this thread's buffer is freed, other threads' are left. */
__attribute__((destructor)) static void scratch_fini(void)
{
  if (!scratch_key_ok)
    return;
  scratch_key_ok = 0;
  scratch *s = pthread_getspecific(scratch_key);
  if (s) {
    pthread_setspecific(scratch_key, NULL);
    scratch_destroy(s);
  }
  pthread_key_delete(scratch_key);
}

/* n doubles (not zeroed) for this call, or NULL when out of memory */
static double *scratch_get(size_t n)
{
  size_t bytes = n * sizeof(double);
  pthread_once(&scratch_once, scratch_init);
  scratch *s = scratch_key_ok ? pthread_getspecific(scratch_key) : NULL;
  if (s && s->size >= bytes)
    return s->data;
  if (bytes > SCRATCH_KEEP || !scratch_key_ok)
    return malloc(bytes);
  double *d = malloc(bytes);
  if (!d)
    return NULL;
  if (!s && !(s = calloc(1, sizeof *s))) {
    free(d);
    return NULL;
  }
  free(s->data);
  s->data = d;
  s->size = bytes;
  if (pthread_getspecific(scratch_key) != s &&
      pthread_setspecific(scratch_key, s)) {
    scratch_destroy(s);
    return NULL;
  }
  return d;
}

/* gives back what scratch_get returned */
static void scratch_put(double *d)
{
  scratch *s = scratch_key_ok ? pthread_getspecific(scratch_key) : NULL;
  if (!s || s->data != d)
    free(d);
}

/* The per-channel parameters, gamma and beta of a layer call. affine:
 * gamma and beta are used (a missing one becomes 1 or -0, which leave f
 * exactly unchanged: 1*f = f and f + -0 = f). */
static dnc_status layer_inputs(call *c, layer_state *ls, const dnc_layer *L,
                               int affine)
{
  const dnc_fn *f = c->f;
  for (int k = 0; k < f->nparams; k++) {
    if (!f->params[k].per_channel)
      continue;
    const void *given = L && L->channel ? L->channel[k] : NULL;
    c->pc[k] = channel_values(c->cs, c->g.cols, given, f->params[k].def,
                              &ls->owned[k]);
    if (!c->pc[k])
      return DNC_ERR_MEMORY;
  }
  if (affine) {
    c->gamma = channel_values(c->cs, c->g.cols, L ? L->gamma : NULL, 1.0,
                              &ls->owned[DNC_MAX_PARAMS]);
    c->beta = channel_values(c->cs, c->g.cols, L ? L->beta : NULL, -0.0,
                             &ls->owned[DNC_MAX_PARAMS + 1]);
    if (!c->gamma || !c->beta)
      return DNC_ERR_MEMORY;
  }
  return DNC_OK;
}

dnc_status dnc_layer_forward(const dnc_function *f, const dnc_tensor *x,
                             const dnc_tensor *y, const dnc_layer *L)
{
  call c = {0};
  layer_state ls = {0};
  dnc_status st;
  if ((st = check_fwd("dnc_layer_forward", f, x, y, &c)))
    return st;
  if (!x->rows || !x->cols)
    return DNC_OK; /* nothing to do: nothing sized by cols is made */
  double p[DNC_MAX_PARAMS + 1];
  param_values(f, L ? L->params : NULL, p);
  call_init(&c, f, x, p);
  c.y = y->data;
  grid_init(&c.g, x->rows, x->cols);
  pick_stream(&c, c.y, c.ldy, c.g.rows);
  st = layer_inputs(&c, &ls, L, L && (L->gamma || L->beta));
  if (st == DNC_OK)
    run_grid(&c, f, task_layer_fwd);
  layer_state_free(&ls, &c);
  return finish("dnc_layer_forward", st, x);
}

/* out[col] += sum over row blocks of partial[rb][col], in block order.
 * The sums are gathered into the first block's row, 0 + p0 + p1 + ...
 * for each column as before, walking the rows in memory order: a column
 * at a time, each of the nrb rows (64 for a large tensor, 32 KiB apart at
 * 4096 columns) was a cache line of its own, and the gathering took a
 * tenth of a bf16 layer backward's time at [8192 x 4096]
 * (docs/performance.md, round twenty-two). partial is scratch. */
static void add_channel(const call *c, double *partial, void *out)
{
  int64_t n = c->g.cols;
  for (int64_t j = 0; j < n; j++)
    partial[j] = 0.0 + partial[j]; /* as s = 0; s += p0: -0 becomes +0 */
  for (int64_t i = 1; i < c->g.nrb; i++) {
    const double *row = partial + i * n;
    for (int64_t j = 0; j < n; j++)
      partial[j] += row[j];
  }
  for (int64_t j = 0; j < n; j++) {
    if (c->cs == 8)
      ((double *)out)[j] += partial[j];
    else
      ((float *)out)[j] = (float)((double)((float *)out)[j] + partial[j]);
  }
}

dnc_status dnc_layer_backward(const dnc_function *f, const dnc_tensor *x,
                              const dnc_tensor *dy, const dnc_tensor *dx,
                              const dnc_layer *L, const dnc_layer_grad *G)
{
  call c = {0};
  layer_state ls = {0};
  dnc_status st;
  if ((st = check_bwd("dnc_layer_backward", f, x, dy, dx, &c)))
    return st;
  if (!x->rows || !x->cols)
    return DNC_OK; /* nothing to do, and every sum is 0 */
  double p[DNC_MAX_PARAMS + 1];
  param_values(f, L ? L->params : NULL, p);
  call_init(&c, f, x, p);
  c.dy = dy->data;
  c.dx = dx->data;
  grid_init(&c.g, x->rows, x->cols);
  pick_stream(&c, c.dx, c.lddx, c.g.rows);
  int affine = (L && (L->gamma || L->beta)) || (G && (G->gamma || G->beta));
  st = layer_inputs(&c, &ls, L, affine);
  int64_t nblocks = c.g.nrb * c.g.ncb;
  size_t psize = (size_t)(c.g.nrb * c.g.cols), nslots = 0;
  for (int k = 0; k < c.np; k++)
    nslots += f->params[k].per_channel;
  nslots += affine ? 2 : 0;
  double *partial = NULL;
  if (st == DNC_OK) {
    c.sums = calloc((size_t)(nblocks * c.np) + 1, sizeof *c.sums);
    if (!c.sums || (nslots && !(partial = scratch_get(nslots * psize))))
      st = DNC_ERR_MEMORY;
  }
  if (st == DNC_OK) {
    double *next = partial;
    for (int k = 0; k < c.np; k++)
      if (f->params[k].per_channel)
        c.partial[k] = next, next += psize;
    if (affine)
      c.pgamma = next, c.pbeta = next + psize;
  }
  if (st == DNC_OK) {
    run_grid(&c, f, task_layer_bwd);
    if (G && G->params)
      add_sums(&c, nblocks, G->params, 1);
    for (int k = 0; k < c.np; k++)
      if (c.partial[k] && G && G->channel && G->channel[k])
        add_channel(&c, c.partial[k], G->channel[k]);
    if (affine && G && G->gamma)
      add_channel(&c, c.pgamma, G->gamma);
    if (affine && G && G->beta)
      add_channel(&c, c.pbeta, G->beta);
  }
  if (partial)
    scratch_put(partial);
  layer_state_free(&ls, &c);
  return finish("dnc_layer_backward", st, x);
}

/* ------------------------------------------------- channel-major layers
 *
 * Channels first: x is [rows x cols] with row r in channel r % channels,
 * an N x C x HW tensor seen as [N*C x HW]. The rows of one channel, r =
 * n*C + c, form an [N x HW] tensor of row stride C*ld, so the generated
 * layer kernels run on it unchanged, with the channel's per-channel
 * values, gamma and beta broadcast along a chunk of columns (filled once
 * per task, reused for every chunk). The grid is channels x (the grid of
 * an [N x HW] tensor); each task keeps its own sums, added in grid order
 * afterwards, so results are bitwise the same for any number of threads,
 * as in the row-major form. */


typedef struct cm_call {
  call c;          /* c.g: the grid of one channel's [N x HW] tensor;
                      c.pc, c.gamma, c.beta: `channels` values */
  int64_t channels;
  int64_t per;     /* tasks per channel */
  int affine;
  int nout;        /* sums per task: np scalar, np per-channel, gamma, beta */
  double *tsum;    /* tasks x nout */
  atomic_int oom;
} cm_call;

/* n copies of src[i] (the compute type) at dst: the first 16 by hand,
 * then doubling copies */
static void cm_fill(char *dst, size_t cs, const char *src, int64_t i,
                    int64_t n)
{
  int64_t k = n < 16 ? n : 16;
  if (cs == 8) {
    double v = ((const double *)src)[i];
    for (int64_t j = 0; j < k; j++)
      ((double *)dst)[j] = v;
  } else {
    float v = ((const float *)src)[i];
    for (int64_t j = 0; j < k; j++)
      ((float *)dst)[j] = v;
  }
  for (; k < n; k *= 2)
    memcpy(dst + (size_t)k * cs, dst, (size_t)(n - k < k ? n - k : k) * cs);
}

/* cm_values' buffer: on the task's stack where it fits (a malloc and a
 * free per channel were a tenth of a narrow channel's backward) */
enum { CM_STACK = 16384 };

/* The broadcast values of channel ch for chunks of up to w columns, in
 * one allocation: per-channel parameter k at vals[k], gamma and beta at
 * vals[np] and vals[np + 1]; then, if sums, w doubles per slot for the
 * backward's per-column sums at sums[k]. NULL when out of memory. */
static char *cm_values(cm_call *m, int64_t ch, int64_t w, const void **vals,
                       double **sums, char *stack)
{
  call *c = &m->c;
  int nv = c->np + 2;
  size_t vbytes = (size_t)w * c->cs, sbytes = sums ? (size_t)w * 8 : 0;
  /* the double sums start at the first multiple of 8 after the values
   * (w * cs bytes each: odd for an odd w in f32, bf16 or f16) */
  size_t soff = ((size_t)nv * vbytes + 7) & ~(size_t)7;
  size_t need = soff + (size_t)nv * sbytes + 8;
  char *buf = need <= CM_STACK ? stack : malloc(need);
  if (!buf) {
    atomic_store(&m->oom, 1);
    return NULL;
  }
  for (int k = 0; k < nv; k++) {
    char *v = buf + (size_t)k * vbytes;
    const char *src = k < c->np ? c->pc[k] : k == c->np ? c->gamma : c->beta;
    vals[k] = src ? v : NULL;
    if (src)
      cm_fill(v, c->cs, src, ch, w);
    if (sums) {
      sums[k] = (double *)(buf + soff + (size_t)k * sbytes);
      memset(sums[k], 0, sbytes);
    }
  }
  return buf;
}

/* a[0] + ... + a[n-1] in one fixed order, whatever the thread count:
 * eight interleaved partial sums, then added pairwise. One serial sum
 * waited on each addition: for HW = 196 columns and three sums it took
 * 0.65 us a channel, most of a [1 x 96 x 14 x 14] backward. */
static double sum_fixed(const double *a, int64_t n)
{
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    s0 += a[j];
    s1 += a[j + 1];
    s2 += a[j + 2];
    s3 += a[j + 3];
    s4 += a[j + 4];
    s5 += a[j + 5];
    s6 += a[j + 6];
    s7 += a[j + 7];
  }
  for (; j < n; j++)
    s0 += a[j];
  return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}

static void task_cm_fwd(void *arg, int64_t t)
{
  cm_call *m = arg;
  call *c = &m->c;
  int64_t ch = t / m->per, r0, nr, c0, nc, i;
  block_extent(c, t % m->per, &r0, &nr, &c0, &nc, &i);
  int64_t w = nc < CM_CHUNK ? nc : CM_CHUNK;
  const void *vals[DNC_MAX_PARAMS + 2];
  _Alignas(64) char stack[CM_STACK];
  char *buf = cm_values(m, ch, w, vals, NULL, stack);
  if (!buf)
    return;
  int64_t C = m->channels, row = r0 * C + ch;
  for (int64_t j = c0; j < c0 + nc; j += w) {
    int64_t n = c0 + nc - j < w ? c0 + nc - j : w;
    c->k->layer_forward(c->x + (size_t)(row * c->ldx + j) * c->es,
                        C * c->ldx,
                        c->y + (size_t)(row * c->ldy + j) * c->es,
                        C * c->ldy, nr, n, c->p, vals,
                        m->affine ? vals[c->np] : NULL,
                        m->affine ? vals[c->np + 1] : NULL);
  }
  if (buf != stack)
    free(buf);
}

static void task_cm_bwd(void *arg, int64_t t)
{
  cm_call *m = arg;
  call *c = &m->c;
  int64_t ch = t / m->per, r0, nr, c0, nc, i;
  block_extent(c, t % m->per, &r0, &nr, &c0, &nc, &i);
  int64_t w = nc < CM_CHUNK ? nc : CM_CHUNK;
  const void *vals[DNC_MAX_PARAMS + 2];
  double *sums[DNC_MAX_PARAMS + 2];
  _Alignas(64) char stack[CM_STACK];
  char *buf = cm_values(m, ch, w, vals, sums, stack);
  if (!buf)
    return;
  double dp[DNC_MAX_PARAMS + 1] = {0};
  double *out = m->tsum + t * m->nout;
  int64_t C = m->channels, row = r0 * C + ch;
  for (int64_t j = c0; j < c0 + nc; j += w) {
    int64_t n = c0 + nc - j < w ? c0 + nc - j : w;
    c->k->layer_backward(
        c->x + (size_t)(row * c->ldx + j) * c->es, C * c->ldx,
        c->dy + (size_t)(row * c->lddy + j) * c->es, C * c->lddy,
        c->dx + (size_t)(row * c->lddx + j) * c->es, C * c->lddx, nr, n,
        c->p, vals, m->affine ? vals[c->np] : NULL,
        m->affine ? vals[c->np + 1] : NULL, dp, sums,
        m->affine ? sums[c->np] : NULL, m->affine ? sums[c->np + 1] : NULL);
    for (int k = 0; k < c->np; k++)
      if (!c->f->params[k].per_channel)
        out[k] += dp[k];
  }
  /* the per-column sums of this channel, added in a fixed order */
  for (int k = 0; k < c->np + 2; k++)
    out[c->np + k] = sum_fixed(sums[k], w);
  if (buf != stack)
    free(buf);
}

/* The checks and the state shared by both directions; x is checked by the
 * caller. */
static dnc_status cm_init(const char *name, cm_call *m, layer_state *ls,
                          const dnc_function *f, const dnc_tensor *x,
                          int64_t channels,
                          const dnc_layer *L, int affine, double *p)
{
  call *c = &m->c;
  if (channels < 1)
    return dnc_refuse(DNC_ERR_ARGUMENT, name, "channels is %lld, not at least 1",
                  (long long)channels);
  if (x->rows % channels)
    return dnc_refuse(DNC_ERR_SHAPE, name, "x's %lld rows are not a multiple of "
                  "its %lld channels", (long long)x->rows, (long long)channels);
  if (!x->rows || !x->cols)
    return DNC_OK; /* nothing to do, as dnc_layer_forward: nothing sized by
                    * channels is made (an empty view bounds no count: 2^62
                    * channels wrapped channel_values' size to a few bytes) */
  param_values(f, L ? L->params : NULL, p);
  call_init(c, f, x, p);
  m->channels = channels;
  m->affine = affine;
  c->g.cols = channels; /* layer_inputs sizes its defaults by g.cols */
  dnc_status st = layer_inputs(c, ls, L, affine);
  grid_init(&c->g, x->rows / channels, x->cols);
  m->per = c->g.nrb * c->g.ncb;
  return st;
}

dnc_status dnc_layer_forward_cm(const dnc_function *f, const dnc_tensor *x,
                                const dnc_tensor *y, int64_t channels,
                                const dnc_layer *L)
{
  cm_call m = {0};
  layer_state ls = {0};
  dnc_status st;
  if ((st = check_fwd("dnc_layer_forward_cm", f, x, y, &m.c)))
    return st;
  double p[DNC_MAX_PARAMS + 1];
  st = cm_init("dnc_layer_forward_cm", &m, &ls, f, x, channels, L,
               L && (L->gamma || L->beta), p);
  m.c.y = y->data;
  if (st == DNC_OK && x->rows && x->cols) {
    pick_stream(&m.c, m.c.y, m.c.ldy, x->rows);
    dnc_pool_run(dnc_function_module(f)->ctx->pool, channels * m.per,
                 task_cm_fwd, &m);
    if (atomic_load(&m.oom))
      st = DNC_ERR_MEMORY;
  }
  layer_state_free(&ls, &m.c);
  return finish("dnc_layer_forward_cm", st, x);
}

/* out[ch] += the sums of slot j of channel ch's tasks, in task order */
static void cm_add_channel(const cm_call *m, int j, void *out)
{
  for (int64_t ch = 0; ch < m->channels; ch++) {
    double s = 0;
    for (int64_t t = ch * m->per; t < (ch + 1) * m->per; t++)
      s += m->tsum[t * m->nout + j];
    if (m->c.cs == 8)
      ((double *)out)[ch] += s;
    else
      ((float *)out)[ch] = (float)((double)((float *)out)[ch] + s);
  }
}

dnc_status dnc_layer_backward_cm(const dnc_function *f, const dnc_tensor *x,
                                 const dnc_tensor *dy, const dnc_tensor *dx,
                                 int64_t channels, const dnc_layer *L,
                                 const dnc_layer_grad *G)
{
  cm_call m = {0};
  layer_state ls = {0};
  call *c = &m.c;
  dnc_status st;
  if ((st = check_bwd("dnc_layer_backward_cm", f, x, dy, dx, c)))
    return st;
  int affine = (L && (L->gamma || L->beta)) || (G && (G->gamma || G->beta));
  double p[DNC_MAX_PARAMS + 1];
  st = cm_init("dnc_layer_backward_cm", &m, &ls, f, x, channels, L, affine, p);
  if (st == DNC_OK && (!x->rows || !x->cols))
    return DNC_OK; /* nothing to do, nothing to add to the sums */
  c->dy = dy->data;
  c->dx = dx->data;
  if (st == DNC_OK)
    pick_stream(c, c->dx, c->lddx, x->rows);
  m.nout = 2 * c->np + 2;
  int64_t ntasks = channels * m.per;
  if (st == DNC_OK &&
      !(m.tsum = calloc((size_t)(ntasks * m.nout) + 1, sizeof(double))))
    st = DNC_ERR_MEMORY;
  if (st == DNC_OK) {
    dnc_pool_run(dnc_function_module(f)->ctx->pool, ntasks, task_cm_bwd, &m);
    if (atomic_load(&m.oom))
      st = DNC_ERR_MEMORY;
  }
  if (st == DNC_OK && G) {
    for (int k = 0; k < c->np; k++) {
      if (f->params[k].per_channel) {
        if (G->channel && G->channel[k])
          cm_add_channel(&m, c->np + k, G->channel[k]);
      } else if (G->params) {
        double s = 0;
        for (int64_t t = 0; t < ntasks; t++)
          s += m.tsum[t * m.nout + k];
        G->params[k] += s;
      }
    }
    if (affine && G->gamma)
      cm_add_channel(&m, 2 * c->np, G->gamma);
    if (affine && G->beta)
      cm_add_channel(&m, 2 * c->np + 1, G->beta);
  }
  free(m.tsum);
  layer_state_free(&ls, c);
  return finish("dnc_layer_backward_cm", st, x);
}
