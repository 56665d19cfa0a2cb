/*
 * test_cpu_p10.c - code for a CPU this machine cannot run is refused, not
 * run into SIGILL: a library from `dnc compile --cpu sapphirerapids`
 * (whose f16 kernels convert with AVX512-FP16's vcvtph2psx, which AMD's
 * AVX-512 CPUs lack) used to pass the load-time check (AVX-512, AVX, FMA
 * only) and die in dnc_module_load's first f16 kernel, and a JIT context
 * with that CPU, or with features this CPU lacks, died in its first
 * kernel; so did one for bdver2 (FMA4) on any CPU but AMD's Bulldozers.
 * On a machine with AVX512-FP16 (FMA4) they run, and are checked to.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dnc.h"
#include "tap.h"

static int host_has(const char *flag)
{
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[8192];
  int has = 0;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "flags", 5)) {
      char pat[64];
      snprintf(pat, sizeof pat, " %s", flag);
      const char *p = strstr(line, pat);
      has = p && (p[strlen(pat)] == ' ' || p[strlen(pat)] == '\n');
      break;
    }
  if (f)
    fclose(f);
  return has;
}

static const char *const src = "fn dyt(x; alpha = 0.5) = tanh(alpha * x)\n";

/* dyt's f16 forward of 1.0 in m: 0x3765 (tanh(0.5) = 0.4621 in f16) */
static int f16_runs(dnc_module *m)
{
  uint16_t x[40], y[40];
  for (int i = 0; i < 40; i++)
    x[i] = 0x3c00; /* 1.0 */
  dnc_tensor tx = {x, DNC_F16, 1, 40, 0}, ty = {y, DNC_F16, 1, 40, 0};
  if (dnc_forward(dnc_module_find(m, "dyt"), &tx, &ty, NULL) != DNC_OK)
    return 0;
  for (int i = 0; i < 40; i++)
    if (y[i] != 0x3765)
      return 0;
  return 1;
}

