/*
 * search_cmd.c - `dnc search SPEC`: expand the space (search.c), drop the
 * candidates whose simplified DAG an earlier one has, measure the rest on
 * a thread pool (search_eval.c), rank them, write PREFIX.csv and
 * PREFIX.json.
 *
 * Resuming: measured candidates are appended to PREFIX.journal, a batch at
 * a time with one write() and an fsync(), values as C99 hex floats (exact),
 * each line ending in a checksum of the rest (" #" and 16 hex digits of
 * its FNV-1a hash). Its first line names the format and the spec's hash. A
 * run finds the journal, takes the candidates it holds (a torn last line,
 * from a kill, is cut off; a line whose checksum fails is reported, located,
 * and nothing is used) and measures the others; as every value is a
 * function of the candidate alone, the tables come out the same as an
 * uninterrupted run's. The journal is read a line at a time: it grows
 * with the space, past the 4 MiB a source file may have.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP stop the expansion or the workers
 * (between batches), and the command exits with 128 + the signal (130,
 * 143, 129), the journal kept. While the tables are written, a signal
 * removes their temporaries and the process dies of it (the same status);
 * both tables are complete before either is renamed into place, and a run
 * removes the temporaries that a killed one (SIGKILL) left. The journal
 * goes once the tables are in place.
 *
 * For tests: DNC_SEARCH_STOP_AFTER=N raises DNC_SEARCH_STOP_SIGNAL (a
 * number; SIGINT if unset) once N candidates of this run are in the
 * journal; =expand raises it before measuring, =tables halfway through
 * writing the CSV.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "runtime.h"
#include "search.h"

static const char usage[] =
    "usage: dnc search SPEC [-o PREFIX] [--threads N] [--top K] [--quiet]\n"
    "\n"
    "Expands a search space (docs/search.md) into candidate functions,\n"
    "drops those whose simplified DAGs are equal, measures each one's\n"
    "properties (zero-centred, bounded, center-sensitive, monotonic), its\n"
    "fit to LayerNorm and the spec's scores, and ranks them. Writes\n"
    "PREFIX.csv and PREFIX.json (default PREFIX: SPEC's name without its\n"
    "extension, in the current directory) and prints the top K.\n"
    "\n"
    "  -o, --output PREFIX  where the ranked tables go\n"
    "  --threads N          worker threads (default: $DNC_NUM_THREADS, else\n"
    "                       the CPUs it may run on)\n"
    "  --top K              rows of the table printed (default 10; 0: none)\n"
    "  -q, --quiet          no progress bar and no summary on stderr\n"
    "\n"
    "An interrupted search (SIGINT, SIGTERM, or killed) keeps what it has\n"
    "measured in PREFIX.journal; the same command resumes it.\n";

enum { BATCH = 64 };

static volatile sig_atomic_t interrupted; /* the signal */

static void on_signal(int sig)
{
  interrupted = sig;
}

/* while the tables are written: no partial file left */
static void on_signal_in_tables(int sig)
{
  dnc_temps_remove_now();
  signal(sig, SIG_DFL);
  raise(sig);
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
enum { NSTOP = sizeof stop_signals / sizeof *stop_signals };

static void set_handlers(void (*h)(int), struct sigaction *old)
{
  struct sigaction sa = {0};
  sa.sa_handler = h;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < NSTOP; i++)
    sigaction(stop_signals[i], &sa, old ? &old[i] : NULL);
}

static void block_signals(int how)
{
  sigset_t set;
  sigemptyset(&set);
  for (int i = 0; i < NSTOP; i++)
    sigaddset(&set, stop_signals[i]);
  sigprocmask(how, &set, NULL);
}

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ----------------------------------------------- deduplicating the keys */

typedef struct keyset {
  unsigned char **k;
  size_t *n;
  uint64_t *h;
  size_t cap, count;
} keyset;

