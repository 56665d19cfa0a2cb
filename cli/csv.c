/*
 * csv.c - reading a CSV file with a header line, every field located.
 *
 * Fields are separated by commas; a field may be in double quotes, with ""
 * for a quote inside (RFC 4180), and then may hold commas and newlines.
 * White space around a field is not part of it. Blank lines are skipped;
 * lines end with LF or CRLF; a UTF-8 byte order mark at the start is
 * skipped. The file becomes a dnc source (the same checks: no NUL, valid
 * UTF-8; up to DNC_CSV_MAX_BYTES, not a source's 4 MiB), so that errors
 * render as FILE:LINE:COL with the line and a caret.
 *
 * Memory: the text, one copy of it in which the fields are unquoted in
 * place and ended by NULs, and a pointer and a location per cell,
 * allocated once for the rows counted beforehand: about 3 times the file
 * for short numbers. (Each quoted field took a buffer as long as the
 * rest of the file before, so that a file of 40,000 quoted numbers, 440
 * KB, asked for gigabytes.)
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

typedef struct field {
  char *text;
  dnc_loc loc;
} field;

/* The largest --data file: 256 MiB, some 10 million points (fitted in
 * minutes); locations are 32-bit offsets, so at most 4 GiB in any case. */
#define DNC_CSV_MAX_BYTES ((size_t)256 << 20)

typedef struct reader {
  dnc_mod *m;
  const dnc_source *src;
  char *work; /* src's text, len + 1 bytes: the fields unquoted in place */
  size_t i;
} reader;

static int at_line_end(const reader *r)
{
  return r->i >= r->src->len || r->src->text[r->i] == '\n' ||
         (r->src->text[r->i] == '\r' &&
          (r->i + 1 >= r->src->len || r->src->text[r->i + 1] == '\n'));
}

static void skip_blank(reader *r)
{
  while (r->i < r->src->len && (r->src->text[r->i] == ' ' ||
                                r->src->text[r->i] == '\t'))
    r->i++;
}

static void error_at(reader *r, size_t start, size_t end, const char *msg)
{
  dnc_diag_add(&r->m->diags, DNC_SEV_ERROR, r->src,
               (dnc_loc){(uint32_t)start, (uint32_t)end}, "%s", msg);
}

/* One field; 0 on a syntax error (reported). */
static int read_field(reader *r, field *f)
{
  const char *t = r->src->text;
  skip_blank(r);
  size_t start = r->i;
  if (r->i < r->src->len && t[r->i] == '"') {
    /* the field's text goes where its quotes were: never past what has
     * been read, and the reading is of src's text, not of work */
    char *buf = r->work + start;
    size_t k = 0;
    r->i++;
    for (;;) {
      if (r->i >= r->src->len) {
        error_at(r, start, start + 1, "unterminated quoted field");
        return 0;
      }
      if (t[r->i] == '"') {
        if (r->i + 1 < r->src->len && t[r->i + 1] == '"') {
          buf[k++] = '"';
          r->i += 2;
          continue;
        }
        r->i++;
        break;
      }
      buf[k++] = t[r->i++];
    }
    buf[k] = '\0';
    f->text = buf;
    f->loc = (dnc_loc){(uint32_t)start, (uint32_t)r->i};
    skip_blank(r);
    if (!at_line_end(r) && t[r->i] != ',') {
      error_at(r, r->i, r->i + 1, "a quoted field must end at a comma or "
                                  "the end of the line");
      return 0;
    }
    return 1;
  }
  while (!at_line_end(r) && t[r->i] != ',')
    r->i++;
  size_t end = r->i;
  while (end > start && (t[end - 1] == ' ' || t[end - 1] == '\t'))
    end--;
  r->work[end] = '\0'; /* a separator, a line end or blanks: read */
  f->text = r->work + start;
  f->loc = (dnc_loc){(uint32_t)start, (uint32_t)(end > start ? end : start + 1)};
  return 1;
}

/* The fields of one line into *out (a malloc'd array); -1 on an error. */
static int read_line(reader *r, field **out)
{
  int n = 0, cap = 8;
  field *v = malloc(sizeof *v * (size_t)cap);
  for (;;) {
    if (n == cap)
      v = realloc(v, sizeof *v * (size_t)(cap *= 2));
    if (!v)
      dnc_die(__FILE__, __LINE__, "out of memory");
    if (!read_field(r, &v[n])) {
      free(v);
      return -1;
    }
    n++;
    if (r->i < r->src->len && r->src->text[r->i] == ',') {
      r->i++;
      continue;
    }
    break;
  }
  if (r->i < r->src->len && r->src->text[r->i] == '\r')
    r->i++;
  if (r->i < r->src->len && r->src->text[r->i] == '\n')
    r->i++;
  *out = v;
  return n;
}

