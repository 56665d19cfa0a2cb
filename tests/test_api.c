/*
 * test_api.c - the public C API (runtime/dnc.h): compiling strings and
 * files, structured diagnostics, enumerating functions and parameters,
 * evaluating through the reference interpreter, and argument checking.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dnc.h"
#include "tap.h"

static void test_version(void)
{
  is_str(dnc_version(), DNC_VERSION_STRING, "dnc_version() matches the header");
  is_int(dnc_abi_version(), DNC_ABI_VERSION, "dnc_abi_version() matches the header");
  is_str(dnc_status_string(DNC_ERR_ARGUMENT), "invalid argument",
         "status strings describe the status");
}

static void test_compile_ok(void)
{
  dnc_context *ctx = dnc_context_new();
  const char *src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
                    "fn derf(x; alpha = 0.5, s[] = 0.25) = erf(alpha * x + s)\n";
  dnc_module *m = NULL;
  is_int(dnc_compile_string(ctx, "norms.dn", src, strlen(src), &m), DNC_OK,
         "a valid source compiles");
  is_int(dnc_module_function_count(m), 2, "both functions are listed");
  is_int((long long)dnc_module_diagnostic_count(m), 0, "no diagnostics");
  const dnc_function *dyt = dnc_module_find(m, "dyt");
  const dnc_function *derf = dnc_module_function(m, 1);
  ok(dyt == dnc_module_function(m, 0), "find and index agree");
  is_str(dnc_function_name(derf), "derf", "functions keep source order");
  ok(dnc_module_find(m, "nope") == NULL, "an unknown name is not found");
  ok(dnc_module_function(m, 2) == NULL && dnc_module_function(m, -1) == NULL,
     "an index out of range gives NULL");
  is_int(dnc_function_param_count(derf), 2, "derf has two parameters");
  dnc_param_info pi;
  is_int(dnc_function_param(derf, 1, &pi), DNC_OK, "parameter 1 is readable");
  is_str(pi.name, "s", "its name");
  is_double(pi.default_value, 0.25, 0, "its default");
  is_int(pi.kind, DNC_PARAM_PER_CHANNEL, "its kind is per-channel");
  dnc_function_param(derf, 0, &pi);
  is_int(pi.kind, DNC_PARAM_SCALAR, "alpha is a scalar");
  is_int(dnc_function_param(derf, 2, &pi), DNC_ERR_NOT_FOUND,
         "parameter 2 does not exist");
  is_int(dnc_function_param_index(derf, "s"), 1, "parameter index by name");
  is_int(dnc_function_param_index(derf, "t"), -1, "no parameter t");

  double x[4] = {0, 1, -1, 3}, y[4];
  is_int(dnc_function_eval(dyt, x, y, 4, NULL), DNC_OK, "eval with defaults");
  is_double(y[0], 0, 0, "dyt(0) = 0");
  is_double(y[1], tanh(0.5), 1e-16, "dyt(1) = tanh(0.5)");
  is_double(y[2], -tanh(0.5), 1e-16, "dyt(-1) = -tanh(0.5)");
  double p[2] = {2.0, -1.0};
  dnc_function_eval(derf, x, y, 4, p);
  is_double(y[3], erf(2.0 * 3 - 1.0), 1e-16, "eval with given parameters");
  dnc_function_eval(dyt, x, x, 4, NULL);
  is_double(x[1], tanh(0.5), 1e-16, "eval in place");
  dnc_module_free(m);
  dnc_context_free(ctx);
}

static void test_compile_errors(void)
{
  dnc_context *ctx = dnc_context_new();
  const char *src = "fn f(x; alpha = 1) =\n  tanh(alpah * x)\n";
  dnc_module *m = NULL;
  /* an earlier call's error, which dnc_last_error kept after a source
   * error (a helper's audit) */
  dnc_forward(NULL, NULL, NULL, NULL);
  is_int(dnc_compile_string(ctx, "bad.dn", src, strlen(src), &m),
         DNC_ERR_SOURCE, "a source with errors reports DNC_ERR_SOURCE");
  is_str(dnc_last_error(), "bad.dn:2:8: unknown name 'alpah'",
         "dnc_last_error: the first error, not an earlier call's");
  ok(m != NULL, "and still returns a module carrying the diagnostics");
  is_int(dnc_module_function_count(m), 0, "a module with errors has no functions");
  is_int((long long)dnc_module_diagnostic_count(m), 2, "an error and a note");
  const dnc_diagnostic *d = dnc_module_diagnostic(m, 0);
  ok(d && d->severity == DNC_DIAG_ERROR, "the first is an error");
  is_str(d ? d->file : NULL, "bad.dn", "with the file name given");
  is_int(d ? d->line : 0, 2, "its line");
  is_int(d ? d->column : 0, 8, "its column");
  is_str(d ? d->message : NULL, "unknown name 'alpah'", "its message");
  d = dnc_module_diagnostic(m, 1);
  ok(d && d->severity == DNC_DIAG_NOTE, "the second is a note");
  is_str(d ? d->message : NULL, "did you mean 'alpha'?", "suggesting the name");
  ok(dnc_module_diagnostic(m, 2) == NULL, "no third diagnostic");
  const char *want =
      "bad.dn:2:8: error: unknown name 'alpah'\n"
      "    2 |   tanh(alpah * x)\n"
      "      |        ^~~~~\n"
      "bad.dn:2:8: note: did you mean 'alpha'?\n"
      "    2 |   tanh(alpah * x)\n"
      "      |        ^~~~~\n";
  char buf[1024];
  size_t n = dnc_module_format_diagnostics(m, buf, sizeof buf);
  is_str(buf, want, "diagnostics format as dnc prints them");
  is_int((long long)n, (long long)strlen(want), "the formatted length");
  char small[8];
  n = dnc_module_format_diagnostics(m, small, sizeof small);
  ok(n == strlen(want) && strlen(small) == 7,
     "a short buffer gets a truncated, terminated text and the full length");
  dnc_module_free(m);

  m = NULL;
  is_int(dnc_compile_file(ctx, "/nonexistent/x.dn", &m), DNC_ERR_SOURCE,
         "a missing file is a source error");
  d = dnc_module_diagnostic(m, 0);
  ok(d && strstr(d->message, "cannot open '/nonexistent/x.dn'") != NULL,
     "whose message names the file");
  dnc_module_free(m);

  m = NULL;
  is_int(dnc_compile_string(ctx, NULL, "", 0, &m), DNC_ERR_SOURCE,
         "an empty source is an error");
  d = dnc_module_diagnostic(m, 0);
  ok(d && strstr(d->message, "no functions are defined") != NULL,
     "no functions are defined");
  is_str(d ? d->file : NULL, "<string>", "an unnamed source is <string>");
  /* a diagnostic about the whole file: named as the formatted text names
   * it ("<string>: error: ..."), with no line and column (it said
   * "<string>:0:0: ...") */
  is_str(dnc_last_error(), "<string>: no functions are defined (a definition "
         "reads 'fn name(x; p = 1) = ...')",
         "  dnc_last_error() names the whole file without :0:0");
  dnc_module_free(m);
  dnc_context_free(ctx);
}