static uint64_t fnv(const unsigned char *p, size_t n)
{
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static void keyset_grow(keyset *s)
{
  keyset o = *s;
  s->cap = o.cap ? 2 * o.cap : 1024;
  s->k = calloc(s->cap, sizeof *s->k);
  s->n = calloc(s->cap, sizeof *s->n);
  s->h = calloc(s->cap, sizeof *s->h);
  for (size_t i = 0; i < o.cap; i++)
    if (o.k[i]) {
      size_t j = o.h[i] & (s->cap - 1);
      while (s->k[j])
        j = (j + 1) & (s->cap - 1);
      s->k[j] = o.k[i];
      s->n[j] = o.n[i];
      s->h[j] = o.h[i];
    }
  free(o.k);
  free(o.n);
  free(o.h);
}

/* keep(): 1 (and remembered) when the key is new */
static int keyset_add(const unsigned char *key, size_t n, void *arg)
{
  keyset *s = arg;
  if (2 * (s->count + 1) > s->cap)
    keyset_grow(s);
  uint64_t h = fnv(key, n);
  size_t j = h & (s->cap - 1);
  for (; s->k[j]; j = (j + 1) & (s->cap - 1))
    if (s->h[j] == h && s->n[j] == n && !memcmp(s->k[j], key, n))
      return 0;
  s->k[j] = malloc(n + 1);
  memcpy(s->k[j], key, n);
  s->n[j] = n;
  s->h[j] = h;
  s->count++;
  return 1;
}

static void keyset_free(keyset *s)
{
  for (size_t i = 0; i < s->cap; i++)
    free(s->k[i]);
  free(s->k);
  free(s->n);
  free(s->h);
}

/* ------------------------------------------------------------ the run */

typedef struct run {
  const dnc_space *sp;
  const dnc_grids *g;
  dnc_cand *cands;
  int64_t ncands;
  int nm;            /* measures per candidate */
  double *values;    /* ncands x nm */
  unsigned char *done;
  int64_t *todo, ntodo, ndone_before;
  int fd;            /* the journal */
  const char *journal;
  pthread_mutex_t lock;
  int64_t written;   /* candidates this run put in the journal */
  int64_t stop_after;
  enum { STOP_NONE, STOP_EXPAND, STOP_TABLES } stop_at;
  int stop_signal;
  int write_failed;
  int progress;
  double t0, last_draw;
} run;

/* the value as the journal keeps it: exact */
static void put_hex(FILE *o, double v)
{
  if (isnan(v))
    fputs(" nan", o);
  else if (isinf(v))
    fputs(v > 0 ? " inf" : " -inf", o);
  else
    fprintf(o, " %a", v);
}

static void draw_progress(run *r, int final)
{
  double t = now();
  if (!final && t - r->last_draw < 0.1)
    return;
  r->last_draw = t;
  int64_t done = r->ndone_before + r->written, total = r->ncands;
  double rate = r->written / fmax(t - r->t0, 1e-9);
  double left = rate > 0 ? (double)(r->ntodo - r->written) / rate : 0;
  int w = 30, fill = total ? (int)(w * done / total) : w;
  char bar[64];
  for (int i = 0; i < w; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[w] = 0;
  fprintf(stderr, "\r[%s] %lld/%lld candidates  %.0f/s  %.0f s left   ", bar,
          (long long)done, (long long)total, rate, left);
  if (final)
    fputc('\n', stderr);
}

static void measure_batch(void *arg, int64_t t)
{
  run *r = arg;
  if (interrupted || r->write_failed)
    return;
  int64_t lo = t * BATCH, hi = lo + BATCH < r->ntodo ? lo + BATCH : r->ntodo;
  double *work = NULL;
  size_t cap = 0;
  char *text = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&text, &len);
  for (int64_t k = lo; k < hi; k++) {
    int64_t i = r->todo[k];
    double *v = r->values + i * r->nm;
    dnc_measure(r->sp, r->g, &r->cands[i], &work, &cap, v);
    fflush(o);
    size_t start = len;
    fprintf(o, "%lld", (long long)r->cands[i].id);
    for (int m = 0; m < r->nm; m++)
      put_hex(o, v[m]);
    fflush(o);
    fprintf(o, " #%016llx\n",
            (unsigned long long)fnv((unsigned char *)text + start, len - start));
  }
  fclose(o);
  free(work);
  pthread_mutex_lock(&r->lock);
  if (!r->write_failed) {
    /* a short write sets no errno (the one read after it was stale:
     * "Numerical result out of range"); dnc_write_fd's next write says
     * why (EFBIG past ulimit -f, ENOSPC) */
    int err = dnc_write_fd(r->fd, text, len) || fsync(r->fd) ? errno : 0;
    if (err) {
      r->write_failed = err;
    } else {
      for (int64_t k = lo; k < hi; k++)
        r->done[r->todo[k]] = 1;
      r->written += hi - lo;
      if (r->progress)
        draw_progress(r, 0);
      if (r->stop_after > 0 && r->written >= r->stop_after)
        raise(r->stop_signal);
    }
  }
  pthread_mutex_unlock(&r->lock);
  free(text);
}

/* The candidate of id, by binary search (cands are in id order). */
static int64_t find_id(const run *r, int64_t id)
{
  int64_t lo = 0, hi = r->ncands;
  while (lo < hi) {
    int64_t mid = (lo + hi) / 2;
    if (r->cands[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < r->ncands && r->cands[lo].id == id ? lo : -1;
}

/* The longest line of a journal with nm values: an id (at most 20
 * characters), each value as " %a" (at most 25: " -0x1.fffffffffffffp-1022")
 * and the checksum (" #" and 16 hex digits). A longer line is damaged. */
enum { SUM = 18 };
static size_t longest_line(int nm)
{
  return 20 + 25 * (size_t)nm + SUM;
}

/* An error on line `line` of the journal, whose first `kept` bytes are in
 * text, about its bytes [0, end). The journal is read a line at a time (it
 * grows with the space, past what a source file may hold), so the source
 * is that line alone, and the diagnostic is given its line in the file. */
static void journal_error(dnc_mod *m, const char *path, int line,
                          const char *text, size_t kept, size_t end,
                          const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void journal_error(dnc_mod *m, const char *path, int line,
                          const char *text, size_t kept, size_t end,
                          const char *fmt, ...)
{
  const dnc_source *src = dnc_mod_add_source(m, path, text, kept);
  va_list ap;
  va_start(ap, fmt);
  dnc_diag_vadd(&m->diags, DNC_SEV_ERROR, src, (dnc_loc){0, (uint32_t)end},
                fmt, ap);
  va_end(ap);
  if (m->diags.tail && m->diags.tail->src == src)
    m->diags.tail->line = line;
}

/* Takes the candidates of the journal at path, whose first line must be
 * head; *good: the bytes up to the end of its last whole line (a torn
 * last line is cut off there). 0 on errors, reported in m's diagnostics;
 * -1 for a journal of this search written by another build of dnc (or
 * one before builds were named), whose measures are not taken. */
static int read_journal(run *r, dnc_mod *m, const char *head, off_t *good)
{
  FILE *f = fopen(r->journal, "rb");
  if (!f) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "cannot open '%s': %s", r->journal, strerror(errno));
    return 0;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "'%s' is a directory, not a journal", r->journal);
    fclose(f);
    return 0;
  }
  size_t hl = strlen(head), longest = longest_line(r->nm);
  size_t cap = (longest > hl ? longest : hl) + 2, len;
  char *line = malloc(cap);
  if (!line)
    dnc_die(__FILE__, __LINE__, "out of memory");
  int ok = 0, lineno = 1, got = dnc_cli_read_line(f, line, cap, &len, 0);
  size_t kept = len < cap - 1 ? len : cap - 1;
  static const char v1[] = "dnc search journal 1 ";
  if (got >= 0 && kept >= sizeof v1 - 1 && !memcmp(line, v1, sizeof v1 - 1)) {
    journal_error(m, r->journal, 1, line, kept, 1, "this journal is of an "
                  "older dnc (format 1, without checksums); remove it to start "
                  "again");
    goto out;
  }
  /* head ends in the newline that dnc_cli_read_line drops; its part
   * before " build" is the search's, the rest dnc's build */
  size_t own = (size_t)(strstr(head, " build ") - head);
  if (got > 0 && len >= own && !memcmp(line, head, own) &&
      (len == own || line[own] == ' ') && /* not "... 12" for "... 1" */
      (len != hl - 1 || memcmp(line, head, len))) {
    ok = -1; /* this search, measured by another build of dnc */
    goto out;
  }
  if (got == 0 || (got > 0 && (len != hl - 1 || memcmp(line, head, len)))) {
    journal_error(m, r->journal, 1, line, kept, 1, "this journal is not "
                  "of this search (another spec, or the spec changed since); "
                  "remove it to start again");
    goto out;
  }
  *good = (off_t)hl;
  while (got > 0 && (got = dnc_cli_read_line(f, line, cap, &len, 0)) > 0) {
    lineno++;
    kept = len < cap - 1 ? len : cap - 1;
    /* " #" and 16 hex digits: the FNV-1a hash of what is before */
    char *send = NULL;
    unsigned long long want = 0;
    if (len > SUM && len <= longest) {
      const char *sum = line + len - SUM;
      if (sum[0] == ' ' && sum[1] == '#' && isxdigit((unsigned char)sum[2]))
        want = strtoull(sum + 2, &send, 16);
    }
    if (send != line + len ||
        want != fnv((const unsigned char *)line, len - SUM)) {
      journal_error(m, r->journal, lineno, line, kept, kept ? kept : 1,
                    "a damaged record: its checksum does not match, so "
                    "none of the journal is used; remove this line (its "
                    "candidate is measured again) or the journal");
      goto out;
    }
    const char *rec_end = line + len - SUM; /* the record */
    char *end;
    const char *p = line;
    long long id = strtoll(p, &end, 10);
    int64_t k = end == p ? -1 : find_id(r, id);
    int valid = k >= 0;
    double *v = valid ? r->values + k * r->nm : NULL;
    for (int j = 0; valid && j < r->nm; j++) {
      p = end;
      v[j] = strtod(p, &end);
      valid = end != p && (end == rec_end || *end == ' ');
    }
    if (!valid || end != rec_end) {
      journal_error(m, r->journal, lineno, line, len, len - SUM, "not a line "
                    "of this journal: a candidate's id and %d values; remove "
                    "the journal to start again", r->nm);
      goto out;
    }
    if (!r->done[k]) {
      r->done[k] = 1;
      r->ndone_before++;
    }
    *good += (off_t)len + 1;
  }
  if (got < 0) {
    dnc_diag_add(&m->diags, DNC_SEV_ERROR, NULL, DNC_NOLOC,
                 "cannot read '%s': %s", r->journal, strerror(errno));
    goto out;
  }
  ok = 1; /* got == 0: the end, after a torn last line or none */
out:
  free(line);
  fclose(f);
  return ok;
}

/* Takes what an earlier run left in the journal, and opens it for more.
 * 0 on errors (reported in m's diagnostics or on stderr). */
static int open_journal(run *r, dnc_mod *m, uint64_t hash)
{
  char head[128];
  const char *build = dnc_build_id();
  snprintf(head, sizeof head, "dnc search journal 2 %016llx %lld build "
           "%016llx\n", (unsigned long long)hash, (long long)r->ncands,
           (unsigned long long)fnv((const unsigned char *)build,
                                   strlen(build)));
  /* locked before it is read: a second search writing the same journal
   * would interleave its records with this one's */
  struct stat st;
  for (int tries = 0;; tries++) {
    r->fd = open(r->journal, O_WRONLY | O_APPEND | O_CREAT, 0666);
    if (r->fd < 0) {
      dnc_cli_error("cannot write '%s': %s", r->journal, strerror(errno));
      return 0;
    }
    if (flock(r->fd, LOCK_EX | LOCK_NB)) {
      if (errno == EWOULDBLOCK)
        dnc_cli_error("'%s' is being written by another dnc search of the "
                      "same -o; wait for it, or use another -o", r->journal);
      else
        dnc_cli_error("cannot lock '%s': %s", r->journal, strerror(errno));
      return 0;
    }
    if (fstat(r->fd, &st)) {
      dnc_cli_error("cannot write '%s': %s", r->journal, strerror(errno));
      return 0;
    }
    /* the file locked must still be the journal: a search that finished
     * between this open and this flock removed it (and a third may have
     * made a new one, which this one would then run beside, and remove
     * at its end); then again, with the file there now */
    struct stat now;
    if ((stat(r->journal, &now) == 0 && now.st_dev == st.st_dev &&
         now.st_ino == st.st_ino) || tries == 100)
      break;
    close(r->fd);
    r->fd = -1;
  }
  if (st.st_size > 0) {
    off_t good = 0;
    int got = read_journal(r, m, head, &good);
    if (!got)
      return 0;
    if (got < 0) {
      /* a dnc rebuilt since (its measures may have changed: mixing the
       * two in one table would be silent): measured again */
      fprintf(stderr, "dnc search: note: '%s' was written by another build "
              "of dnc; its candidates are measured again\n", r->journal);
      good = 0;
    }
    if (ftruncate(r->fd, good)) {
      dnc_cli_error("cannot write '%s': %s", r->journal, strerror(errno));
      return 0;
    }
    if (good)
      return 1;
  }
  if (write(r->fd, head, strlen(head)) != (ssize_t)strlen(head) ||
      fsync(r->fd)) {
    dnc_cli_error("cannot write '%s': %s", r->journal, strerror(errno));
    return 0;
  }
  return 1;
}

/* ---------------------------------------------------------- the tables */

typedef struct tables {
  const run *r;
  const int64_t *order;
  int64_t nraw;
} tables;

static int is_flag(int k)
{
  return k == DNC_M_ZERO || k == DNC_M_BOUNDED || k == DNC_M_CENTER ||
         k == DNC_M_MONO || k == DNC_M_FINITE;
}

/* A value of the CSV: a NaN is "nan" whatever its sign bit (x86-64's
 * invalid operations set it, and "-nan" is a spelling some CSV readers do
 * not take: pandas with keep_default_na=False, R); infinities "inf" and
 * "-inf"; finite values as dnc_format_number writes them. */
static void csv_number(char *b, size_t n, double v)
{
  if (isnan(v))
    snprintf(b, n, "nan");
  else
    dnc_format_number(b, n, v);
}

static int write_csv(FILE *o, void *arg)
{
  const tables *t = arg;
  const run *r = t->r;
  fputs("rank,id,name", o);
  for (int k = 0; k < r->nm; k++)
    fprintf(o, ",%s", dnc_space_column(r->sp, k));
  fputs(",source\n", o);
  for (int64_t n = 0; n < r->ncands; n++) {
    const dnc_cand *c = &r->cands[t->order[n]];
    const double *v = r->values + t->order[n] * r->nm;
    if (r->stop_at == STOP_TABLES && n == r->ncands / 2) {
      fflush(o);
      raise(r->stop_signal);
    }
    fprintf(o, "%lld,%lld,", (long long)n + 1, (long long)c->id);
    dnc_cli_csv_field(o, c->name);
    for (int k = 0; k < r->nm; k++) {
      char b[40];
      csv_number(b, sizeof b, v[k]);
      fprintf(o, ",%s", b);
    }
    fputc(',', o);
    dnc_cli_csv_field(o, c->source);
    fputc('\n', o);
  }
  return 0;
}

static int write_json(FILE *o, void *arg)
{
  const tables *t = arg;
  const run *r = t->r;
  fputs("{\n  \"spec\": ", o);
  dnc_cli_json_string(o, r->sp->path);
  fprintf(o, ",\n  \"candidates\": %lld,\n  \"distinct\": %lld,\n"
             "  \"ranked\": [", (long long)t->nraw, (long long)r->ncands);
  for (int64_t n = 0; n < r->ncands; n++) {
    const dnc_cand *c = &r->cands[t->order[n]];
    const double *v = r->values + t->order[n] * r->nm;
    fprintf(o, "%s\n    {\"rank\": %lld, \"id\": %lld, \"name\": ",
            n ? "," : "", (long long)n + 1, (long long)c->id);
    dnc_cli_json_string(o, c->name);
    for (int k = 0; k < r->nm; k++) {
      char b[40];
      fprintf(o, ", \"%s\": ", dnc_space_column(r->sp, k));
      if (k < DNC_M__COUNT && is_flag(k))
        fputs(v[k] != 0 ? "true" : "false", o);
      else if (!isfinite(v[k]))
        fputs("null", o);
      else {
        dnc_format_number(b, sizeof b, v[k]);
        fputs(b, o);
      }
    }
    fputs(", \"source\": ", o);
    dnc_cli_json_string(o, c->source);
    fputc('}', o);
  }
  fputs("\n  ]\n}\n", o);
  return 0;
}

static const run *sort_run;

static int by_rank(const void *a, const void *b)
{
  int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
  const run *r = sort_run;
  return dnc_space_compare(r->sp, r->values + i * r->nm, r->cands[i].id,
                           r->values + j * r->nm, r->cands[j].id);
}

static void print_top(const run *r, const int64_t *order, long top)
{
  if (top <= 0)
    return;
  printf("%-5s %-5s %-4s %-12s %-32s %s\n", "rank", "props", "ZBCM",
         "residual", "name", "source");
  for (int64_t n = 0; n < r->ncands && n < top; n++) {
    const double *v = r->values + order[n] * r->nm;
    char flags[5] = {v[DNC_M_ZERO] ? 'Z' : '-', v[DNC_M_BOUNDED] ? 'B' : '-',
                     v[DNC_M_CENTER] ? 'C' : '-', v[DNC_M_MONO] ? 'M' : '-', 0};
    /* a NaN residual as the CSV spells it, not printf's "-nan" */
    double res = v[DNC_M_RESIDUAL];
    if (isnan(res))
      res = fabs(res);
    printf("%-5lld %-5d %-4s %-12.6g %-32s %s\n", (long long)n + 1,
           (int)v[DNC_M_PROPS], flags, res,
           r->cands[order[n]].name, r->cands[order[n]].source);
  }
}

/* PREFIX.csv and PREFIX.json: both written to temporaries, then renamed
 * into place with the stop signals blocked, so that they appear together
 * (or, on an error or a signal, neither changes). On return the signals
 * are still blocked: the caller removes the journal first. */
static int write_tables(const char *csv, const char *json, tables *tb)
{
  const char *path[2] = {csv, json};
  int (*fn[2])(FILE *, void *) = {write_csv, write_json};
  dnc_outpath op[2] = {{0}};
  char *tmp[2] = {NULL, NULL};
  int rc = 0, i;
  for (i = 0; i < 2 && !rc; i++) {
    char why[600];
    if (dnc_outpath_resolve(path[i], dnc_cli_inputs, dnc_cli_ninputs, &op[i],
                            why, sizeof why)) {
      dnc_cli_error("%s", why);
      rc = -1;
      break;
    }
    tmp[i] = dnc_outpath_temp(&op[i]);
    FILE *o = tmp[i] ? fopen(tmp[i], "w") : NULL;
    int wrc = o ? fn[i](o, tb) : -1, err = errno;
    if (o && (fflush(o) || ferror(o)))
      wrc = -1, err = errno;
    if (o && fclose(o) && !wrc)
      wrc = -1, err = errno;
    mode_t mask = umask(0); /* a new file's mode (mkstemp made it 0600) */
    umask(mask);
    if (!wrc && chmod(tmp[i], 0666 & ~mask))
      wrc = -1, err = errno;
    if (wrc) {
      dnc_cli_error("cannot write '%s': %s", path[i],
                    strerror(err ? err : EIO));
      rc = -1;
    }
  }
  block_signals(SIG_BLOCK);
  for (i = 0; i < 2 && !rc; i++)
    if (dnc_outpath_commit(&op[i], tmp[i])) {
      dnc_cli_error("cannot write '%s': %s", path[i], strerror(errno));
      rc = -1;
    }
  for (i = 0; i < 2; i++) {
    if (tmp[i] && rc) {
      unlink(tmp[i]);
      dnc_temp_forget(tmp[i]);
    }
    free(tmp[i]);
    dnc_outpath_free(&op[i]);
  }
  return rc;
}

/* ---------------------------------------------------------- the command */

typedef struct search_args {
  const char *spec, *prefix;
  long threads, top;
  int quiet;
} search_args;

/* SPEC: one at a time */
static int spec_arg(const dnc_cli *c, void *arg, const char *s)
{
  search_args *a = arg;
  if (dnc_cli_dashed(s))
    return DNC_CLI_UNKNOWN;
  if (a->spec)
    return dnc_cli_usage_error(c, "one spec at a time ('%s' and '%s')",
                               a->spec, s);
  a->spec = s;
  return -1;
}

static int parse(const dnc_cli *c, int argc, char **argv, search_args *a)
{
  a->top = 10;
  const dnc_opt opts[] = {
      {.s = "-o", .l = "--output", .kind = DNC_OPT_STRING, .dest = &a->prefix,
       .what = "a prefix for the output files"},
      {.l = "--threads", .kind = DNC_OPT_INT, .dest = &a->threads, .lo = 1,
       .hi = 1024, .what = "a whole number from %ld to %ld"},
      {.l = "--top", .kind = DNC_OPT_INT, .dest = &a->top, .lo = 0,
       .hi = 1000000, .what = "a whole number from %ld to %ld"},
      {.s = "-q", .l = "--quiet", .kind = DNC_OPT_FLAG, .dest = &a->quiet},
      {0},
  };
  int rc = dnc_cli_parse(c, argc, argv, opts, spec_arg, a);
  if (rc >= 0)
    return rc;
  if (!a->spec)
    return dnc_cli_usage_error(c, "no search spec");
  /* "-" is standard output elsewhere: it wrote -.csv and -.json */
  if (a->prefix && !strcmp(a->prefix, "-"))
    return dnc_cli_usage_error(c, "-o takes a prefix of the tables' files "
                                  "(PREFIX.csv, PREFIX.json), which are not "
                                  "standard output ('-'): give a name");
  /* the default prefix is the spec's name: '-' wrote -.csv and -.json */
  if (!strcmp(a->spec, "-") && !a->prefix)
    return dnc_cli_usage_error(c, "the spec is read from standard input "
                                  "('-'), so the tables need a prefix: give "
                                  "-o PREFIX");
  return -1;
}

/* An output path that is the spec itself (by any name, or the file
 * standard input is for the spec "-"): reported, 1. `dnc search t.csv`
 * would otherwise write its table over its spec. */
static int is_the_spec(const char *out, const char *spec)
{
  struct stat os, ss;
  if (stat(out, &os) || dnc_input_stat(spec, &ss) ||
      os.st_dev != ss.st_dev || os.st_ino != ss.st_ino)
    return 0;
  dnc_cli_error("the output '%s' is the input '%s': refusing to overwrite "
                "it; choose another with -o", out,
                strcmp(spec, "-") ? spec : "<stdin>");
  return 1;
}

/* SPEC's name without folders and extension */
static char *default_prefix(const char *spec)
{
  const char *b = strrchr(spec, '/');
  b = b ? b + 1 : spec;
  const char *dot = strrchr(b, '.');
  size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
  return strndup(b, n);
}

/* Expands the space; the distinct candidates in id order (fewer when a
 * signal stops it). */
static dnc_cand *expand(const dnc_space *sp, int64_t *n)
{
  keyset ks = {0};
  int64_t size = dnc_space_size(sp), cap = 1024;
  dnc_cand *c = malloc(sizeof *c * (size_t)cap);
  *n = 0;
  for (int64_t id = 0; id < size && !interrupted; id++) {
    if (*n == cap)
      c = realloc(c, sizeof *c * (size_t)(cap *= 2));
    if (!c)
      dnc_die(__FILE__, __LINE__, "out of memory");
    if (dnc_space_build(sp, id, &c[*n], keyset_add, &ks))
      ++*n;
  }
  keyset_free(&ks);
  return c;
}

static int cmd_search(const dnc_cli *c, int argc, char **argv)
{
  search_args a = {0};
  int rc = parse(c, argc, argv, &a);
  if (rc >= 0)
    return rc;
  if (a.prefix) {
    /* PREFIX.csv and PREFIX.json: a prefix ending in '/' (or naming a
     * directory) wrote the hidden files DIR/.csv and DIR/.json */
    size_t n = strlen(a.prefix);
    struct stat st;
    if (!n || a.prefix[n - 1] == '/' ||
        (!stat(a.prefix, &st) && S_ISDIR(st.st_mode)))
      return dnc_cli_usage_error(c, "-o takes a prefix of the tables' files "
                              "(PREFIX.csv, PREFIX.json), not the directory "
                              "'%s': give DIR/NAME", a.prefix);
  }
  rc = DNC_EXIT_INPUT;
  dnc_mod *m = dnc_mod_new();
  char *prefix = a.prefix ? strdup(a.prefix) : default_prefix(a.spec);
  char *csv = NULL, *json = NULL, *journal = NULL;
  if (asprintf(&csv, "%s.csv", prefix) < 0 ||
      asprintf(&json, "%s.json", prefix) < 0 ||
      asprintf(&journal, "%s.journal", prefix) < 0)
    dnc_die(__FILE__, __LINE__, "out of memory");
  run r = {0};
  r.fd = -1;
  const char *inputs[1] = {a.spec};
  dnc_cli_inputs = inputs; /* for write_tables, too */
  dnc_cli_ninputs = 1;
  /* and the tables' files writable as far as can be told now (not a
   * directory, not a link to nothing): refused after measuring, the run
   * was lost and its journal left behind */
  if (is_the_spec(csv, a.spec) || is_the_spec(json, a.spec) ||
      is_the_spec(journal, a.spec) || dnc_cli_check_output(csv) ||
      dnc_cli_check_output(json)) {
    free(prefix);
    free(csv);
    free(json);
    free(journal);
    dnc_mod_free(m);
    return rc;
  }
  const char *stop = getenv("DNC_SEARCH_STOP_AFTER");
  const char *stop_sig = getenv("DNC_SEARCH_STOP_SIGNAL");
  r.stop_signal = stop_sig ? atoi(stop_sig) : SIGINT;
  if (stop && !strcmp(stop, "expand"))
    r.stop_at = STOP_EXPAND;
  else if (stop && !strcmp(stop, "tables"))
    r.stop_at = STOP_TABLES;
  else
    r.stop_after = stop ? atoll(stop) : 0;
  dnc_grids *g = NULL;
  dnc_pool *pool = NULL;
  int64_t *order = NULL;
  double t0 = now();
  struct sigaction old_sa[NSTOP];
  interrupted = 0;
  set_handlers(on_signal, old_sa);
  dnc_space *sp = dnc_space_load(m, a.spec);
  fflush(stdout);
  if (dnc_cli_show(c, &m->diags) || !sp)
    goto out;
  r.sp = sp;
  r.nm = dnc_space_nmeasures(sp);
  if (r.stop_at == STOP_EXPAND)
    raise(r.stop_signal);
  r.cands = expand(sp, &r.ncands);
  double t_expand = now() - t0;
  if (interrupted) {
    fflush(stdout);
    fprintf(stderr, "dnc: interrupted before measuring: nothing written\n");
    rc = 128 + interrupted;
    goto out;
  }
  r.values = calloc((size_t)(r.ncands * r.nm + 1), sizeof *r.values);
  r.done = calloc((size_t)r.ncands + 1, 1);
  r.journal = journal;
  if (!open_journal(&r, m, dnc_space_hash(sp))) {
    dnc_cli_show(c, &m->diags);
    goto out;
  }
  r.todo = malloc(sizeof *r.todo * (size_t)(r.ncands + 1));
  for (int64_t i = 0; i < r.ncands; i++)
    if (!r.done[i])
      r.todo[r.ntodo++] = i;
  g = dnc_grids_new(sp);
  r.g = g;
  r.progress = !a.quiet && isatty(2);
  pthread_mutex_init(&r.lock, NULL);
  long nthreads = a.threads ? a.threads : dnc_pool_default_threads();
  pool = dnc_pool_new(nthreads < 1 ? 1 : (int)nthreads, 0); /* one long job */
  if (!pool)
    dnc_die(__FILE__, __LINE__, "out of memory");
  double t1 = now();
  r.t0 = t1;
  dnc_pool_run(pool, (r.ntodo + BATCH - 1) / BATCH, measure_batch, &r);
  double t_measure = now() - t1;
  if (r.progress)
    draw_progress(&r, 1);
  pthread_mutex_destroy(&r.lock);
  if (r.write_failed) {
    dnc_cli_error("cannot write '%s': %s", journal, strerror(r.write_failed));
    goto out;
  }
  if (interrupted) {
    fflush(stdout);
    fprintf(stderr, "dnc: interrupted: %lld of %lld candidates measured, "
                    "kept in %s; the same command goes on from there\n",
            (long long)(r.ndone_before + r.written), (long long)r.ncands,
            journal);
    rc = 128 + interrupted;
    goto out;
  }
  order = malloc(sizeof *order * (size_t)(r.ncands + 1));
  for (int64_t i = 0; i < r.ncands; i++)
    order[i] = i;
  sort_run = &r;
  qsort(order, (size_t)r.ncands, sizeof *order, by_rank);
  tables tb = {&r, order, dnc_space_size(sp)};
  /* from here a signal removes the temporaries and kills the process */
  dnc_temps_track(1);
  set_handlers(on_signal_in_tables, NULL);
  if (interrupted) /* came before the handler changed */
    raise(interrupted);
  if (write_tables(csv, json, &tb))
    goto out;
  unlink(journal); /* before the lock goes with the descriptor */
  close(r.fd);
  r.fd = -1;
  block_signals(SIG_UNBLOCK);
  print_top(&r, order, a.top);
  if (!a.quiet) {
    double total = now() - t0;
    fflush(stdout);
    fprintf(stderr, "dnc search: %lld candidates, %lld distinct; expanded "
                    "in %.2f s, %lld measured in %.2f s on %ld thread%s: "
                    "%.0f candidates/s; wrote %s and %s\n",
            (long long)dnc_space_size(sp), (long long)r.ncands, t_expand,
            (long long)r.written, t_measure, nthreads,
            nthreads == 1 ? "" : "s", dnc_space_size(sp) / total, csv, json);
  }
  rc = 0;
out:
  block_signals(SIG_UNBLOCK);
  for (int i = 0; i < NSTOP; i++)
    sigaction(stop_signals[i], &old_sa[i], NULL);
  dnc_temps_track(0);
  if (r.fd >= 0)
    close(r.fd);
  dnc_pool_free(pool);
  dnc_grids_free(g);
  for (int64_t i = 0; i < r.ncands; i++)
    dnc_cand_free(&r.cands[i]);
  free(r.cands);
  free(r.values);
  free(r.done);
  free(r.todo);
  free(order);
  dnc_space_free(sp);
  dnc_mod_free(m);
  free(prefix);
  free(csv);
  free(json);
  free(journal);
  return rc;
}

const dnc_command dnc_cmd_search = {
    "search", "rank the candidate functions of a search space", usage,
    cmd_search};
