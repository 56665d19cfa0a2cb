/*
 * api.c - the public C API over the compiler's internals.
 */
#include <stdlib.h>
#include <string.h>

#include "dnc.h"
#include "dnc_int.h"

struct dnc_context {
  int reserved; /* options arrive with code generation */
};

struct dnc_module {
  dnc_mod *m;
  size_t ndiags;
  dnc_diagnostic *diags;
};

const char *dnc_version(void)
{
  return DNC_VERSION_STRING;
}

int dnc_abi_version(void)
{
  return DNC_ABI_VERSION;
}

const char *dnc_status_string(dnc_status s)
{
  switch (s) {
  case DNC_OK: return "success";
  case DNC_ERR_SOURCE: return "the source has errors";
  case DNC_ERR_ARGUMENT: return "invalid argument";
  case DNC_ERR_NOT_FOUND: return "not found";
  }
  return "unknown status";
}

dnc_context *dnc_context_new(void)
{
  return calloc(1, sizeof(dnc_context));
}

void dnc_context_free(dnc_context *ctx)
{
  free(ctx);
}

static dnc_status finish(dnc_mod *m, dnc_module **out)
{
  if (m->diags.nerrors == 0)
    dnc_mod_build(m);
  dnc_module *mod = calloc(1, sizeof *mod);
  if (!mod) {
    dnc_mod_free(m);
    *out = NULL;
    return DNC_ERR_ARGUMENT;
  }
  mod->m = m;
  for (dnc_diag *d = m->diags.head; d; d = d->next)
    mod->ndiags++;
  mod->diags = calloc(mod->ndiags + 1, sizeof *mod->diags);
  size_t i = 0;
  for (dnc_diag *d = m->diags.head; d; d = d->next, i++) {
    mod->diags[i].severity = (dnc_diag_severity)d->sev;
    mod->diags[i].file = d->src ? d->src->name : "";
    mod->diags[i].line = d->line;
    mod->diags[i].column = d->col;
    mod->diags[i].message = d->msg;
  }
  if (m->diags.nerrors) {
    m->nfns = 0; /* a module with errors exposes no functions */
    *out = mod;
    return DNC_ERR_SOURCE;
  }
  *out = mod;
  return DNC_OK;
}

dnc_status dnc_compile_string(dnc_context *ctx, const char *name,
                              const char *source, size_t len, dnc_module **out)
{
  if (!out)
    return DNC_ERR_ARGUMENT;
  *out = NULL;
  if (!ctx || (!source && len))
    return DNC_ERR_ARGUMENT;
  dnc_mod *m = dnc_mod_new();
  if (len > DNC_MAX_SOURCE_BYTES)
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "source is too large: %zu bytes, at most %u are accepted",
                 len, DNC_MAX_SOURCE_BYTES);
  else
    dnc_mod_add_source(m, name ? name : "<string>", source ? source : "", len);
  return finish(m, out);
}

dnc_status dnc_compile_file(dnc_context *ctx, const char *path,
                            dnc_module **out)
{
  if (!out)
    return DNC_ERR_ARGUMENT;
  *out = NULL;
  if (!ctx || !path)
    return DNC_ERR_ARGUMENT;
  dnc_mod *m = dnc_mod_new();
  dnc_mod_read_file(m, path);
  return finish(m, out);
}

void dnc_module_free(dnc_module *mod)
{
  if (!mod)
    return;
  dnc_mod_free(mod->m);
  free(mod->diags);
  free(mod);
}

size_t dnc_module_diagnostic_count(const dnc_module *mod)
{
  return mod ? mod->ndiags : 0;
}

const dnc_diagnostic *dnc_module_diagnostic(const dnc_module *mod, size_t i)
{
  return mod && i < mod->ndiags ? &mod->diags[i] : NULL;
}

size_t dnc_module_format_diagnostics(const dnc_module *mod, char *buf, size_t n)
{
  if (!mod)
    return 0;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f)
    return 0;
  dnc_diags_render(f, &mod->m->diags);
  fclose(f);
  if (buf && n) {
    size_t k = len < n - 1 ? len : n - 1;
    memcpy(buf, text, k);
    buf[k] = 0;
  }
  free(text);
  return len;
}

int dnc_module_function_count(const dnc_module *mod)
{
  return mod ? mod->m->nfns : 0;
}

const dnc_function *dnc_module_function(const dnc_module *mod, int i)
{
  if (!mod || i < 0 || i >= mod->m->nfns)
    return NULL;
  return mod->m->fns[i];
}

const dnc_function *dnc_module_find(const dnc_module *mod, const char *name)
{
  if (!mod || !name)
    return NULL;
  return dnc_mod_find(mod->m, name);
}

const char *dnc_function_name(const dnc_function *f)
{
  return f ? f->name : NULL;
}

int dnc_function_param_count(const dnc_function *f)
{
  return f ? f->nparams : 0;
}

dnc_status dnc_function_param(const dnc_function *f, int i, dnc_param_info *out)
{
  if (!f || !out)
    return DNC_ERR_ARGUMENT;
  if (i < 0 || i >= f->nparams)
    return DNC_ERR_NOT_FOUND;
  out->name = f->params[i].name;
  out->default_value = f->params[i].def;
  out->kind = f->params[i].per_channel ? DNC_PARAM_PER_CHANNEL
                                       : DNC_PARAM_SCALAR;
  return DNC_OK;
}

int dnc_function_param_index(const dnc_function *f, const char *name)
{
  if (!f || !name)
    return -1;
  return dnc_fn_param_index(f, name);
}

dnc_status dnc_function_eval(const dnc_function *f, const double *x, double *y,
                             size_t n, const double *params)
{
  if (!f || (n && (!x || !y)))
    return DNC_ERR_ARGUMENT;
  double defaults[64];
  double *heap = NULL;
  if (!params) {
    double *d = defaults;
    if (f->nparams > 64) {
      d = heap = malloc(sizeof *heap * (size_t)f->nparams);
      if (!d)
        return DNC_ERR_ARGUMENT;
    }
    for (int i = 0; i < f->nparams; i++)
      d[i] = f->params[i].def;
    params = d;
  }
  for (size_t i = 0; i < n; i++)
    y[i] = dnc_interp(f, x[i], params);
  free(heap);
  return DNC_OK;
}