static void test_bad_arguments(void)
{
  dnc_context *ctx = dnc_context_new();
  dnc_module *m = (dnc_module *)1;
  is_int(dnc_compile_string(NULL, "a", "fn f(x) = x", 11, &m), DNC_ERR_ARGUMENT,
         "a NULL context is rejected");
  ok(m == NULL, "and *out is cleared");
  is_str(dnc_last_error(), "dnc_compile_string: the context is NULL",
         "  saying so, named after the call");
  is_int(dnc_context_threads(NULL), 0, "a NULL context has no threads");
  is_str(dnc_last_error(), "dnc_context_threads: the context is NULL",
         "  named after the call");
  is_int(dnc_compile_string(ctx, "a", NULL, 5, &m), DNC_ERR_ARGUMENT,
         "a NULL source with a length is rejected");
  is_str(dnc_last_error(), "dnc_compile_string: source is NULL and len is 5",
         "  saying so");
  is_int(dnc_compile_string(ctx, "a", "x", 1, NULL), DNC_ERR_ARGUMENT,
         "a NULL out pointer is rejected");
  is_str(dnc_last_error(), "dnc_compile_string: out is NULL", "  saying so");
  is_int(dnc_compile_file(ctx, NULL, &m), DNC_ERR_ARGUMENT, "a NULL path is rejected");
  is_str(dnc_last_error(), "dnc_compile_file: path is NULL", "  saying so");
  is_int(dnc_module_load(ctx, "", &m), DNC_ERR_ARGUMENT, "an empty library path is rejected");
  is_str(dnc_last_error(), "dnc_module_load: path is empty", "  saying so");
  is_int(dnc_context_create(NULL, NULL), DNC_ERR_ARGUMENT, "a context needs out");
  is_str(dnc_last_error(), "dnc_context_create: out is NULL", "  saying so");
  /* each option out of range is named with its value (one message for
   * opt_level and threads said neither which nor what) */
  static const struct {
    int field, value;
    const char *msg;
  } bad_opts[] = {
      {0, 4, "dnc_context_create: opt_level is 4, not 0..3"},
      {1, -1, "dnc_context_create: threads is -1, not 0 (the default) to 1024"},
      {2, 16, "dnc_context_create: math_bits is 16, not 0, 8, 11 or 24"},
      {3, 2, "dnc_context_create: cache is 2, not 0 (as $DNC_CACHE says), 1 "
             "(on) or -1 (off)"},
      {4, -2, "dnc_context_create: stream_bytes is -2, not -1 (never), 0 (as "
              "$DNC_STREAM_BYTES says) or a size in bytes"},
  };
  /* the variables' refusals are named after the call too, as
   * $DNC_CACHE_MAX's was (these two were not) */
  static const struct {
    const char *var, *value, *msg;
  } bad_env[] = {
      {"DNC_STREAM_BYTES", "abc", "dnc_context_create: $DNC_STREAM_BYTES is "
       "'abc': it must be -1 (never), 0 (the default) or a size in bytes "
       "(with K, M, G or T for 2^10 to 2^40: 64M)"},
      {"DNC_SPIN_US", "100001", "dnc_context_create: $DNC_SPIN_US is "
       "'100001': it must be an integer from 0 (no spinning) to 100000 "
       "microseconds"},
  };
  for (size_t i = 0; i < sizeof bad_env / sizeof *bad_env; i++) {
    setenv(bad_env[i].var, bad_env[i].value, 1);
    dnc_context *c = (dnc_context *)1;
    is_int(dnc_context_create(NULL, &c), DNC_ERR_ARGUMENT, "$%s=%s is refused",
           bad_env[i].var, bad_env[i].value);
    is_str(dnc_last_error(), bad_env[i].msg, "  named after the call");
    ok(c == NULL, "  and *out is NULL");
    unsetenv(bad_env[i].var);
  }
  for (size_t i = 0; i < sizeof bad_opts / sizeof *bad_opts; i++) {
    dnc_options o;
    dnc_options_init(&o);
    int v = bad_opts[i].value;
    switch (bad_opts[i].field) {
    case 0: o.opt_level = v; break;
    case 1: o.threads = v; break;
    case 2: o.math_bits = v; break;
    case 3: o.cache = v; break;
    default: o.stream_bytes = v; break;
    }
    dnc_context *c = (dnc_context *)1;
    is_int(dnc_context_create(&o, &c), DNC_ERR_ARGUMENT, "a bad option: %s",
           bad_opts[i].msg);
    is_str(dnc_last_error(), bad_opts[i].msg, "  saying which and why");
    ok(c == NULL, "  and *out is NULL");
  }
  is_int(dnc_function_eval(NULL, NULL, NULL, 0, NULL), DNC_ERR_ARGUMENT,
         "eval of a NULL function is rejected");
  is_str(dnc_last_error(), "dnc_function_eval: f is NULL", "  saying so");
  dnc_compile_string(ctx, "a", "fn f(x) = x", 11, &m);
  const dnc_function *f = dnc_module_function(m, 0);
  double y;
  is_int(dnc_function_eval(f, NULL, &y, 1, NULL), DNC_ERR_ARGUMENT,
         "eval with a NULL x is rejected");
  is_str(dnc_last_error(), "dnc_function_eval: x is NULL and n is not 0",
         "  saying so");
  is_int(dnc_function_eval(f, NULL, NULL, 0, NULL), DNC_OK,
         "eval of zero elements needs no arrays");
  {
    /* y written before the next x is read: a shifted y gave DNC_OK and
     * {1, 3, 7, 15} for a x + b, each input overwritten first */
    dnc_module *m2 = NULL;
    dnc_compile_string(ctx, "b", "fn g(x; a = 2, b = 1) = a * x + b", 33, &m2);
    const dnc_function *g = dnc_module_function(m2, 0);
    double v[6] = {1, 2, 3, 4, 2, 1};
    is_int(dnc_function_eval(g, v, v + 1, 3, NULL), DNC_ERR_ARGUMENT,
           "eval into a shifted copy of x is rejected");
    is_str(dnc_last_error(), "dnc_function_eval: y overlaps x without being the same array",
           "  saying so");
    is_int(dnc_function_eval(g, v + 1, v, 3, NULL), DNC_ERR_ARGUMENT,
           "  and shifted the other way");
    ok(v[0] == 1 && v[1] == 2 && v[2] == 3 && v[3] == 4, "  nothing written");
    is_int(dnc_function_eval(g, v, v + 3, 2, v + 4), DNC_ERR_ARGUMENT,
           "eval whose y holds params is rejected");
    is_str(dnc_last_error(), "dnc_function_eval: y overlaps params", "  saying so");
    is_int(dnc_function_eval(g, v, v + 2, 2, v + 4), DNC_OK,
           "adjacent x, y and params are fine");
    ok(v[2] == 3 && v[3] == 5, "  with the right values (%g, %g)", v[2], v[3]);
    is_int(dnc_function_eval(g, v, v, 2, v + 4), DNC_OK, "y = x is fine");
    ok(v[0] == 3 && v[1] == 5, "  in place (%g, %g)", v[0], v[1]);
    dnc_module_free(m2);
  }
  is_int(dnc_function_param(f, 0, NULL), DNC_ERR_ARGUMENT, "param info needs out");
  is_str(dnc_last_error(), "dnc_function_param: out is NULL", "  saying so");
  dnc_param_info pi;
  is_int(dnc_function_param(f, 3, &pi), DNC_ERR_NOT_FOUND, "no parameter 3");
  is_str(dnc_last_error(), "dnc_function_param: f has 0 parameters; there is "
         "no index 3", "  saying so");
  is_int(dnc_function_fit(f, NULL, &y, 1, NULL, NULL, NULL, NULL), DNC_ERR_ARGUMENT,
         "a fit needs points");
  is_str(dnc_last_error(), "dnc_function_fit: x is NULL", "  saying so");
  ok(dnc_module_find(NULL, "f") == NULL && dnc_module_function_count(NULL) == 0 &&
         dnc_module_diagnostic_count(NULL) == 0 && dnc_function_name(NULL) == NULL,
     "queries on NULL return empty answers");
  dnc_module_free(m);
  dnc_module_free(NULL);
  dnc_context_free(ctx);
  dnc_context_free(NULL);
}

