/*
 * cli.c - what the commands share: options parsed from tables, option
 * values, loading sources, choosing functions, errors, and writing an
 * output file whole (a temporary file beside it, renamed into place, as
 * aot.c does).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int dnc_cli_usage_error(const dnc_cli *c, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("dnc: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fputs(c->usage, stderr);
  return DNC_EXIT_USAGE;
}

int dnc_cli_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fflush(stdout);
  fputs("dnc: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return DNC_EXIT_INPUT;
}

int dnc_cli_is_help(const char *a)
{
  return !strcmp(a, "-h") || !strcmp(a, "--help");
}

int dnc_cli_is_no_warnings(const char *a)
{
  return !strcmp(a, "-w") || !strcmp(a, "--no-warnings");
}

int dnc_cli_number(const char *s, double *v)
{
  while (*s == ' ' || *s == '\t')
    s++;
  if (!*s)
    return 0;
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  if (end == s)
    return 0;
  while (*end == ' ' || *end == '\t' || *end == '\r')
    end++;
  return *end == 0;
}

/* s is a whole number as written: an optional sign, then digits and
 * nothing else. strtol alone skips leading white space (' 3' was taken
 * where '3 ' was refused) and strtoull takes ' -1' for 2^64 - 1. */
static int whole(const char *s, int sign)
{
  if (sign && (*s == '-' || *s == '+'))
    s++;
  if (!*s)
    return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return 0;
  return 1;
}

int dnc_cli_int(const char *s, long lo, long hi, long *v)
{
  if (!whole(s, 1))
    return 0;
  errno = 0;
  long n = strtol(s, NULL, 10);
  if (errno || n < lo || n > hi)
    return 0;
  *v = n;
  return 1;
}

int dnc_cli_uint64(const char *s, unsigned long long *v)
{
  if (!whole(s, 0))
    return 0;
  errno = 0;
  unsigned long long n = strtoull(s, NULL, 10);
  if (errno == ERANGE) /* 2^64 was 2^64 - 1 */
    return 0;
  *v = n;
  return 1;
}

const char *dnc_cli_opt(int argc, char **argv, int *i, const char *s,
                        const char *l)
{
  const char *a = argv[*i];
  size_t ll = strlen(l);
  if (!strncmp(a, l, ll) && a[ll] == '=')
    return a + ll + 1;
  if (strcmp(a, s) && strcmp(a, l))
    return NULL;
  if (*i + 1 >= argc)
    return "";
  return argv[++*i];
}

int dnc_cli_show(const dnc_cli *c, const dnc_diags *d)
{
  int shown = 1;
  for (const dnc_diag *dg = d->head; dg; dg = dg->next) {
    if (dg->sev != DNC_SEV_NOTE)
      shown = !(c->no_warnings && dg->sev == DNC_SEV_WARNING);
    if (shown)
      dnc_diag_render(stderr, dg);
  }
  if (d->suppressed)
    fprintf(stderr, "dnc: note: %d more error%s not shown\n", d->suppressed,
            d->suppressed == 1 ? "" : "s");
  return d->nerrors;
}

/* files[i] is files[j] for some j < i: the same name, or the same file
 * under another (standard input can be read once): "-" is the file on
 * fd 0, which /dev/stdin and /proc/self/fd/0 name too */
static const char *given_before(char **files, int i)
{
  struct stat si, sj;
  int has_si = !dnc_input_stat(files[i], &si);
  for (int j = 0; j < i; j++) {
    if (!strcmp(files[i], files[j]))
      return files[j];
    if (has_si && !dnc_input_stat(files[j], &sj) &&
        si.st_dev == sj.st_dev && si.st_ino == sj.st_ino)
      return files[j];
  }
  return NULL;
}

dnc_mod *dnc_cli_load(const dnc_cli *c, char **files, int nfiles)
{
  dnc_mod *m = dnc_mod_new();
  int ok = 1;
  for (int i = 0; i < nfiles && ok; i++) {
    const char *before = given_before(files, i);
    if (!before)
      continue;
    /* read twice, every function would be a duplicate of itself */
    if (strcmp(before, files[i]))
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                   "'%s' is given twice (also as '%s')", files[i], before);
    else
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                   "'%s' is given twice", files[i]);
    ok = 0;
  }
  for (int i = 0; i < nfiles && ok; i++)
    ok &= dnc_mod_read_file(m, files[i]) != NULL;
  if (ok)
    dnc_mod_build(m);
  fflush(stdout);
  if (dnc_cli_show(c, &m->diags)) {
    dnc_mod_free(m);
    return NULL;
  }
  return m;
}

