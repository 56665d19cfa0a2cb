/*
 * dspec.c - which derivatives to print, and printing them: what `dnc diff`
 * and dnc_function_diff (the C API, and through it Python's .diff) share.
 *
 * A request is --wrt and --order: "all" (every derivative of that order,
 * mixed ones once each), one variable (its N-th derivative) or a list
 * "v1,v2" (the mixed derivative d/dv1 d/dv2, order 1 each).
 */
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"

static const char *var_name(const dnc_fn *f, int v)
{
  return v == DNC_WRT_X ? f->input : f->params[v].name;
}

char *dnc_dspec_name(const dnc_fn *f, const dnc_dspec *d)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&buf, &len);
  if (!o)
    return NULL;
  fprintf(o, "%s_", f->name);
  int done[DNC_DSPEC_MAX] = {0};
  for (int i = 0; i < d->n; i++) {
    if (done[i])
      continue;
    int c = 0;
    for (int j = i; j < d->n; j++)
      if (d->var[j] == d->var[i]) {
        c++;
        done[j] = 1;
      }
    fprintf(o, "_d%s", var_name(f, d->var[i]));
    if (c > 1)
      fprintf(o, "%d", c);
  }
  fclose(o);
  return buf;
}

/* Every multiset of `order` variables from {x, params}, each once; the
 * count, of which at most max are stored. */
static int all_specs(const dnc_fn *f, int order, dnc_dspec *out, int max)
{
  int nv = f->nparams + 1, k = 0;
  int idx[DNC_DSPEC_MAX] = {0};
  for (;;) {
    if (k < max) {
      out[k].n = order;
      for (int i = 0; i < order; i++)
        out[k].var[i] = idx[i] == 0 ? DNC_WRT_X : idx[i] - 1;
    }
    k++;
    int i = order - 1;
    while (i >= 0 && idx[i] == nv - 1)
      i--;
    if (i < 0)
      break;
    idx[i]++;
    for (int j = i + 1; j < order; j++)
      idx[j] = idx[i];
  }
  return k;
}

int dnc_dspec_parse(const dnc_fn *f, const char *wrt, int order,
                    dnc_dspec *specs, int max, int *ns, char *err, size_t nerr)
{
  if (order < 1 || order > DNC_DSPEC_MAX) {
    snprintf(err, nerr, "the order must be from 1 to %d, not %d",
             DNC_DSPEC_MAX, order);
    return -1;
  }
  if (!strcmp(wrt, "all")) {
    int k = all_specs(f, order, specs, max);
    if (k > max) {
      snprintf(err, nerr, "'%s' has %d derivatives of order %d; name "
               "the variables (--wrt)", f->name, k, order);
      return -1;
    }
    *ns = k;
    return 0;
  }
  char *copy = strdup(wrt), *save;
  if (!copy) {
    snprintf(err, nerr, "out of memory");
    return -1;
  }
  int list = strchr(wrt, ',') != NULL, rc = 0;
  size_t len = strlen(wrt);
  if (list && (wrt[0] == ',' || wrt[len - 1] == ',' || strstr(wrt, ",,"))) {
    snprintf(err, nerr, "the list of variables '%s' has an empty name", wrt);
    rc = -1;
  } else if (list && order != 1) {
    snprintf(err, nerr, "a list of variables gives one mixed derivative; it "
             "takes no order");
    rc = -1;
  }
  specs[0].n = 0;
  for (char *t = strtok_r(copy, ",", &save); t && !rc;
       t = strtok_r(NULL, ",", &save)) {
    int v = !strcmp(t, f->input) ? DNC_WRT_X : dnc_fn_param_index(f, t);
    if (v == -1 && strcmp(t, f->input)) {
      snprintf(err, nerr, "'%s' has no variable '%s'", f->name, t);
      rc = -1;
    } else if (specs[0].n + (list ? 1 : order) > DNC_DSPEC_MAX) {
      snprintf(err, nerr, "at most %d derivatives in a row", DNC_DSPEC_MAX);
      rc = -1;
    } else {
      for (int r = 0; r < (list ? 1 : order); r++)
        specs[0].var[specs[0].n++] = v;
    }
  }
  if (!rc && specs[0].n == 0) {
    snprintf(err, nerr, "no variable to differentiate with respect to");
    rc = -1;
  }
  free(copy);
  *ns = 1;
  return rc;
}

dnc_node *dnc_dspec_derive(dnc_mod *m, dnc_fn *f, const dnc_dspec *d)
{
  if (d->n == 1)
    return dnc_derive(m, f, d->var[0]);
  dnc_node *e = f->body;
  for (int i = 0; i < d->n && e; i++)
    e = dnc_diff(&m->dag, e, d->var[i]);
  return dnc_simplify(&m->dag, e);
}

int dnc_dspec_print(FILE *out, const dnc_fn *f, const dnc_dspec *d,
                    dnc_node *e, int format, int stats)
{
  char *name = dnc_dspec_name(f, d);
  if (!name)
    return -1;
  if (stats)
    dnc_print_stat(out, format, name, dnc_node_count(e));
  if (format == DNC_FMT_DSL)
    dnc_print_def(out, f, name, e);
  else if (format == DNC_FMT_LATEX)
    dnc_print_latex(out, f, d->var, d->n, e);
  else if (format == DNC_FMT_C)
    dnc_print_c(out, f, name, e);
  else
    dnc_print_torch(out, f, name, e);
  free(name);
  return 0;
}

int dnc_dspec_print_all(FILE *out, const dnc_fn *f, const dnc_dspec *specs,
                        dnc_node *const *ds, int ns, int format)
{
  if (format != DNC_FMT_TORCH || ns < 1)
    return 0;
  for (int j = 0; j < ns; j++)
    if (specs[j].n != 1)
      return 0;
  const dnc_node **roots = malloc(sizeof *roots * ((size_t)ns + 1));
  char *name = malloc(strlen(f->name) + sizeof "__all");
  /* the comment names the tuple's members as the functions above */
  char *comment = NULL;
  size_t len;
  FILE *c = open_memstream(&comment, &len);
  int ok = roots && name && c;
  if (ok) {
    sprintf(name, "%s__all", f->name);
    fprintf(c, "(%s", f->name);
    roots[0] = f->body;
  }
  for (int j = 0; j < ns && ok; j++) {
    char *dn = dnc_dspec_name(f, &specs[j]);
    if ((ok = dn != NULL))
      fprintf(c, ", %s", dn);
    free(dn);
    roots[j + 1] = ds[j];
  }
  if (c) {
    fputs("): their shared work once", c);
    ok = !fclose(c) && ok;
  }
  if (ok)
    dnc_print_torch_roots(out, f, name, comment, roots, ns + 1);
  free(roots);
  free(name);
  free(comment);
  return ok ? 0 : -1;
}

void dnc_print_prelude(FILE *out, int format)
{
  if (format == DNC_FMT_C)
    dnc_print_c_prelude(out);
  else if (format == DNC_FMT_TORCH)
    dnc_print_torch_prelude(out);
}

void dnc_print_head(FILE *out, const dnc_fn *f, int format)
{
  if (format == DNC_FMT_TORCH)
    dnc_print_torch(out, f, f->name, f->body);
}