/* dnc_function_source and dnc_function_diff: the text of dnc print and
 * dnc diff, snprintf-style, and their refusals. */
static void test_text(void)
{
  dnc_context *ctx = dnc_context_new();
  dnc_module *m;
  const char *src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n"
                    "fn lin(x; a = 2, b[] = 1) = a * x + b\n";
  dnc_compile_string(ctx, "t.dn", src, strlen(src), &m);
  const dnc_function *f = dnc_module_find(m, "dyt");
  const dnc_function *g = dnc_module_find(m, "lin");
  char buf[512];
  size_t n = dnc_function_source(f, buf, sizeof buf);
  is_str(buf, "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n", "source of dyt");
  ok(n == strlen(buf), "its length is returned");
  char small[8];
  ok(dnc_function_source(f, small, sizeof small) == n && strlen(small) == 7,
     "a short buffer gets a truncated, terminated prefix");
  size_t len = 0;
  is_int(dnc_function_diff(g, "x", 1, DNC_FORMAT_DSL, NULL, 0, &len), DNC_OK,
         "diff with n = 0 gives the length");
  is_int(dnc_function_diff(g, "x", 1, DNC_FORMAT_DSL, buf, sizeof buf, NULL),
         DNC_OK, "diff into a buffer");
  is_str(buf, "fn lin__dx(x; a = 2, b[] = 1) = a\n", "d lin / dx");
  ok(len == strlen(buf), "the length matches the text");
  dnc_function_diff(g, "all", 2, DNC_FORMAT_DSL, buf, sizeof buf, NULL);
  is_str(buf, "fn lin__dx2(x; a = 2, b[] = 1) = 0\n"
              "fn lin__dx_da(x; a = 2, b[] = 1) = 1\n"
              "fn lin__dx_db(x; a = 2, b[] = 1) = 0\n"
              "fn lin__da2(x; a = 2, b[] = 1) = 0\n"
              "fn lin__da_db(x; a = 2, b[] = 1) = 0\n"
              "fn lin__db2(x; a = 2, b[] = 1) = 0\n",
         "every second derivative, mixed ones once");
  static char big[16384];
  dnc_function_diff(g, "b,x", 1, DNC_FORMAT_C, big, sizeof big, &len);
  ok(len < sizeof big && strstr(big, "static inline") &&
         strstr(big, "double lin__db_dx(double x, double a, double b)"),
     "a mixed derivative in C, after the prelude");
  dnc_function_diff(f, "x", 1, DNC_FORMAT_TORCH, big, sizeof big, &len);
  ok(len < sizeof big && !strncmp(big, "# generated by dnc diff --format torch\n"
                                       "import torch\n", 52) &&
         strstr(big, "\ndef dyt(x, alpha):\n    return torch.tanh(") &&
         strstr(big, "\ndef dyt__dx(x, alpha):\n") &&
         strstr(big, "def dyt(") < strstr(big, "def dyt__dx("),
     "PyTorch: the prelude, f, then its derivative");
  dnc_function_diff(f, "alpha", 1, DNC_FORMAT_LATEX, buf, sizeof buf, NULL);
  ok(strstr(buf, "\\frac{\\partial \\operatorname{dyt}}{\\partial \\alpha}") != NULL,
     "LaTeX");
  is_int(dnc_function_diff(f, "beta", 1, DNC_FORMAT_DSL, buf, sizeof buf, NULL),
         DNC_ERR_NOT_FOUND, "an unknown variable");
  is_str(dnc_last_error(), "dnc_function_diff: 'dyt' has no variable 'beta'",
         "and why, naming the call");
  is_int(dnc_function_diff(f, "x", 0, DNC_FORMAT_DSL, buf, sizeof buf, NULL),
         DNC_ERR_ARGUMENT, "order 0");
  is_int(dnc_function_diff(f, "x", 17, DNC_FORMAT_DSL, buf, sizeof buf, NULL),
         DNC_ERR_ARGUMENT, "order 17");
  is_int(dnc_function_diff(f, "x,alpha", 2, DNC_FORMAT_DSL, buf, sizeof buf,
                           NULL), DNC_ERR_ARGUMENT, "a list with an order");
  is_int(dnc_function_diff(f, ",", 1, DNC_FORMAT_DSL, buf, sizeof buf, NULL),
         DNC_ERR_ARGUMENT, "no variable at all");
  static const char *const empty[] = {"x,", ",x", "x,,alpha"};
  for (int i = 0; i < 3; i++) {
    is_int(dnc_function_diff(f, empty[i], 1, DNC_FORMAT_DSL, buf, sizeof buf,
                             NULL),
           DNC_ERR_ARGUMENT, "a list with an empty name, '%s'", empty[i]);
    char want[120];
    snprintf(want, sizeof want,
             "dnc_function_diff: the list of variables '%s' has an empty name",
             empty[i]);
    is_str(dnc_last_error(), want, "... and why");
  }
  is_int(dnc_function_diff(f, "x", 1, (dnc_format)(DNC_FORMAT_TORCH + 1), buf,
                           sizeof buf, NULL),
         DNC_ERR_ARGUMENT, "an unknown format");
  is_int(dnc_function_diff(NULL, "x", 1, DNC_FORMAT_DSL, buf, sizeof buf, NULL),
         DNC_ERR_ARGUMENT, "a NULL function");
  ok(dnc_function_source(NULL, buf, sizeof buf) == 0, "source of NULL is empty");
  /* the derivative text compiles again, to the same values as the
     interpreter's finite differences */
  dnc_function_diff(f, "x", 1, DNC_FORMAT_DSL, buf, sizeof buf, NULL);
  dnc_module *d;
  is_int(dnc_compile_string(ctx, "d.dn", buf, strlen(buf), &d), DNC_OK,
         "the derivative's source compiles");
  double x = 0.7, y, yp, ym, h = 1e-6, xp = x + h, xm = x - h;
  dnc_function_eval(dnc_module_function(d, 0), &x, &y, 1, NULL);
  dnc_function_eval(f, &xp, &yp, 1, NULL);
  dnc_function_eval(f, &xm, &ym, 1, NULL);
  is_double(y, (yp - ym) / (2 * h), 1e-8, "and is the derivative");
  dnc_module_free(d);
  dnc_module_free(m);
  dnc_context_free(ctx);
}

