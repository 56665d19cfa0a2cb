/*
 * compile_cmd.c - `dnc compile`: every function's kernels ahead of time,
 * as a shared library, an object, assembly, LLVM IR or a C header (aot.c).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <llvm-c/ErrorHandling.h>

#include "cli.h"

static const char usage[] =
    "usage: dnc compile FILE... -o OUT [-H HEADER] [options]\n"
    "\n"
    "Compiles the kernels of every function in FILEs (forward, backward and\n"
    "the layer forms, in f32, f64, bf16 and f16) ahead of time.\n"
    "\n"
    "options:\n"
    "  -o, --output OUT  the file to write\n"
    "  -H, --header HEADER\n"
    "                    also write a C header for the kernels\n"
    "  --emit=KIND       so: a shared library (default), with a version of\n"
    "                    each kernel per CPU level picked when it is loaded,\n"
    "                    and the descriptor that dnc_module_load reads;\n"
    "                    obj, asm, llvm: one CPU's kernels; header: the header\n"
    "  -c, -S            --emit=obj, --emit=asm\n"
    "  -O0 .. -O3        optimisation level (default -O2, as the JIT)\n"
    "  --target TRIPLE   target triple, e.g. aarch64-linux-gnu (default: this\n"
    "                    machine's)\n"
    "  --cpu NAME[,...]  an LLVM CPU name, or native; for a library also a\n"
    "                    list of x86-64 levels (default: a library carries\n"
    "                    x86-64-v2,x86-64-v3,x86-64-v4; other outputs the\n"
    "                    target's baseline: x86-64, rv64gc, sm_52 or\n"
    "                    generic)\n"
    "\n"
    "environment: CC, the C compiler driver that links a library (cc);\n"
    "DNC_NUM_THREADS, how many threads compile a library's kernels (every\n"
    "CPU); DNC_AOT_CPU, when a library is loaded, forces one of its levels\n";

/* The parent directory of path, made absolute without symbolic links,
 * then its last component: the file path names, whether it exists or not
 * (NULL when the directory cannot be resolved). */
static char *canonical(const char *path)
{
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path))
                    : strdup(".");
  if (!dir)
    dnc_die(__FILE__, __LINE__, "out of memory");
  char *real = realpath(dir, NULL), *full = NULL;
  if (real && asprintf(&full, "%s/%s", real, slash ? slash + 1 : path) < 0)
    dnc_die(__FILE__, __LINE__, "out of memory");
  free(real);
  free(dir);
  return full;
}

/* Whether -o and -H name one file: one inode (a link, another spelling of
 * an existing file) or, for files still to be made, one name in one
 * directory ('k.so' and './k.so'). The second output would replace the
 * first, and the library be a header. */
static int same_file(const char *a, const char *b)
{
  if (!strcmp(a, b))
    return 1;
  if (!strcmp(a, "-") || !strcmp(b, "-"))
    return 0;
  struct stat sa, sb;
  int ea = stat(a, &sa), eb = stat(b, &sb);
  if (!ea && !eb)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (!ea || !eb)
    return 0;
  /* neither exists (a dangling link is refused later, as an output) */
  char *ca = canonical(a), *cb = canonical(b);
  int same = ca && cb && !strcmp(ca, cb);
  free(ca);
  free(cb);
  return same;
}

/* ORDER: DNC_EMIT_* */
static const char *const kinds[] = {"so", "obj", "asm", "llvm", "header",
                                    NULL};

typedef struct compile_args {
  const dnc_cli *c;
  dnc_aot_options o;
  int emit_set;
  dnc_cli_files in;
} compile_args;

/* one kind of output: --emit=KIND, -c or -S */
static int set_emit(compile_args *a, int emit)
{
  if (a->emit_set && (int)a->o.emit != emit)
    return dnc_cli_usage_error(a->c, "one kind of output at a time (--emit, "
                                     "-c, -S)");
  a->o.emit = emit;
  a->emit_set = 1;
  return 0;
}

static int opt_emit(void *arg, const char *opt, const char *v)
{
  int emit = -1;
  for (int k = 0; kinds[k]; k++)
    if (!strcmp(v, kinds[k]))
      emit = k;
  if (emit < 0)
    return dnc_cli_usage_error(((compile_args *)arg)->c, "%s is so, obj, "
                               "asm, llvm or header, not '%s'", opt, v);
  return set_emit(arg, emit);
}

static int opt_obj(void *arg, const char *opt, const char *v)
{
  (void)opt, (void)v;
  return set_emit(arg, DNC_EMIT_OBJ);
}

static int opt_asm(void *arg, const char *opt, const char *v)
{
  (void)opt, (void)v;
  return set_emit(arg, DNC_EMIT_ASM);
}

/* --cpu NAME[,NAME...]: no name empty ("", ",", "a,,b", "a,") */
static int opt_cpu(void *arg, const char *opt, const char *v)
{
  compile_args *a = arg;
  size_t n = strlen(v);
  if (!n)
    return dnc_cli_usage_error(a->c, "%s needs a CPU name", opt);
  if (v[0] == ',' || v[n - 1] == ',' || strstr(v, ",,"))
    return dnc_cli_usage_error(a->c, "%s needs CPU names separated by "
                               "commas, none empty, not '%s'", opt, v);
  a->o.cpu = v;
  return 0;
}

static int file_arg(const dnc_cli *c, void *arg, const char *s)
{
  return dnc_cli_file_arg(c, &((compile_args *)arg)->in, s);
}