/* Skips lines holding only white space. */
static void skip_blank_lines(reader *r)
{
  for (;;) {
    size_t j = r->i;
    while (j < r->src->len && (r->src->text[j] == ' ' ||
                               r->src->text[j] == '\t' || r->src->text[j] == '\r'))
      j++;
    if (j < r->src->len && r->src->text[j] == '\n') {
      r->i = j + 1;
      continue;
    }
    if (j >= r->src->len)
      r->i = j;
    return;
  }
}

/* ---- counting records */

/* Where a record ends, found byte by byte as read_line reads: a quote
 * opens a quoted field only at the start of a field (after blanks), ""
 * inside one is a quote, and a line end outside quotes ends a record,
 * counted when it held more than blanks (skip_blank_lines). */
typedef struct scan {
  enum { FIELD_START, UNQUOTED, QUOTED, QUOTE_SEEN } state;
  int content; /* the line so far holds more than blanks */
  long records;
} scan;

static void scan_byte(scan *k, char ch)
{
  switch (k->state) {
  case QUOTED:
    if (ch == '"')
      k->state = QUOTE_SEEN;
    return;
  case QUOTE_SEEN:
    if (ch == '"') {
      k->state = QUOTED;
      return;
    }
    k->state = UNQUOTED; /* what follows the closing quote */
    break;
  case FIELD_START:
    if (ch == '"') {
      k->state = QUOTED;
      k->content = 1;
      return;
    }
    if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
      k->state = UNQUOTED;
      k->content = 1;
    }
    break;
  case UNQUOTED:
    break;
  }
  if (ch == ',') {
    k->state = FIELD_START;
    k->content = 1;
  } else if (ch == '\n') {
    k->records += k->content;
    k->content = 0;
    k->state = FIELD_START;
  }
}

/* The CSV in src into c; 0 on errors. */
static int parse(dnc_mod *m, const dnc_source *src, dnc_csv *c)
{
  c->src = src;
  reader r = {m, src, dnc_arena_alloc(m->arena, src->len + 1), 0};
  memcpy(r.work, src->text, src->len);
  r.work[src->len] = '\0';
  /* the records, for arrays of the right size at once (growing them in
   * the arena would leave every smaller one behind); a file that the
   * count misjudges is one parse reports an error in, and they grow */
  scan sc = {FIELD_START, 0, 0};
  for (size_t j = 0; j < src->len; j++)
    scan_byte(&sc, src->text[j]);
  long counted = sc.records + sc.content - 1; /* less the header */
  /* a UTF-8 byte order mark, which spreadsheets write ("CSV UTF-8"), is
   * not part of the first column's name */
  r.i = dnc_source_bom_len(src);
  skip_blank_lines(&r);
  if (r.i >= src->len) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, src, DNC_NOLOC,
                 "empty file: a CSV file starts with a header line naming "
                 "its columns");
    return 0;
  }
  field *h;
  int nh = read_line(&r, &h);
  if (nh < 0)
    return 0;
  c->ncols = nh;
  c->head = dnc_arena_alloc(m->arena, sizeof *c->head * (size_t)nh);
  c->head_loc = dnc_arena_alloc(m->arena, sizeof *c->head_loc * (size_t)nh);
  for (int k = 0; k < nh; k++) {
    c->head[k] = h[k].text;
    c->head_loc[k] = h[k].loc;
  }
  free(h);
  int cap = 0;
  for (;;) {
    skip_blank_lines(&r);
    if (r.i >= src->len)
      break;
    size_t line_start = r.i;
    field *v;
    int n = read_line(&r, &v);
    if (n < 0)
      return 0;
    if (n != nh) {
      size_t e = line_start;
      while (e < src->len && src->text[e] != '\n' && src->text[e] != '\r')
        e++;
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, src,
                   (dnc_loc){(uint32_t)line_start, (uint32_t)e},
                   "%d field%s where the header has %d", n, n == 1 ? "" : "s",
                   nh);
      free(v);
      return 0;
    }
    if (c->nrows == cap) {
      long want = cap ? 2L * cap : counted > 0 ? counted : 1;
      int nc = want < INT_MAX ? (int)want : INT_MAX;
      char **cell = dnc_arena_alloc(m->arena, sizeof *cell * (size_t)nc * nh);
      dnc_loc *loc = dnc_arena_alloc(m->arena, sizeof *loc * (size_t)nc * nh);
      if (cap) {
        memcpy(cell, c->cell, sizeof *cell * (size_t)cap * nh);
        memcpy(loc, c->cell_loc, sizeof *loc * (size_t)cap * nh);
      }
      c->cell = cell;
      c->cell_loc = loc;
      cap = nc;
    }
    for (int k = 0; k < n; k++) {
      c->cell[(size_t)c->nrows * nh + k] = v[k].text;
      c->cell_loc[(size_t)c->nrows * nh + k] = v[k].loc;
    }
    c->nrows++;
    free(v);
  }
  return 1;
}