/* issue 20: a source whose calls unfold to a huge tree but whose DAG is
 * small compiles at once (memoized inlining); sizes past the limits are
 * refused, located, before the work. */
static char *calls_twice(int n, const char *g0)
{
  size_t cap = 200 + (size_t)n * 100;
  char *s = malloc(cap), *p = s;
  p += snprintf(p, cap, "fn g0(x; a = 1) = %s\n", g0);
  for (int i = 1; i <= n; i++)
    p += snprintf(p, cap - (size_t)(p - s), "fn g%d(x; a = 1) = g%d(x; a = a) "
                  "* g%d(x; a = a + 1)\n", i, i - 1, i - 1);
  return s;
}

static void test_limits(void)
{
  dnc_context *ctx = dnc_context_new();
  char *src = calls_twice(30, "tanh(a * x)");
  dnc_module *m = NULL;
  is_int(dnc_compile_string(ctx, "c.dn", src, strlen(src), &m), DNC_OK,
         "30 fns each calling the previous twice: 2^30 calls, a small DAG");
  const dnc_function *g15 = dnc_module_find(m, "g15");
  char buf[64];
  is_int(dnc_function_source(g15, buf, sizeof buf) > 0, 1, "g15 is there");
  double x = 0.5, y = 0;
  dnc_function_eval(g15, &x, &y, 1, NULL);
  /* 2^15 leaves tanh(a x), a = 1 + k for k of the 15 calls adding 1 */
  double want = 1, binom = 1;
  for (int k = 0; k <= 15; k++) {
    want *= pow(tanh((1 + k) * 0.5), binom);
    binom = binom * (15 - k) / (k + 1);
  }
  is_double(y, want, 1e-12 * want, "g15(0.5) = prod_k tanh((1+k)/2)^C(15,k)");
  dnc_module_free(m);
  free(src);

  /* sums of distinct calls: over the budget from w15 */
  const char *wide =
      "fn w0(x) = sin(x)\n"
      "fn w1(x) = w0(x + 1) + w0(x + 2)\nfn w2(x) = w1(x + 1) + w1(x + 2)\n"
      "fn w3(x) = w2(x + 1) + w2(x + 2)\nfn w4(x) = w3(x + 1) + w3(x + 2)\n"
      "fn w5(x) = w4(x + 1) + w4(x + 2)\nfn w6(x) = w5(x + 1) + w5(x + 2)\n"
      "fn w7(x) = w6(x + 1) + w6(x + 2)\nfn w8(x) = w7(x + 1) + w7(x + 2)\n"
      "fn w9(x) = w8(x + 1) + w8(x + 2)\nfn w10(x) = w9(x + 1) + w9(x + 2)\n"
      "fn w11(x) = w10(x + 1) + w10(x + 2)\nfn w12(x) = w11(x + 1) + w11(x + 2)\n"
      "fn w13(x) = w12(x + 1) + w12(x + 2)\nfn w14(x) = w13(x + 1) + w13(x + 2)\n"
      "fn w15(x) = w14(x + 1) + w14(x + 2)\nfn w16(x) = w15(x + 1) + w15(x + 2)\n"
      "fn w17(x) = w16(x + 1) + w16(x + 2)\n";
  m = NULL;
  is_int(dnc_compile_string(ctx, "w.dn", wide, strlen(wide), &m),
         DNC_ERR_SOURCE, "a fn of more than 100,000 nodes: a source error");
  const dnc_diagnostic *d = dnc_module_diagnostic(m, 0);
  /* w15 reaches about 131,000 nodes (2^15 sines, 2^15 - 1 sums, 2^16
   * argument sums), though it makes fewer new ones, sharing w14's: its
   * size is what it reaches (issue 20: the printed w15 did not build) */
  ok(d && d->line == 16 && strstr(d->message, "'w15' is too large") &&
         strstr(d->message, "more than 100000 nodes"),
     "located at its definition: %s", d ? d->message : "(none)");
  ok(dnc_module_find(m, "w13") == NULL, "a module with errors has no fns");
  dnc_module_free(m);

  /* w13 alone: 3 * 2^13 nodes, within the fn budget, past the kernel's */
  char *w13 = strdup(wide);
  *strstr(w13, "fn w14") = 0;
  m = NULL;
  is_int(dnc_compile_string(ctx, "w.dn", w13, strlen(w13), &m), DNC_OK,
         "w13 (24,000 nodes) compiles to a DAG");
  dnc_kernels k;
  is_int(dnc_function_kernels(dnc_module_find(m, "w13"), DNC_F32, &k),
         DNC_ERR_COMPILE, "but its kernel is refused before LLVM runs");
  ok(strstr(dnc_last_error(), "'w13' is too large to compile") != NULL,
     "saying so: %s", dnc_last_error());
  dnc_module_free(m);
  free(w13);

  const char *osc = "fn f(x; a = 1, b = 2) = sin(a*cos(b*sin(a*cos(b*x))))";
  m = NULL;
  dnc_compile_string(ctx, "d.dn", osc, strlen(osc), &m);
  size_t len = 0;
  is_int(dnc_function_diff(dnc_module_find(m, "f"), "all", 16, DNC_FORMAT_DSL,
                           NULL, 0, &len),
         DNC_ERR_ARGUMENT, "16th derivatives past 100,000 nodes: refused");
  ok(strstr(dnc_last_error(), "a derivative of 'f' is too large") != NULL,
     "saying so: %s", dnc_last_error());
  is_int(dnc_function_diff(dnc_module_find(m, "f"), "x", 4, DNC_FORMAT_DSL,
                           NULL, 0, &len),
         DNC_OK, "a small one afterwards still works");
  dnc_module_free(m);
  dnc_context_free(ctx);
}

