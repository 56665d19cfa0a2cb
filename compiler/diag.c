/*
 * diag.c - diagnostics: collected while compiling, rendered gcc-style.
 *
 *   norms.dn:3:15: error: unknown name 'alpah'
 *       3 | fn f(x) = tanh(alpah * x)
 *         |                ^~~~~
 *   norms.dn:3:15: note: did you mean 'alpha'?
 *
 * Columns count code points, so a caret sits under the right character of
 * a line with UTF-8 in a comment before it; tabs are copied into the caret
 * line so that it stays aligned however the terminal expands them.
 */
#include <string.h>
#include <strings.h>
#include <stdlib.h>

#include "dnc_int.h"

/* line and column of off, counted from from (at line *line, column *col) */
static void linecol_from(const dnc_source *src, uint32_t from, uint32_t off,
                         int *line, int *col)
{
  int l = *line, c = *col;
  if (off > src->len)
    off = (uint32_t)src->len;
  if (from == 0 && dnc_source_bom_len(src) <= off)
    from = (uint32_t)dnc_source_bom_len(src);
  for (uint32_t i = from; i < off; i++) {
    unsigned char ch = (unsigned char)src->text[i];
    if (ch == '\n') {
      l++;
      c = 1;
    } else if ((ch & 0xC0) != 0x80) {
      c++;
    }
  }
  *line = l;
  *col = c;
}

/* the same, back from from to off < from: unused lets are reported in
 * reverse order; the work is the distance moved, and the part of off's
 * line before it when a line end is crossed */
static void linecol_back(const dnc_source *src, uint32_t from, uint32_t off,
                         int *line, int *col)
{
  const unsigned char *t = (const unsigned char *)src->text;
  int nl = 0, cps = 0;
  for (uint32_t i = off; i < from; i++) {
    nl += t[i] == '\n';
    cps += t[i] != '\n' && (t[i] & 0xC0) != 0x80;
  }
  if (!nl) {
    *col -= cps;
    return;
  }
  *line -= nl;
  uint32_t ls = off;
  while (ls > 0 && t[ls - 1] != '\n')
    ls--;
  *col = 1;
  linecol_from(src, ls, off, line, col);
}

void dnc_loc_linecol(const dnc_source *src, uint32_t off, int *line, int *col)
{
  *line = *col = 1;
  linecol_from(src, 0, off, line, col);
}

void dnc_diag_vadd(dnc_diags *d, dnc_severity sev, const dnc_source *src,
                   dnc_loc loc, const char *fmt, va_list ap)
{
  if (sev == DNC_SEV_ERROR) {
    d->nerrors++;
    if (d->nerrors > DNC_MAX_ERRORS) {
      d->suppressed++;
      return;
    }
  } else if (sev == DNC_SEV_WARNING) {
    d->nwarnings++;
  } else if (d->nerrors > DNC_MAX_ERRORS) {
    return; /* a note on a suppressed error */
  }
  dnc_diag *dg = dnc_arena_alloc(d->arena, sizeof *dg);
  dg->sev = sev;
  dg->src = src;
  dg->loc = loc;
  if (src && loc.start != UINT32_MAX) {
    /* from the last one's place when it is before: 200,000 warnings over
     * a 4 MB source were 10^11 steps counted from the start each time */
    uint32_t off = loc.start > src->len ? (uint32_t)src->len : loc.start;
    if (d->lc_src != src) {
      d->lc_src = src;
      d->lc_off = 0;
      d->lc_line = d->lc_col = 1;
    }
    if (off >= d->lc_off)
      linecol_from(src, d->lc_off, off, &d->lc_line, &d->lc_col);
    else
      linecol_back(src, d->lc_off, off, &d->lc_line, &d->lc_col);
    d->lc_off = off;
    dg->line = d->lc_line;
    dg->col = d->lc_col;
  }
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  dg->msg = dnc_arena_alloc(d->arena, (size_t)n + 1);
  vsnprintf(dg->msg, (size_t)n + 1, fmt, ap);
  if (d->tail)
    d->tail->next = dg;
  else
    d->head = dg;
  d->tail = dg;
}

void dnc_diag_add(dnc_diags *d, dnc_severity sev, const dnc_source *src,
                  dnc_loc loc, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  dnc_diag_vadd(d, sev, src, loc, fmt, ap);
  va_end(ap);
}

static const char *sev_name(dnc_severity s)
{
  switch (s) {
  case DNC_SEV_ERROR: return "error";
  case DNC_SEV_WARNING: return "warning";
  case DNC_SEV_NOTE: return "note";
  }
  return "?";
}

/* Writes byte c of a source line so that the terminal shows one cell for
 * every code point; control bytes (which the byte check rejects before
 * parsing, but a note may still point near) are shown as '?'. */
static void put_source_byte(FILE *out, unsigned char c)
{
  if (c == '\t' || c >= 0x20)
    fputc(c, out);
  else
    fputc('?', out);
}