/* path ("-": standard input) as a source of up to DNC_CSV_MAX_BYTES; NULL
 * with an error (cannot open or read it, a directory, too large). */
static const dnc_source *read_csv_file(dnc_mod *m, const char *path)
{
  int is_stdin = !strcmp(path, "-");
  const char *shown = is_stdin ? "<stdin>" : path;
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "cannot open '%s': %s", path, strerror(errno));
    return NULL;
  }
  struct stat st = {0};
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "'%s' is a directory, not a file", shown);
    if (!is_stdin)
      fclose(f);
    return NULL;
  }
  if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > DNC_CSV_MAX_BYTES) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "'%s' is too large: %lld bytes, at most %zu (256 MiB) are "
                 "accepted; fit a sample of its rows", shown,
                 (long long)st.st_size, DNC_CSV_MAX_BYTES);
    if (!is_stdin)
      fclose(f);
    return NULL;
  }
  /* the size of a regular file at once, else doubling; at most one byte
   * past the limit, so that a stream is bounded too */
  size_t len;
  int too_large, saved_errno;
  char *buf = dnc_read_bounded(f, S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536,
                               DNC_CSV_MAX_BYTES, &len, &too_large, &saved_errno);
  if (!is_stdin)
    fclose(f);
  const dnc_source *src = NULL;
  if (saved_errno)
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "cannot read '%s': %s", shown, strerror(saved_errno));
  else if (too_large)
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "'%s' is too large: more than %zu bytes (256 MiB); fit a "
                 "sample of its rows", shown, DNC_CSV_MAX_BYTES);
  else
    src = dnc_mod_add_source(m, shown, buf, len);
  free(buf);
  return src;
}

/* Lines that end in CR alone (classic Mac OS's) read as one line: "a
 * header line and no points". Said where the first one is. */
static int cr_alone(dnc_mod *m, const dnc_source *src)
{
  for (size_t i = 0; i < src->len; i++)
    if (src->text[i] == '\r' && (i + 1 == src->len || src->text[i + 1] != '\n')) {
      if (i + 1 == src->len)
        return 1; /* a last CR alone ends the file, as a newline */
      dnc_diag_add(&m->diags, DNC_SEV_ERROR, src,
                   (dnc_loc){(uint32_t)i, (uint32_t)i + 1},
                   "a line ends in a carriage return alone: the file's lines "
                   "must end in LF or CRLF");
      return 0;
    }
  return 1;
}

int dnc_csv_read(dnc_mod *m, const char *path, dnc_csv *c)
{
  memset(c, 0, sizeof *c);
  const dnc_source *src = read_csv_file(m, path);
  if (!src || !dnc_source_check_bytes(&m->diags, src) || !cr_alone(m, src))
    return 0;
  return parse(m, src, c);
}

/* ---- the header and the first rows of a file of any size */

int dnc_csv_read_head(dnc_mod *m, const char *path, int nrows, dnc_csv *c)
{
  memset(c, 0, sizeof *c);
  FILE *f = fopen(path, "rb");
  if (!f) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "cannot open '%s': %s", path, strerror(errno));
    return 0;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "'%s' is a directory, not a CSV file", path);
    fclose(f);
    return 0;
  }
  /* read in blocks until the header and nrows records are complete: at
   * most one block more than they need, however large the file */
  scan k = {FIELD_START, 0, 0};
  size_t len = 0, cap = 0;
  char *buf = NULL;
  int failed = 0;
  while (k.records <= nrows) {
    if (len > DNC_MAX_SOURCE_BYTES)
      break;
    if (cap - len < 65536) {
      cap = cap ? 2 * cap : 65536;
      if (!(buf = realloc(buf, cap)))
        dnc_die(__FILE__, __LINE__, "out of memory");
    }
    size_t got = fread(buf + len, 1, cap - len, f), used = 0;
    while (used < got && k.records <= nrows) /* the rest is not needed */
      scan_byte(&k, buf[len + used++]);
    len += used;
    if (got == 0) {
      failed = ferror(f);
      break;
    }
  }
  int saved_errno = errno;
  fclose(f);
  int ok = 0;
  if (failed)
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "cannot read '%s': %s", path, strerror(saved_errno));
  else if (len > DNC_MAX_SOURCE_BYTES)
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "'%s' is too large: its header and first %d row%s take "
                 "more than %u bytes", path, nrows, nrows == 1 ? "" : "s",
                 DNC_MAX_SOURCE_BYTES);
  else {
    const dnc_source *src = dnc_mod_add_source(m, path, buf, len);
    ok = dnc_source_check_bytes(&m->diags, src) && cr_alone(m, src) &&
         parse(m, src, c);
  }
  free(buf);
  return ok;
}