/* dnc_function_fit: the least-squares solver of `dnc fit` through the
 * public API, on points made by the function itself; held parameters;
 * how a fit that cannot be done is reported; argument checks. */
static void test_fit(void)
{
  dnc_context *ctx = dnc_context_new();
  const char *src = "fn derf(x; alpha = 0.5, shift = 0) = erf(alpha * x + shift)\n"
                    "fn lg(x; a = 1) = log(a * x)\n";
  dnc_module *m = NULL;
  dnc_compile_string(ctx, "fit.dn", src, strlen(src), &m);
  const dnc_function *f = dnc_module_find(m, "derf");
  enum { N = 41 };
  double x[N], y[N], truth[2] = {1.7, -0.3};
  for (int i = 0; i < N; i++)
    x[i] = -4 + 0.2 * i;
  dnc_function_eval(f, x, y, N, truth);
  dnc_fit_result r;
  is_int(dnc_function_fit(f, x, y, N, NULL, NULL, NULL, &r), DNC_OK,
         "a fit from the defaults runs");
  is_int(r.status, DNC_FIT_OK, "and converges (%s)", r.why);
  is_double(r.value[0], 1.7, 1e-9, "alpha recovered");
  is_double(r.value[1], -0.3, 1e-9, "shift recovered");
  ok(r.rms < 1e-12, "residual rms %g", r.rms);
  is_double(r.value[2], 1, 0, "no gain: gamma stays 1");
  dnc_fit_result_free(&r);

  double start[2] = {1, 0.5};
  int fixed[2] = {0, 1};
  dnc_fit_options o;
  dnc_fit_options_init(&o);
  is_int(o.max_iter, 200, "dnc_fit_options_init: the defaults");
  is_int(dnc_function_fit(f, x, y, N, start, fixed, &o, &r), DNC_OK,
         "a fit with shift held runs");
  is_double(r.value[1], 0.5, 0, "the held shift keeps its start");
  ok(isnan(r.se[1]) && r.se[0] > 0, "standard error for alpha only");
  ok(r.rms > 1e-3, "and the residual is not 0 (the data has shift -0.3)");
  dnc_fit_result_free(&r);

  o.max_iter = 1;
  dnc_function_fit(f, x, y, N, start, NULL, &o, &r);
  is_int(r.status, DNC_FIT_MAXITER, "max_iter 1: not converged, said (%s)",
         r.why);
  dnc_fit_result_free(&r);

  const dnc_function *lg = dnc_module_find(m, "lg");
  is_int(dnc_function_fit(lg, x, y, N, NULL, NULL, NULL, &r), DNC_OK,
         "log at negative x: the call succeeds");
  is_int(r.status, DNC_FIT_NONFINITE, "with status NONFINITE (%s)", r.why);
  is_int(r.bad_point, 0, "at the first point");
  dnc_fit_result_free(&r);
  is_int(dnc_function_fit(f, x, y, 1, NULL, NULL, NULL, &r), DNC_OK,
         "one point for two parameters runs");
  is_int(r.status, DNC_FIT_TOOFEW, "status TOOFEW (%s)", r.why);
  dnc_fit_result_free(&r);
  dnc_fit_result_free(NULL);
  ok(1, "dnc_fit_result_free(NULL) does nothing");

  is_int(dnc_function_fit(NULL, x, y, N, NULL, NULL, NULL, &r),
         DNC_ERR_ARGUMENT, "no function: DNC_ERR_ARGUMENT");
  is_int(dnc_function_fit(f, NULL, y, N, NULL, NULL, NULL, &r),
         DNC_ERR_ARGUMENT, "no x: DNC_ERR_ARGUMENT");
  is_int(dnc_function_fit(f, x, y, N, NULL, NULL, NULL, NULL),
         DNC_ERR_ARGUMENT, "no result: DNC_ERR_ARGUMENT");
  is_int(dnc_function_fit(f, x, y, (size_t)1 << 40, NULL, NULL, NULL, &r),
         DNC_ERR_ARGUMENT, "more than INT_MAX points: DNC_ERR_ARGUMENT");
  o.max_iter = -1;
  is_int(dnc_function_fit(f, x, y, N, NULL, NULL, &o, &r), DNC_ERR_ARGUMENT,
         "max_iter -1: DNC_ERR_ARGUMENT");
  is_str(dnc_last_error(), "dnc_function_fit: max_iter is -1, not 0 or more",
         "  naming it and its value");
  dnc_fit_options_init(&o);
  o.xtol = NAN;
  /* a refused fit leaves r safe to free: it held whatever the caller's
   * stack had, and freeing it after a refusal freed garbage */
  memset(&r, 0x5a, sizeof r);
  is_int(dnc_function_fit(f, x, y, N, NULL, NULL, &o, &r), DNC_ERR_ARGUMENT,
         "a NaN tolerance: DNC_ERR_ARGUMENT");
  is_str(dnc_last_error(), "dnc_function_fit: xtol is nan, not 0 or more",
         "  naming it and its value");
  ok(r.value == NULL && r.se == NULL, "  and r is cleared");
  dnc_fit_result_free(&r);
  dnc_module_free(m);
  dnc_context_free(ctx);
}