/* -O0 .. -O3 */
static int opt_level(void *arg, const char *opt, const char *v)
{
  (void)v;
  ((compile_args *)arg)->o.opt_level = opt[2] - '0';
  return 0;
}

/* SIGINT, SIGTERM, SIGHUP during dnc compile: its temporaries removed,
 * then the signal's own death (status 128 + signal) */
static void compile_on_signal(int sig)
{
  dnc_aot_stop_child(); /* the linker, which reads and writes them */
  dnc_temps_remove_now();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* An abort while compiling: LLVM out of memory (std::bad_alloc ends
 * the process through std::terminate, LLVM's own allocation failures
 * through abort), or an internal error already said. The process cannot
 * go on, but its temporaries can go (a thread still writing may leave
 * one, which the next dnc compile sweeps: dnc_temps_sweep) and the
 * status be an error's, not 134. Async-signal-safe: unlink, write and
 * _exit only. */
static void compile_on_abort(int sig)
{
  (void)sig;
  static const char msg[] =
      "dnc: error: the compilation aborted (out of memory in LLVM, or the "
      "error above); no output written\n";
  dnc_aot_stop_child();
  dnc_temps_remove_now();
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  _exit(DNC_EXIT_INPUT);
}

/* LLVM's report_fatal_error: said as dnc's error, the temporaries
 * removed (LLVM would print it and exit(1), leaving them) */
static void compile_on_llvm_fatal(const char *reason)
{
  static const char head[] = "dnc: error: LLVM: ",
                    tail[] = "; no output written\n";
  dnc_aot_stop_child();
  dnc_temps_remove_now();
  ssize_t w = write(2, head, sizeof head - 1);
  w = write(2, reason, strlen(reason));
  w = write(2, tail, sizeof tail - 1);
  (void)w;
  _exit(DNC_EXIT_INPUT);
}

static int run(const dnc_cli *c, int argc, char **argv)
{
  compile_args a = {c, {DNC_EMIT_SO, NULL, NULL, NULL, NULL, 2, NULL}, 0,
                    {0, calloc((size_t)argc + 1, sizeof *a.in.files)}};
  dnc_aot_options *o = &a.o;
  const dnc_opt opts[] = {
      {.s = "-o", .l = "--output", .kind = DNC_OPT_STRING, .dest = &o->output,
       .what = "a file name"},
      {.s = "-H", .l = "--header", .kind = DNC_OPT_STRING, .dest = &o->header,
       .what = "a file name"},
      {.l = "--emit", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_emit,
       .what = "so, obj, asm, llvm or header"},
      {.l = "-c", .kind = DNC_OPT_CALL, .call = opt_obj},
      {.l = "-S", .kind = DNC_OPT_CALL, .call = opt_asm},
      {.l = "-O0", .kind = DNC_OPT_CALL, .call = opt_level, .group = 1,
       .name = "-O"},
      {.l = "-O1", .kind = DNC_OPT_CALL, .call = opt_level, .group = 1,
       .name = "-O"},
      {.l = "-O2", .kind = DNC_OPT_CALL, .call = opt_level, .group = 1,
       .name = "-O"},
      {.l = "-O3", .kind = DNC_OPT_CALL, .call = opt_level, .group = 1,
       .name = "-O"},
      {.l = "--target", .kind = DNC_OPT_STRING, .dest = &o->triple,
       .what = "a triple"},
      {.l = "--cpu", .kind = DNC_OPT_CALL, .takes = 1, .call = opt_cpu,
       .what = "a CPU name"},
      {0},
  };
  int rc = dnc_cli_parse(c, argc, argv, opts, file_arg, &a);
  /* with no input files, that is the error reported (dnc_cli_load_files) */
  if (rc < 0 && a.in.n && !o->output)
    rc = dnc_cli_usage_error(c, "no output file (-o OUT)");
  if (rc < 0 && a.in.n && o->header && o->emit == DNC_EMIT_HEADER)
    rc = dnc_cli_usage_error(c, "--emit=header writes the header to -o; "
                                "-H is for another output");
  if (rc < 0 && a.in.n && o->header && same_file(o->header, o->output))
    rc = dnc_cli_usage_error(c, "-o and -H name the same file");
  dnc_mod *m = dnc_cli_load_files(c, &a.in, &rc);
  if (!m)
    return rc;
  char *err = NULL;
  rc = 0;
  dnc_temps_track(1);
  struct sigaction sa = {0};
  sa.sa_handler = compile_on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sa.sa_handler = compile_on_abort;
  sigaction(SIGABRT, &sa, NULL);
  LLVMInstallFatalErrorHandler(compile_on_llvm_fatal);
  const dnc_diag *last = m->diags.tail; /* shown by dnc_cli_load_files */
  if (dnc_aot_compile(m, o, &err)) {
    /* located when the error has a place in the source */
    const dnc_diag *d = last ? last->next : m->diags.head;
    if (!d)
      fprintf(stderr, "dnc: error: %s\n", err);
    for (; d; d = d->next)
      dnc_diag_render(stderr, d);
    rc = DNC_EXIT_INPUT;
  }
  free(err);
  dnc_mod_free(m);
  return rc;
}

const dnc_command dnc_cmd_compile = {
    "compile",
    "compile the kernels ahead of time: a shared library, an\n"
    "          object, assembly, LLVM IR or a C header",
    usage, run};