dnc_mod *dnc_cli_load_files(const dnc_cli *c, dnc_cli_files *in, int *rc)
{
  if (*rc < 0 && !in->n)
    *rc = dnc_cli_usage_error(c, "no input files");
  dnc_mod *m = *rc < 0 ? dnc_cli_load(c, in->files, in->n) : NULL;
  free(in->files);
  in->files = NULL;
  if (*rc < 0 && !m)
    *rc = DNC_EXIT_INPUT;
  return m;
}

void dnc_cli_no_function(const dnc_mod *m, const char *name,
                         const char *file)
{
  const char **cands = calloc((size_t)m->nfns + 1, sizeof *cands);
  for (int i = 0; i < m->nfns; i++)
    cands[i] = m->fns[i]->name;
  const char *best = dnc_did_you_mean(name, cands, m->nfns);
  fflush(stdout);
  fprintf(stderr, "dnc: error: no function '%s'", name);
  if (file)
    fprintf(stderr, " in '%s'", file);
  if (best)
    fprintf(stderr, "; did you mean '%s'?", best);
  fputc('\n', stderr);
  free(cands);
}

dnc_fn *dnc_cli_function(const dnc_cli *c, dnc_mod *m, const char *file,
                         const char *name)
{
  if (!name) {
    if (m->nfns == 1)
      return m->fns[0];
    if (!m->nfns)
      dnc_cli_error("'%s' defines no function",
                    strcmp(file, "-") ? file : "<stdin>");
    else
      dnc_cli_usage_error(c, "'%s' defines %d functions; choose one with -f",
                          strcmp(file, "-") ? file : "<stdin>", m->nfns);
    return NULL;
  }
  dnc_fn *f = dnc_mod_find(m, name);
  if (!f)
    dnc_cli_no_function(m, name, file);
  return f;
}