/* A freed context is refused, not used (issue 20): while a module keeps
 * it alive, and once released (its memory is kept in a quarantine, so
 * this test reads no freed memory, under ASan too). */
static void test_freed_context(void)
{
  dnc_context *ctx = dnc_context_new();
  dnc_module *m = NULL, *m2 = NULL;
  const char *src = "fn f(x) = x";
  ok(ctx && dnc_compile_string(ctx, "a.dn", src, strlen(src), &m) == DNC_OK,
     "freed context: a module compiled");
  dnc_context_free(ctx);
  is_int(dnc_compile_string(ctx, "b.dn", src, strlen(src), &m2),
         DNC_ERR_ARGUMENT, "a freed context (its module alive) compiles nothing");
  ok(m2 == NULL, "... no module");
  is_str(dnc_last_error(), "dnc_compile_string: this context was freed "
         "(dnc_context_free) and cannot be used", "... saying why, named after the call");
  is_int(dnc_compile_file(ctx, "none.dn", &m2), DNC_ERR_ARGUMENT,
         "... nor a file");
  ok(!strncmp(dnc_last_error(), "dnc_compile_file: ", 18), "... named: %s",
     dnc_last_error());
  is_int(dnc_module_load(ctx, "none.so", &m2), DNC_ERR_ARGUMENT,
         "... nor loads a library");
  ok(dnc_context_threads(ctx) == 0 && dnc_context_cpu(ctx) == NULL &&
         dnc_context_features(ctx) == NULL && dnc_context_vector_bits(ctx) == 0,
     "... and answers no query");
  dnc_context_free(ctx); /* a second free: refused, not a double release */
  ok(strstr(dnc_last_error(), "context was freed") != NULL,
     "a second dnc_context_free is refused");
  double x = 2, y = 0;
  ok(dnc_function_eval(dnc_module_function(m, 0), &x, &y, 1, NULL) == DNC_OK &&
         y == 2, "the module still works");
  dnc_module_free(m); /* the context is released now */
  is_int(dnc_compile_string(ctx, "c.dn", src, strlen(src), &m2),
         DNC_ERR_ARGUMENT, "a released context compiles nothing");
  dnc_context_free(ctx);
  ok(strstr(dnc_last_error(), "context was freed") != NULL,
     "... and freeing it again is refused");
}

/* libdnc.so unloaded while a thread that ran a layer backward lives on:
 * that thread's partial-sum buffer (runtime/kernels.c) must not leave a
 * destructor behind in unmapped code for its exit to call. */
typedef struct dl_run {
  void *h;
  int ok;
  pthread_mutex_t m;
  pthread_cond_t c;
  int stage; /* 1: the backward ran; 2: the library is closed */
} dl_run;

static void *dl_thread(void *arg)
{
  dl_run *r = arg;
  dnc_context *(*ctx_new)(void) = (dnc_context * (*)(void)) dlsym(r->h, "dnc_context_new");
  dnc_status (*comp)(dnc_context *, const char *, const char *, size_t, dnc_module **) =
      (dnc_status(*)(dnc_context *, const char *, const char *, size_t, dnc_module **))
          dlsym(r->h, "dnc_compile_string");
  const dnc_function *(*find)(const dnc_module *, const char *) =
      (const dnc_function *(*)(const dnc_module *, const char *))dlsym(r->h, "dnc_module_find");
  dnc_status (*bwd)(const dnc_function *, const dnc_tensor *, const dnc_tensor *,
                    const dnc_tensor *, const dnc_layer *, const dnc_layer_grad *) =
      (dnc_status(*)(const dnc_function *, const dnc_tensor *, const dnc_tensor *,
                     const dnc_tensor *, const dnc_layer *, const dnc_layer_grad *))
          dlsym(r->h, "dnc_layer_backward");
  void (*mod_free)(dnc_module *) = (void (*)(dnc_module *))dlsym(r->h, "dnc_module_free");
  void (*ctx_free)(dnc_context *) = (void (*)(dnc_context *))dlsym(r->h, "dnc_context_free");
  if (ctx_new && comp && find && bwd && mod_free && ctx_free) {
    dnc_context *ctx = ctx_new();
    const char *src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";
    dnc_module *m = NULL;
    if (ctx && comp(ctx, "d.dn", src, strlen(src), &m) == DNC_OK) {
      enum { R = 300, C = 300 };
      static float x[R * C], dy[R * C], dx[R * C], g[C], b[C], dg[C], db[C];
      for (int i = 0; i < R * C; i++)
        x[i] = (float)(i % 17) - 8, dy[i] = 1;
      for (int c = 0; c < C; c++)
        g[c] = 1, b[c] = 0;
      dnc_tensor tx = {x, DNC_F32, R, C, 0}, tdy = {dy, DNC_F32, R, C, 0},
                 tdx = {dx, DNC_F32, R, C, 0};
      dnc_layer L = {NULL, NULL, g, b};
      dnc_layer_grad G = {NULL, NULL, dg, db};
      r->ok = bwd(find(m, "dyt"), &tx, &tdy, &tdx, &L, &G) == DNC_OK && db[0] == R;
    }
    mod_free(m);
    ctx_free(ctx);
  }
  pthread_mutex_lock(&r->m);
  r->stage = 1;
  pthread_cond_broadcast(&r->c);
  while (r->stage < 2)
    pthread_cond_wait(&r->c, &r->m);
  pthread_mutex_unlock(&r->m);
  return NULL; /* the thread's exit: no destructor of the closed library */
}