enum { SHOWN_LINE = 240 }; /* bytes of a source line shown, at most */

void dnc_diag_render(FILE *out, const dnc_diag *dg)
{
  const dnc_source *src = dg->src;
  if (!src) {
    fprintf(out, "dnc: %s: %s\n", sev_name(dg->sev), dg->msg);
    return;
  }
  if (dg->loc.start == UINT32_MAX) {
    fprintf(out, "%s: %s: %s\n", src->name, sev_name(dg->sev), dg->msg);
    return;
  }
  fprintf(out, "%s:%d:%d: %s: %s\n", src->name, dg->line, dg->col,
          sev_name(dg->sev), dg->msg);
  /* the source line holding loc.start */
  size_t s = dg->loc.start > src->len ? src->len : dg->loc.start;
  size_t b = s;
  while (b > 0 && src->text[b - 1] != '\n')
    b--;
  if (b == 0 && dnc_source_bom_len(src) <= s)
    b = dnc_source_bom_len(src); /* not shown: the caret would be off by one */
  size_t e = s;
  while (e < src->len && src->text[e] != '\n')
    e++;
  size_t last = e; /* a range ends at the end of this line at most */
  if (e > b && src->text[e - 1] == '\r')
    e--; /* a CRLF line end */
  /* a long line is shown around the caret, cut at both ends ("..."), so
   * that each diagnostic prints a bounded number of bytes */
  const unsigned char *t = (const unsigned char *)src->text;
  size_t lb = b, le = e;
  if (e - b > SHOWN_LINE) {
    b = s > lb + SHOWN_LINE / 3 ? s - SHOWN_LINE / 3 : lb;
    while (b > lb && (t[b] & 0xC0) == 0x80)
      b--;
    e = b + SHOWN_LINE < le ? b + SHOWN_LINE : le;
    while (e < le && (t[e] & 0xC0) == 0x80)
      e++;
  }
  char gutter[24];
  int gw = snprintf(gutter, sizeof gutter, "%5d", dg->line);
  fprintf(out, "%s | %s", gutter, b > lb ? "..." : "");
  for (size_t i = b; i < e;) {
    size_t l = t[i] < 0x80 ? 1 : dnc_utf8_len(t + i, e - i);
    if (l <= 1) {
      put_source_byte(out, t[i] < 0x80 ? t[i] : '?');
      i++;
    } else {
      fwrite(t + i, 1, l, out);
      i += l;
    }
  }
  fputs(e < le ? "...\n" : "\n", out);
  fprintf(out, "%*s | %s", gw, "", b > lb ? "   " : "");
  for (size_t i = b; i < s; i++) {
    unsigned char c = (unsigned char)src->text[i];
    if (c == '\t')
      fputc('\t', out);
    else if ((c & 0xC0) != 0x80)
      fputc(' ', out);
  }
  fputc('^', out);
  size_t end = dg->loc.end < last ? dg->loc.end : last;
  if (end > e)
    end = e;
  for (size_t i = s + 1; i < end; i++)
    if (((unsigned char)src->text[i] & 0xC0) != 0x80)
      fputc('~', out);
  fputc('\n', out);
}

void dnc_diags_render(FILE *out, const dnc_diags *d)
{
  for (const dnc_diag *dg = d->head; dg; dg = dg->next)
    dnc_diag_render(out, dg);
  if (d->suppressed)
    fprintf(out, "dnc: note: %d more error%s not shown\n", d->suppressed,
            d->suppressed == 1 ? "" : "s");
}

/* Edit distance with adjacent transpositions (optimal string alignment),
 * so that 'dty' is one edit from 'dyt'; names longer than 63 bytes are
 * never suggested. */
static int edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63)
    return 99;
  int d[64][64];
  for (size_t i = 0; i <= la; i++)
    d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++)
    d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    for (size_t j = 1; j <= lb; j++) {
      int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < best)
        best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[la][lb];
}

const char *dnc_did_you_mean(const char *name, const char *const *cands, int n)
{
  const char *best = NULL;
  int bestd = 99;
  size_t len = strlen(name);
  /* one edit for short names, two from five characters up; none for a
   * one-letter name, which is one edit from every other */
  int limit = len < 2 ? 0 : len < 5 ? 1 : 2;
  /* a name that differs only in case is the likeliest slip ('Tanh',
   * 'ALPHA'), however many letters differ */
  for (int i = 0; i < n; i++)
    if (cands[i] && strcmp(cands[i], name) && !strcasecmp(cands[i], name))
      return cands[i];
  for (int i = 0; i < n; i++) {
    if (!cands[i] || !strcmp(cands[i], name))
      continue;
    int dd = edit_distance(name, cands[i]);
    if (dd < bestd) {
      bestd = dd;
      best = cands[i];
    }
  }
  return bestd <= limit ? best : NULL;
}