int dnc_csv_column(dnc_mod *m, const dnc_csv *c, const char *name,
                   const char *opt)
{
  long n;
  int by_number = dnc_cli_int(name, 1, c->ncols, &n);
  for (int k = 0; k < c->ncols; k++)
    if (!strcmp(c->head[k], name)) {
      if (by_number && n - 1 != k) {
        /* --x 1 with a column named '1' elsewhere: the name won, not a
         * word said (x from another column than the user counted) */
        dnc_diag_add(&m->diags, DNC_SEV_ERROR, c->src, c->head_loc[k],
                     "'%s' is both column %ld and the name of column %d; "
                     "rename the column", name, n, k + 1);
        return -1;
      }
      for (int j = k + 1; j < c->ncols; j++)
        if (!strcmp(c->head[j], name)) { /* which one is meant? */
          dnc_diag_add(&m->diags, DNC_SEV_ERROR, c->src, c->head_loc[j],
                       "'%s' names columns %d and %d of the header; choose "
                       "one by its number", name, k + 1, j + 1);
          return -1;
        }
      return k;
    }
  if (by_number)
    return (int)n - 1;
  const char **cands = calloc((size_t)c->ncols + 1, sizeof *cands);
  size_t len = 0;
  for (int k = 0; k < c->ncols; k++) {
    cands[k] = c->head[k];
    len += strlen(c->head[k]) + 4;
  }
  char *list = calloc(len + 1, 1);
  for (int k = 0; k < c->ncols; k++) {
    if (k)
      strcat(list, ", ");
    strcat(list, "'");
    strcat(list, c->head[k]);
    strcat(list, "'");
  }
  const char *best = dnc_did_you_mean(name, cands, c->ncols);
  /* one column whose name holds another separator: a file that is not
   * comma-separated (x;y, or tab-separated) */
  const char *sep = NULL;
  if (c->ncols == 1)
    sep = strchr(c->head[0], ';') ? "';'" : strchr(c->head[0], '\t') ? "tab"
                                  : strchr(c->head[0], '|') ? "'|'" : NULL;
  char hint[96] = "";
  if (sep && !best)
    snprintf(hint, sizeof hint, "; the file looks %s-separated, and dnc "
             "reads commas (convert it, e.g. with tr '%s' ',')", sep,
             !strcmp(sep, "tab") ? "\\t" : sep[1] == ';' ? ";" : "|");
  dnc_diag_add(&m->diags, DNC_SEV_ERROR, c->src, c->head_loc[0],
               "no column '%s'%s%s in the header (it has %s)%s%s%s%s", name,
               opt ? " for " : "", opt ? opt : "", list,
               best ? "; did you mean '" : "", best ? best : "",
               best ? "'?" : "", hint);
  free(list);
  free(cands);
  return -1;
}

int dnc_csv_number(dnc_mod *m, const dnc_csv *c, int row, int col,
                   int finite, double *v)
{
  size_t k = (size_t)row * c->ncols + col;
  const char *s = c->cell[k];
  if (!dnc_cli_number(s, v)) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, c->src, c->cell_loc[k],
                 *s ? "not a number in column '%s': '%.40s'"
                    : "empty field in column '%s'%.0s",
                 c->head[col], s);
    return 0;
  }
  /* strtod's HUGE_VAL with ERANGE (dnc_cli_number clears errno): a
   * number written out, too large for a double, not an infinity (1e400
   * was called "an infinite value") */
  if (finite && isinf(*v) && errno == ERANGE) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, c->src, c->cell_loc[k],
                 "'%.40s' in column '%s' is outside the range of a double "
                 "(magnitude up to 1.8e308): the points must be finite", s,
                 c->head[col]);
    return 0;
  }
  if (finite && !isfinite(*v)) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, c->src, c->cell_loc[k],
                 "%s in column '%s': the points must be finite",
                 isnan(*v) ? "NaN" : "an infinite value", c->head[col]);
    return 0;
  }
  return 1;
}