static void test_unload(void)
{
#ifdef __SANITIZE_ADDRESS__
  /* what an unloaded library allocated once (and the other thread's
   * buffer, left by design) is a leak to LeakSanitizer */
  ok(1, "# SKIP unloading libdnc.so leaves its one-time allocations");
  return;
#endif
  const char *dir = getenv("DNC_BUILD");
  char path[4096];
  snprintf(path, sizeof path, "%s/libdnc.so", dir && *dir ? dir : "build");
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    ok(1, "# SKIP no %s to load", path);
    return;
  }
  dl_run r = {h, 0, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  pthread_t t;
  if (pthread_create(&t, NULL, dl_thread, &r)) {
    ok(0, "a thread starts");
    dlclose(h);
    return;
  }
  pthread_mutex_lock(&r.m);
  while (r.stage < 1)
    pthread_cond_wait(&r.c, &r.m);
  pthread_mutex_unlock(&r.m);
  int closed = dlclose(h) == 0;
  pthread_mutex_lock(&r.m);
  r.stage = 2;
  pthread_cond_broadcast(&r.c);
  pthread_mutex_unlock(&r.m);
  pthread_join(t, NULL);
  ok(r.ok && closed, "a layer backward from a dlopen'ed libdnc.so, then "
     "dlclose, then the calling thread's exit");
}

/* threads of this process */
static int count_threads(void)
{
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (!d)
    return -1;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

enum { OR = 257, OC = 1000 }; /* several blocks (kernels.c's grid) */
enum { OUTS = 2 * OR * OC + 2 * OC };

/* DyT's layer forward and backward on ctx's threads, y, dx, dgamma and
 * dbeta into out (OUTS floats); 1 when both calls succeeded */
static int omp_run(dnc_context *ctx, float *out)
{
  const char *src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";
  dnc_module *m = NULL;
  if (dnc_compile_string(ctx, "omp.dn", src, strlen(src), &m) != DNC_OK) {
    dnc_module_free(m);
    return 0;
  }
  static float x[OR * OC], g[OC], b[OC];
  float *y = out, *dx = out + OR * OC, *dg = dx + OR * OC, *db = dg + OC;
  double dp = 0;
  for (int i = 0; i < OR * OC; i++)
    x[i] = (float)((i * 7919) % 2001) / 250.0f - 4.0f;
  for (int c = 0; c < OC; c++)
    g[c] = 1.0f + (float)c / OC, b[c] = (float)c / 4096, dg[c] = db[c] = 0;
  dnc_tensor tx = {x, DNC_F32, OR, OC, 0}, ty = {y, DNC_F32, OR, OC, 0},
             tdx = {dx, DNC_F32, OR, OC, 0};
  dnc_layer L = {NULL, NULL, g, b};
  dnc_layer_grad G = {&dp, NULL, dg, db};
  const dnc_function *f = dnc_module_find(m, "dyt");
  /* dy = y: the forward's output as the backward's incoming gradient */
  int done = dnc_layer_forward(f, &tx, &ty, &L) == DNC_OK &&
             dnc_layer_backward(f, &tx, &ty, &tdx, &L, &G) == DNC_OK;
  dnc_module_free(m);
  return done;
}

/* dnc_context_use_openmp: refusals, then the kernels on libgomp's team
 * (the same bits as on dnc's own threads), back, and a fork()ed child */
static void test_openmp(void)
{
  dnc_options o;
  dnc_options_init(&o);
  o.threads = 4;
  o.cache = -1;
  dnc_context *ctx = NULL;
  if (dnc_context_create(&o, &ctx) != DNC_OK) {
    ok(0, "openmp: a context");
    return;
  }
  is_int(dnc_context_use_openmp(ctx, "libdnc-no-such-runtime.so"),
         DNC_ERR_NOT_FOUND, "openmp: a runtime that is not loaded is refused");
  ok(strstr(dnc_last_error(), "'libdnc-no-such-runtime.so' is not loaded") != NULL,
     "... saying so: %s", dnc_last_error());
  is_int(dnc_context_use_openmp(ctx, ""), DNC_ERR_ARGUMENT,
         "openmp: an empty name is refused");
  void *libm = dlopen("libm.so.6", RTLD_NOW);
  is_int(dnc_context_use_openmp(ctx, "libm.so.6"), DNC_ERR_ARGUMENT,
         "openmp: a loaded library without GOMP_parallel is refused");
  ok(strstr(dnc_last_error(), "has no GOMP_parallel") != NULL,
     "... saying so: %s", dnc_last_error());
  if (libm)
    dlclose(libm);

  static float ref[OUTS], got[OUTS];
  /* the workers start with the first call on them, not with the
   * context: one on an OpenMP team never starts them */
  int made = count_threads();
  ok(omp_run(ctx, ref), "openmp: DyT on dnc's own 4 threads");
  ok(count_threads() >= made + 3, "... which started with that call (%d "
     "threads before it, %d after)", made, count_threads());
  void *gomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!gomp) {
    skip(6, "no libgomp.so.1 to load");
    dnc_context_free(ctx);
    return;
  }
  int before = count_threads();
  is_int(dnc_context_use_openmp(ctx, "libgomp.so.1"), DNC_OK,
         "openmp: libgomp.so.1, once loaded, is taken");
  ok(omp_run(ctx, got) && !memcmp(got, ref, sizeof ref),
     "... and its team's y, dx, dgamma and dbeta are dnc's own threads' bits");
  /* libgomp starts its team's threads on the first region: dnc's blocks
   * ran there, not on dnc's workers (which were already there) */
  ok(count_threads() >= before + 3, "... on 3 threads libgomp started "
     "(%d threads before, %d after)", before, count_threads());
  pid_t pid = fork();
  if (pid == 0) {
    /* the child: dnc's own threads (none survive a fork: the caller
     * alone), never the parent's OpenMP team */
    alarm(60);
    memset(got, 0, sizeof got);
    _exit(omp_run(ctx, got) && !memcmp(got, ref, sizeof ref) ? 0 : 1);
  }
  int st = -1;
  int waited = pid > 0 && waitpid(pid, &st, 0) == pid;
  ok(waited && WIFEXITED(st) && WEXITSTATUS(st) == 0,
     "... and after fork() the child gets the same bits (status %d)", st);
  is_int(dnc_context_use_openmp(ctx, NULL), DNC_OK,
         "openmp: NULL goes back to dnc's own threads");
  ok(omp_run(ctx, got) && !memcmp(got, ref, sizeof ref), "... the same bits");
  dnc_context_free(ctx);
  is_int(dnc_context_use_openmp(ctx, "libgomp.so.1"), DNC_ERR_ARGUMENT,
         "openmp: a freed context is refused");
  dlclose(gomp);
}