int dnc_cli_functions(const dnc_cli *c, dnc_mod *m, const char *names,
                      int repeat, dnc_fn ***fns, int *n)
{
  /* room for every function, and for every name of the list */
  size_t room = (size_t)m->nfns + 1;
  for (const char *p = names; p && *p; p++)
    room += *p == ',';
  *fns = calloc(room + 1, sizeof **fns);
  *n = 0;
  if (!names) {
    for (int i = 0; i < m->nfns; i++)
      (*fns)[(*n)++] = m->fns[i];
    return 1;
  }
  if (strspn(names, ",") == strlen(names)) { /* "" or "," */
    fflush(stdout);
    dnc_cli_usage_error(c, "-f needs function names");
    return 0;
  }
  size_t len = strlen(names);
  if (names[0] == ',' || names[len - 1] == ',' || strstr(names, ",,")) {
    fflush(stdout);
    dnc_cli_usage_error(c, "the list of functions '%s' has an empty name",
                        names);
    return 0;
  }
  char *copy = strdup(names);
  int ok = 1;
  for (char *save, *t = strtok_r(copy, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    dnc_fn *f = dnc_mod_find(m, t);
    if (!f) {
      dnc_cli_no_function(m, t, NULL);
      ok = 0;
      continue;
    }
    int seen = 0;
    for (int i = 0; i < *n; i++)
      seen |= (*fns)[i] == f;
    if (!seen || repeat) /* -f a,a is a, unless the caller repeats it */
      (*fns)[(*n)++] = f;
  }
  free(copy);
  return ok;
}

/* ------------------------------------------------------- option tables */

static const char *opt_name(const dnc_opt *o)
{
  return o->name ? o->name : o->s ? o->s : o->l;
}

static int takes_value(const dnc_opt *o)
{
  return o->kind != DNC_OPT_FLAG && (o->kind != DNC_OPT_CALL || o->takes);
}

/* Applies option o with value v (NULL for a flag): -1, or the status. */
static int opt_apply(const dnc_cli *c, const dnc_opt *o, const char *v,
                     void *arg)
{
  const char *name = opt_name(o);
  if (o->given)
    *o->given = 1;
  switch (o->kind) {
  case DNC_OPT_FLAG:
    *(int *)o->dest = 1;
    return -1;
  case DNC_OPT_STRING:
    if (o->what && !*v)
      return dnc_cli_usage_error(c, "%s needs %s", name, o->what);
    *(const char **)o->dest = v;
    return -1;
  case DNC_OPT_CHOICE:
    for (int k = 0; o->choices[k]; k++)
      if (!strcmp(v, o->choices[k])) {
        *(int *)o->dest = k;
        return -1;
      }
    {
      /* "NAME is a, b or c, not 'V'" */
      char list[200] = "";
      size_t len = 0;
      for (int k = 0; o->choices[k] && len < sizeof list; k++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                k == 0 ? "" : o->choices[k + 1] ? ", "
                                                                : " or ",
                                o->choices[k]);
      if (!*v) /* --format at the end, or --format= */
        return dnc_cli_usage_error(c, "%s needs a value: %s", name, list);
      return dnc_cli_usage_error(c, "%s is %s, not '%s'", name, list, v);
    }
  case DNC_OPT_INT:
    if (!dnc_cli_int(v, o->lo, o->hi, (long *)o->dest)) {
      char what[200];
      snprintf(what, sizeof what, o->what, o->lo, o->hi);
      return dnc_cli_usage_error(c, "%s needs %s, not '%s'", name, what, v);
    }
    return -1;
  case DNC_OPT_CALL: {
    int rc = o->call(arg, o->l, v);
    if (rc == -1)
      return dnc_cli_usage_error(c, "%s needs %s, not '%s'", name, o->what,
                                 v ? v : "");
    return rc ? rc : -1;
  }
  }
  return -1;
}

/* "unknown option", with the command's long option that is close to it
 * ('--funtion', '--dtpye=f32') */
static int unknown_option(const dnc_cli *c, const dnc_opt *opts,
                          const char *a)
{
  const char *near = NULL;
  /* a flag given a value (--verbose=1): said so, not an unknown option */
  const char *eq = !strncmp(a, "--", 2) ? strchr(a, '=') : NULL;
  for (const dnc_opt *o = opts; eq && o->l; o++)
    if (!takes_value(o) && strlen(o->l) == (size_t)(eq - a) &&
        !strncmp(a, o->l, (size_t)(eq - a)))
      return dnc_cli_usage_error(c, "%s takes no value, not '%s'", o->l,
                                 eq + 1);
  if (!strncmp(a, "--", 2) && a[2]) {
    size_t n = 0;
    while (opts[n].l)
      n++;
    const char **names = calloc(n + 2, sizeof *names);
    for (size_t k = 0; k < n; k++)
      names[k] = opts[k].l;
    names[n] = "--no-warnings";
    char *given = strdup(a);
    char *eq = strchr(given, '=');
    if (eq)
      *eq = 0;
    near = dnc_did_you_mean(given, names, (int)n + 1);
    free(given);
    free(names);
  }
  if (near)
    return dnc_cli_usage_error(c, "unknown option '%s'; did you mean '%s'?",
                               a, near);
  return dnc_cli_usage_error(c, "unknown option '%s'", a);
}

/* An option of one value (o, given value v) seen before with another
 * value: the usage error; -1 otherwise. given[k] is what option k of
 * opts was given, NULL when not yet. */
static int once(const dnc_cli *c, const dnc_opt *opts, const dnc_opt *o,
                const char *v, const char **given, long nslots)
{
  const dnc_opt *slot = o;
  if (o->group)
    for (slot = opts; slot->group != o->group; slot++)
      ;
  else if (o->repeat || !takes_value(o))
    return -1;
  long at = slot - opts;
  if (at >= nslots)
    dnc_die(__FILE__, __LINE__, "an option table too long for once()");
  if (given[at] && strcmp(given[at], v))
    return dnc_cli_usage_error(c, "%s is given twice ('%s' and '%s'); "
                               "give it once", opt_name(o), given[at], v);
  given[at] = v;
  return -1;
}

int dnc_cli_options_ended;

int dnc_cli_dashed(const char *a)
{
  return a[0] == '-' && a[1] && !dnc_cli_options_ended;
}

/* Whether a is one of opts (-q, --quiet, --top=5), --help or -w. */
static int names_option(const dnc_opt *opts, const char *a)
{
  if (dnc_cli_is_help(a) || dnc_cli_is_no_warnings(a))
    return 1;
  for (const dnc_opt *o = opts; o->l; o++) {
    size_t ll = strlen(o->l);
    if ((o->s && !strcmp(a, o->s)) || !strcmp(a, o->l) ||
        (!strncmp(a, o->l, ll) && a[ll] == '='))
      return 1;
  }
  return 0;
}

int dnc_cli_parse(const dnc_cli *c, int argc, char **argv,
                  const dnc_opt *opts, dnc_cli_arg_fn positional, void *arg)
{
  /* each option of one value, as given: `-f dyt -f derf` kept the last,
   * silently; given twice with two values it is refused (the same value
   * twice is once). A group (-O0 .. -O3) is one setting: its slot is its
   * first member's, its value the spelling given. */
  enum { MAX_OPTS = 96 };
  const char *given[MAX_OPTS] = {0};
  dnc_cli_options_ended = 0;
  for (int i = 1; i < argc; i++) {
    if (dnc_cli_options_ended) { /* after --: every argument positional */
      int rc = positional(c, arg, argv[i]);
      if (rc >= 0)
        return rc;
      continue;
    }
    if (!strcmp(argv[i], "--")) {
      dnc_cli_options_ended = 1;
      continue;
    }
    if (dnc_cli_is_help(argv[i])) {
      fputs(c->usage, stdout);
      return 0;
    }
    if (dnc_cli_is_no_warnings(argv[i])) /* main.c has read it */
      continue;
    const dnc_opt *o = opts;
    const char *v = NULL;
    for (; o->l; o++) {
      if (!takes_value(o)) {
        if ((o->s && !strcmp(argv[i], o->s)) || !strcmp(argv[i], o->l))
          break;
      } else if ((v = dnc_cli_opt(argc, argv, &i, o->s ? o->s : o->l,
                                  o->l))) {
        break;
      }
    }
    int rc;
    if (o->l && v && v == argv[i] &&
        (o->kind == DNC_OPT_STRING || o->kind == DNC_OPT_CALL) &&
        names_option(opts, v))
      /* `-o --quiet`: the prefix forgotten, the next option taken for it
       * (dnc search wrote --quiet.csv, and was not quiet); the same for
       * the options a function reads (plot -f -o out.svg had been the
       * functions '-o' and a second input file 'out.svg', compile
       * --cpu -S an unknown CPU '-S', status 1). A choice or a number
       * already says 'not '-S''. */
      return dnc_cli_usage_error(c, "%s needs %s, not the option '%s' (to "
                                 "mean that value: %s=%s)", opt_name(o),
                                 o->what ? o->what : "a value", v, o->l, v);
    if (o->l) {
      /* applied first: an empty or malformed value is that error */
      rc = opt_apply(c, o, v, arg);
      if (rc < 0)
        rc = once(c, opts, o, v ? v : argv[i], given, MAX_OPTS);
    } else if ((rc = positional(c, arg, argv[i])) == DNC_CLI_UNKNOWN)
      rc = unknown_option(c, opts, argv[i]);
    if (rc >= 0)
      return rc;
  }
  return -1;
}

int dnc_cli_file_arg(const dnc_cli *c, void *arg, const char *a)
{
  (void)c;
  if (dnc_cli_dashed(a))
    return DNC_CLI_UNKNOWN;
  dnc_cli_files *f = arg;
  f->files[f->n++] = (char *)a;
  return -1;
}

const char *const *dnc_cli_inputs;
int dnc_cli_ninputs;

int dnc_cli_write_file(const char *path, int (*write)(FILE *out, void *arg),
                       void *arg)
{
  /* a link's target, a device in place, never a directory (outfile.c) */
  dnc_outpath op;
  char why[600];
  if (dnc_outpath_resolve(path, dnc_cli_inputs, dnc_cli_ninputs, &op, why,
                          sizeof why)) {
    dnc_cli_error("%s", why);
    return -1;
  }
  char *tmp = dnc_outpath_temp(&op);
  if (!tmp) {
    dnc_cli_error("cannot write '%s': %s", path, strerror(errno));
    dnc_outpath_free(&op);
    return -1;
  }
  FILE *out = fopen(tmp, "w");
  int rc = out ? write(out, arg) : -1;
  int err = errno;
  if (out) {
    if (fflush(out) || ferror(out))
      rc = -1, err = errno;
    if (fclose(out) && !rc)
      rc = -1, err = errno;
  }
  /* the mode a new file gets (mkstemp made it 0600) */
  mode_t mask = umask(0);
  umask(mask);
  if (!rc && chmod(tmp, 0666 & ~mask))
    rc = -1, err = errno;
  if (!rc && dnc_outpath_commit(&op, tmp))
    rc = -1, err = errno;
  if (rc) {
    dnc_cli_error("cannot write '%s': %s", path, strerror(err ? err : EIO));
    unlink(tmp);
  }
  free(tmp);
  dnc_outpath_free(&op);
  return rc ? -1 : 0;
}

/* check_output, and with dir, also that the directory its temporary
 * goes in is there */
static int check_output(const char *path, int dir)
{
  dnc_outpath op;
  char why[600];
  int rc = dnc_outpath_resolve(path, dnc_cli_inputs, dnc_cli_ninputs, &op,
                               why, sizeof why);
  if (rc) {
    dnc_cli_error("%s", why);
    return -1;
  }
  const char *slash = op.in_place || !dir ? NULL : strrchr(op.target, '/');
  if (slash) {
    char *d = strndup(op.target, slash == op.target
                                     ? 1 : (size_t)(slash - op.target));
    struct stat st;
    int err = stat(d, &st) ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    free(d);
    if (err) {
      dnc_cli_error("cannot write '%s': %s", path, strerror(err));
      rc = -1;
    }
  }
  dnc_outpath_free(&op);
  return rc ? -1 : 0;
}

int dnc_cli_check_output(const char *path)
{
  return check_output(path, 0);
}

int dnc_cli_check_output_dir(const char *path)
{
  return check_output(path, 1);
}

int dnc_cli_param_again(const dnc_cli *c, const char *name, double was,
                        double now)
{
  if (was == now || (isnan(was) && isnan(now)))
    return 0;
  char v1[40], v2[40];
  dnc_format_double(v1, sizeof v1, was);
  dnc_format_double(v2, sizeof v2, now);
  return dnc_cli_usage_error(c, "two values for '%s' in --param (%s and %s); "
                             "give one", name, v1, v2);
}

int dnc_cli_setting(const char *s, char **name, double *v)
{
  const char *eq = strchr(s, '=');
  if (!eq || eq == s || !dnc_cli_number(eq + 1, v))
    return 0;
  *name = strndup(s, (size_t)(eq - s));
  return 1;
}

/* The length of the well-formed UTF-8 sequence at p (1 to 4), or 0 where
 * p starts none (a stray continuation byte, an overlong form, a surrogate,
 * past U+10FFFF, or cut short). */
static int utf8_len(const unsigned char *p)
{
  unsigned c = p[0];
  if (c < 0x80)
    return 1;
  int n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                                   : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (!n)
    return 0;
  unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
  unsigned hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
  if (p[1] < lo || p[1] > hi)
    return 0;
  for (int k = 2; k < n; k++)
    if (p[k] < 0x80 || p[k] > 0xbf)
      return 0;
  return n;
}

void dnc_cli_json_string(FILE *out, const char *s)
{
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    int n = utf8_len(p);
    if (n == 0) {
      /* not UTF-8 (a file name in Latin-1, say): the replacement
       * character, as JSON is UTF-8 and its readers refuse such bytes */
      fputs("\\ufffd", out);
      continue;
    }
    if (n > 1) {
      fwrite(p, 1, (size_t)n, out);
      p += n - 1;
      continue;
    }
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", out);
    else if (*p == '\t')
      fputs("\\t", out);
    else if (*p < 0x20)
      fprintf(out, "\\u%04x", *p);
    else
      fputc(*p, out);
  }
  fputc('"', out);
}

int dnc_cli_read_line(FILE *f, char *buf, size_t cap, size_t *len,
                      size_t stop)
{
  size_t n = 0;
  int ch;
  while ((ch = getc(f)) != EOF && ch != '\n') {
    if (n + 1 < cap)
      buf[n] = (char)ch;
    if (++n == stop)
      break;
  }
  buf[n + 1 < cap ? n : cap - 1] = 0;
  *len = n;
  if (ch == '\n')
    return 1;
  if (ch != EOF)
    return 2;
  return ferror(f) ? -1 : 0;
}

void dnc_cli_csv_field(FILE *out, const char *s)
{
  if (!strpbrk(s, ",\"\n\r") && *s != ' ' && (!*s || s[strlen(s) - 1] != ' ')) {
    fputs(s, out);
    return;
  }
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"')
      fputc('"', out);
    fputc(*s, out);
  }
  fputc('"', out);
}