int main(void)
{
  if (!host_has("avx512f")) {
    skip(1, "needs an x86-64 host with AVX-512");
    return done_testing();
  }
  int fp16 = host_has("avx512_fp16");
  diag("this CPU %s AVX512-FP16", fp16 ? "has" : "lacks");

  dnc_options o;
  dnc_options_init(&o);
  o.cpu = "sapphirerapids";
  dnc_context *ctx = NULL;
  dnc_status st = dnc_context_create(&o, &ctx);
  if (fp16) {
    dnc_module *m = NULL;
    ok(st == DNC_OK && !dnc_compile_string(ctx, "s", src, strlen(src), &m) &&
           f16_runs(m),
       "a JIT context for sapphirerapids runs its f16 kernels");
    dnc_module_free(m); /* a leak ASan reports where the CPU has FP16 */
  } else {
    ok(st == DNC_ERR_ARGUMENT && strstr(dnc_last_error(), "avx512fp16") &&
           strstr(dnc_last_error(), "sapphirerapids"),
       "a JIT context for sapphirerapids is refused: %s", dnc_last_error());
    dnc_options_init(&o);
    o.features = "+avx512f,+avx512fp16";
    ok(dnc_context_create(&o, &ctx) == DNC_ERR_ARGUMENT &&
           strstr(dnc_last_error(), "avx512fp16"),
       "and so is one with the feature +avx512fp16: %s", dnc_last_error());
  }
  dnc_context_free(ctx);
  /* AVX-512F without VL, DQ and BW (Knights Landing; +avx512f on an AVX2
   * CPU): LLVM 19 aborted the process compiling the first kernel ("Cannot
   * select: masked_store"); refused, on any host */
  static const struct {
    const char *cpu, *features, *miss;
  } knl[] = {{"x86-64-v3", "+avx512f", "AVX512-DQ"},
             {"haswell", "+avx512f,+avx512dq,+avx512vl", "AVX512-BW"},
             {"knl", NULL, "AVX512-DQ"}};
  for (size_t i = 0; i < sizeof knl / sizeof *knl; i++) {
    dnc_options_init(&o);
    o.cpu = knl[i].cpu;
    o.features = knl[i].features;
    ctx = NULL;
    char want[64];
    snprintf(want, sizeof want, "AVX-512F without %s", knl[i].miss);
    ok(dnc_context_create(&o, &ctx) == DNC_ERR_ARGUMENT && !ctx &&
           strstr(dnc_last_error(), want),
       "a JIT context for %s%s%s is refused: %s", knl[i].cpu,
       knl[i].features ? " " : "", knl[i].features ? knl[i].features : "",
       dnc_last_error());
  }
  /* bdver2's code uses AMD's FMA4 (and XOP), which Zen and Intel lack */
  dnc_options_init(&o);
  o.cpu = "bdver2";
  ctx = NULL;
  st = dnc_context_create(&o, &ctx);
  if (host_has("fma4")) {
    dnc_module *m = NULL;
    ok(st == DNC_OK && !dnc_compile_string(ctx, "s", src, strlen(src), &m) &&
           f16_runs(m),
       "a JIT context for bdver2 runs");
    dnc_module_free(m);
  } else
    ok(st == DNC_ERR_ARGUMENT && strstr(dnc_last_error(), "fma4"),
       "a JIT context for bdver2 is refused: %s", dnc_last_error());
  dnc_context_free(ctx);
  /* contexts this CPU runs are not refused */
  const char *fine[] = {"x86-64-v4", "x86-64", "skylake-avx512"};
  for (int i = 0; i < 3; i++) {
    dnc_options_init(&o);
    o.cpu = fine[i];
    dnc_module *m = NULL;
    ok(dnc_context_create(&o, &ctx) == DNC_OK &&
           !dnc_compile_string(ctx, "s", src, strlen(src), &m) && f16_runs(m),
       "a JIT context for %s runs", fine[i]);
    dnc_module_free(m);
    dnc_context_free(ctx);
  }
  dnc_options_init(&o);
  o.cpu = "x86-64";
  o.features = "+avx2,+fma,+prefer-256-bit";
  ok(dnc_context_create(&o, &ctx) == DNC_OK && dnc_context_vector_bits(ctx) == 256,
     "a tuning feature is no instruction set: +avx2,+fma,+prefer-256-bit runs");
  dnc_context_free(ctx);

  const char *build = getenv("DNC_BUILD");
  build = build && *build ? build : "build";
  char dir[] = "/tmp/dnc-test-cpu-p10.XXXXXX";
  if (!mkdtemp(dir))
    return printf("Bail out! no temporary directory\n"), 1;
  char src_path[512], lib[512], cmd[2048];
  snprintf(src_path, sizeof src_path, "%s/dyt.dn", dir);
  snprintf(lib, sizeof lib, "%s/spr.so", dir);
  FILE *f = fopen(src_path, "w");
  fputs(src, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s/dnc compile %s --cpu sapphirerapids -o %s",
           build, src_path, lib);
  is_int(system(cmd), 0, "dnc compile --cpu sapphirerapids");
  ctx = dnc_context_new();
  dnc_module *m = NULL;
  st = dnc_module_load(ctx, lib, &m);
  if (fp16)
    ok(st == DNC_OK && f16_runs(m), "the library loads and runs its f16 kernels");
  else
    ok(st == DNC_ERR_LOAD && strstr(dnc_last_error(), "lacks avx512fp16"),
       "the library is refused when loaded: %s", dnc_last_error());
  dnc_module_free(m);
  /* and a bdver2 library on a CPU without FMA4: refused, not SIGILL */
  snprintf(cmd, sizeof cmd, "%s/dnc compile %s --cpu bdver2 -o %s", build,
           src_path, lib);
  is_int(system(cmd), 0, "dnc compile --cpu bdver2");
  m = NULL;
  st = dnc_module_load(ctx, lib, &m);
  if (host_has("fma4") && host_has("xop"))
    ok(st == DNC_OK && f16_runs(m), "the bdver2 library loads and runs");
  else
    ok(st == DNC_ERR_LOAD && strstr(dnc_last_error(), "this CPU lacks"),
       "the bdver2 library is refused when loaded: %s", dnc_last_error());
  dnc_module_free(m);
  dnc_context_free(ctx);
  unlink(src_path);
  unlink(lib);
  rmdir(dir);
  return done_testing();
}