/* A kernel call whose temporaries cannot be allocated (a defaulted beta
 * of cols floats, here 2^52 bytes: past any address space, so refused
 * even where memory is overcommitted) is DNC_ERR_MEMORY with nothing
 * written, and says so: dnc_last_error() kept an older, unrelated
 * message. The views' data is never read (the allocation comes first),
 * so the pointers need only be apart. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
  return "allocator_may_return_null=1";
}
#endif

static void test_out_of_memory(void)
{
  dnc_context *ctx = dnc_context_new();
  dnc_module *m = NULL;
  const char *src = "fn f(x; a = 1) = a * x";
  dnc_compile_string(ctx, "f.dn", src, strlen(src), &m);
  const dnc_function *f = dnc_module_function(m, 0);
  int64_t cols = (int64_t)1 << 50;
  dnc_tensor x = {(void *)((uintptr_t)1 << 40), DNC_F32, 1, cols, 0};
  dnc_tensor d = {(void *)(((uintptr_t)1 << 40) + ((uintptr_t)1 << 53)),
                  DNC_F32, 1, cols, 0};
  float gamma[1] = {1}, dgamma[1] = {0};
  dnc_layer L = {NULL, NULL, gamma, NULL};
  dnc_layer_grad G = {NULL, NULL, dgamma, NULL};
  dnc_function_param(f, 9, NULL); /* an older message */
  is_int(dnc_layer_forward(f, &x, &d, &L), DNC_ERR_MEMORY,
         "a layer forward whose default beta cannot be made: DNC_ERR_MEMORY");
  is_str(dnc_last_error(), "dnc_layer_forward: out of memory for the "
         "temporaries of a [1 x 1125899906842624] call", "  saying so");
  dnc_function_param(f, 9, NULL);
  is_int(dnc_layer_backward(f, &x, &d, &d, NULL, &G), DNC_ERR_MEMORY,
         "a layer backward likewise");
  ok(strstr(dnc_last_error(), "dnc_layer_backward: out of memory") != NULL,
     "  saying so: %s", dnc_last_error());
  /* channels first: the per-channel arrays hold one value per channel,
   * so 2^50 channels of one element each */
  dnc_tensor xc = x, dc = d;
  xc.rows = dc.rows = cols;
  xc.cols = dc.cols = 1;
  dnc_function_param(f, 9, NULL);
  is_int(dnc_layer_forward_cm(f, &xc, &dc, cols, &L), DNC_ERR_MEMORY,
         "channels first likewise");
  ok(strstr(dnc_last_error(), "dnc_layer_forward_cm: out of memory") != NULL,
     "  saying so: %s", dnc_last_error());
  dnc_function_param(f, 9, NULL);
  is_int(dnc_layer_backward_cm(f, &xc, &dc, &dc, cols, NULL, &G),
         DNC_ERR_MEMORY, "and its backward");
  ok(strstr(dnc_last_error(), "dnc_layer_backward_cm: out of memory") != NULL,
     "  saying so: %s", dnc_last_error());
  ok(dgamma[0] == 0, "no gradient was written");
  /* an empty channels-first view is a call with nothing to do, whatever
   * its channel count: 2^62 channels wrapped the per-channel array's size
   * to a few bytes, and filling it crashed */
  dnc_tensor e = {NULL, DNC_F32, 0, 5, 0};
  for (int k = 0; k < 2; k++) {
    int64_t ch = (int64_t)1 << (k ? 61 : 62);
    e.dtype = k ? DNC_F64 : DNC_F32;
    is_int(dnc_layer_forward_cm(f, &e, &e, ch, NULL), DNC_OK,
           "an empty [0 x 5] channels-first forward with 2^%d channels: DNC_OK",
           k ? 61 : 62);
    is_int(dnc_layer_backward_cm(f, &e, &e, &e, ch, NULL, &G), DNC_OK,
           "  and its backward");
  }
  dnc_tensor e2 = {NULL, DNC_F32, (int64_t)1 << 62, 0, 0};
  is_int(dnc_layer_forward_cm(f, &e2, &e2, (int64_t)1 << 62, NULL), DNC_OK,
         "[2^62 x 0] with 2^62 channels: DNC_OK");
  is_int(dnc_layer_forward_cm(f, &e, &e, 0, NULL), DNC_ERR_ARGUMENT,
         "an empty view with 0 channels is still refused");
  ok(dgamma[0] == 0, "nothing was added to the sums");
  dnc_module_free(m);
  dnc_context_free(ctx);
}

/* threads = 0 counts the CPUs the process may run on (taskset, a
 * container's cpuset), not every online CPU; $DNC_NUM_THREADS wins */
static void test_default_threads(void)
{
  cpu_set_t old, one;
  if (sched_getaffinity(0, sizeof old, &old) != 0) {
    skip(2, "no sched_getaffinity");
    return;
  }
  int first = 0;
  while (first < CPU_SETSIZE && !CPU_ISSET(first, &old))
    first++;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  const char *env = getenv("DNC_NUM_THREADS");
  char *saved = env ? strdup(env) : NULL;
  unsetenv("DNC_NUM_THREADS");
  int pinned = sched_setaffinity(0, sizeof one, &one) == 0;
  dnc_options o;
  dnc_options_init(&o);
  o.cache = -1;
  dnc_context *ctx = NULL;
  int n = -1;
  if (pinned && dnc_context_create(&o, &ctx) == DNC_OK) {
    n = dnc_context_threads(ctx);
    dnc_context_free(ctx);
  }
  ok(!pinned || n == 1, "pinned to one CPU, a default context has 1 thread (%d)", n);
  setenv("DNC_NUM_THREADS", "3", 1);
  n = -1;
  if (dnc_context_create(&o, &ctx) == DNC_OK) {
    n = dnc_context_threads(ctx);
    dnc_context_free(ctx);
  }
  is_int(n, 3, "DNC_NUM_THREADS=3 still gives 3 threads when pinned");
  sched_setaffinity(0, sizeof old, &old);
  if (saved) {
    setenv("DNC_NUM_THREADS", saved, 1);
    free(saved);
  } else {
    unsetenv("DNC_NUM_THREADS");
  }
}

int main(void)
{
  test_version();
  test_out_of_memory();
  test_fit();
  test_compile_ok();
  test_compile_errors();
  test_bad_arguments();
  test_text();
  test_limits();
  test_freed_context();
  test_unload();
  test_openmp();
  test_default_threads();
  return done_testing();
}
