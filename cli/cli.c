/*
 * cli.c - what the fit, search and plot commands share: option values,
 * loading a source, located errors, and writing an output file whole
 * (a temporary file beside it, renamed into place, as aot.c does).
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

int dnc_cli_int(const char *s, long lo, long hi, long *v)
{
  char *end;
  errno = 0;
  long n = strtol(s, &end, 10);
  if (!*s || *end || errno || n < lo || n > hi)
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

dnc_mod *dnc_cli_load(const dnc_cli *c, const char *file)
{
  dnc_mod *m = dnc_mod_new();
  if (dnc_mod_read_file(m, file))
    dnc_mod_build(m);
  fflush(stdout);
  if (dnc_cli_show(c, &m->diags)) {
    dnc_mod_free(m);
    return NULL;
  }
  return m;
}

dnc_fn *dnc_cli_function(const dnc_cli *c, dnc_mod *m, const char *file,
                         const char *name)
{
  if (!name) {
    if (m->nfns == 1)
      return m->fns[0];
    if (!m->nfns)
      dnc_cli_error("'%s' defines no function", file);
    else
      dnc_cli_usage_error(c, "'%s' defines %d functions; choose one with -f",
                          file, m->nfns);
    return NULL;
  }
  dnc_fn *f = dnc_mod_find(m, name);
  if (f)
    return f;
  const char **cands = calloc((size_t)m->nfns + 1, sizeof *cands);
  for (int i = 0; i < m->nfns; i++)
    cands[i] = m->fns[i]->name;
  const char *best = dnc_did_you_mean(name, cands, m->nfns);
  fflush(stdout);
  fprintf(stderr, "dnc: error: no function '%s' in '%s'", name, file);
  if (best)
    fprintf(stderr, "; did you mean '%s'?", best);
  fputc('\n', stderr);
  free(cands);
  return NULL;
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

int dnc_cli_setting(const char *s, char **name, double *v)
{
  const char *eq = strchr(s, '=');
  if (!eq || eq == s || !dnc_cli_number(eq + 1, v))
    return 0;
  *name = strndup(s, (size_t)(eq - s));
  return 1;
}

void dnc_cli_json_string(FILE *out, const char *s)
{
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
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
