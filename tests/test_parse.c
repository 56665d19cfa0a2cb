/*
 * test_parse.c - the front end: precedence and associativity, literal
 * forms, parse -> print -> parse round trips for examples/norms.dn and
 * every construct, and hash-consing of the DAG. (Every op's printing is
 * walked by test_ops.c.)
 */
#include <stdlib.h>
#include <string.h>

#include "dnc_int.h"
#include "tap.h"
#include "testlib.h"

/* f printed as dnc source (dnc_print_fn), malloc'd. */
static char *print_fn(const dnc_fn *f)
{
  char *text = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&text, &len);
  dnc_print_fn(o, f);
  fclose(o);
  return text;
}

/* `expr` and `want` (fully parenthesised) must give the same DAG. */
static void same_tree(const char *expr, const char *want)
{
  char a[512], b[512];
  snprintf(a, sizeof a, "fn f(x; a = 1, b = 2, c = 3) = %s\n", expr);
  snprintf(b, sizeof b, "fn f(x; a = 1, b = 2, c = 3) = %s\n", want);
  dnc_mod *ma = build(a), *mb = build(b);
  ok(ma && mb && dnc_node_equal(ma->fns[0]->body, mb->fns[0]->body),
     "'%s' parses as '%s'", expr, want);
  dnc_mod_free(ma);
  dnc_mod_free(mb);
}

static void test_precedence(void)
{
  same_tree("-x^2", "-(x^2)");
  same_tree("2^3^2", "2^(3^2)");
  same_tree("x^a^b^c", "x^(a^(b^c))");
  same_tree("a - b - c", "(a - b) - c");
  same_tree("a / b / c", "(a / b) / c");
  same_tree("a / b * c", "(a / b) * c");
  same_tree("a + b * c", "a + (b * c)");
  same_tree("a * b + c", "(a * b) + c");
  same_tree("-a * b", "(-a) * b");
  same_tree("a * -b", "a * (-b)");
  same_tree("2^-x", "2^(-x)");
  same_tree("2^-x * a", "(2^(-x)) * a");
  same_tree("-x^-a", "-(x^(-a))");
  same_tree("- -x", "-(-x)");
  same_tree("if a + b < c * x then 1 else 0",
            "if ((a + b) < (c * x)) then 1 else 0");
  same_tree("if a < b and b < c or not x > 0 then 1 else 2",
            "if ((a < b) and (b < c)) or (not (x > 0)) then 1 else 2");
  same_tree("if not a == b and c != x then 1 else 0",
            "if (not (a == b)) and (c != x) then 1 else 0");
  same_tree("if a <= b or a >= c and x < 1 then 1 else 0",
            "if (a <= b) or ((a >= c) and (x < 1)) then 1 else 0");
  same_tree("1 + if x > 0 then x else -x + 2",
            "1 + (if x > 0 then x else ((-x) + 2))");
  same_tree("if x > 0 then 1 else if x < 0 then -1 else 0",
            "if x > 0 then 1 else (if x < 0 then -1 else 0)");
  same_tree("tanh(a * x) * b + c", "((tanh(a * x)) * b) + c");
  same_tree("((x))", "x");
  same_tree("-2", "-(2)");
}

static void test_literals(void)
{
  static const struct {
    const char *text;
    double value;
  } lit[] = {
      {"1", 1.0},      {"0.5", 0.5},      {".5", 0.5},
      {"1e-3", 1e-3},  {"2.5E+4", 2.5e4}, {"3.", 3.0},
      {"1E2", 100.0},  {"0", 0.0},        {"4.9e-324", 4.9e-324},
      {"1.7976931348623157e308", 1.7976931348623157e308},
      {"0.1", 0.1},
  };
  for (size_t i = 0; i < sizeof lit / sizeof *lit; i++) {
    char src[128];
    snprintf(src, sizeof src, "fn f(x) = %s", lit[i].text);
    dnc_mod *m = build(src);
    ok(m && m->fns[0]->body->op == OP_CONST &&
           m->fns[0]->body->value == lit[i].value,
       "literal %s reads as %.17g", lit[i].text, lit[i].value);
    dnc_mod_free(m);
  }
  dnc_mod *m = build("fn f(x) = pi + e");
  ok(m && m->fns[0]->body->arg[0]->value == 3.14159265358979323846 &&
         m->fns[0]->body->arg[1]->value == 2.71828182845904523536,
     "pi and e are the doubles nearest to them");
  dnc_mod_free(m);
}

/* print(f) parses back to the same DAG, and prints the same again. */
static void round_trip(const char *src, const char *what)
{
  dnc_mod *m = build(src);
  if (!m) {
    ok(0, "round trip of %s: source builds", what);
    return;
  }
  for (int i = 0; i < m->nfns; i++) {
    char *p1 = print_fn(m->fns[i]);
    dnc_mod *m2 = build(p1);
    dnc_fn *g = m2 && m2->nfns == 1 ? m2->fns[0] : NULL;
    int same = g && dnc_node_equal(m->fns[i]->body, g->body) &&
               g->nparams == m->fns[i]->nparams;
    for (int k = 0; same && k < g->nparams; k++)
      same = !strcmp(g->params[k].name, m->fns[i]->params[k].name) &&
             !memcmp(&g->params[k].def, &m->fns[i]->params[k].def,
                     sizeof(double)) &&
             g->params[k].per_channel == m->fns[i]->params[k].per_channel;
    char *p2 = g ? print_fn(g) : NULL;
    ok(same, "%s: '%s' parse -> print -> parse gives the same DAG", what,
       m->fns[i]->name);
    is_str(p2, p1, "%s: '%s' prints the same after the round trip", what,
           m->fns[i]->name);
    free(p1);
    free(p2);
    dnc_mod_free(m2);
  }
  dnc_mod_free(m);
}

static char *read_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *o = open_memstream(&buf, &len);
  int c;
  while ((c = fgetc(f)) != EOF)
    fputc(c, o);
  fclose(o);
  fclose(f);
  return buf;
}

static const char *constructs[] = {
    "fn f(x) = x",
    "fn f(x; a = 0.5) = tanh(a * x)",
    "fn f(x; beta = 301.1) = x / sqrt(beta + x^2)",
    "fn f(x; a = -0.5, b = -0, c = 1e-300) = a * x + b - c",
    "fn f(x; s[] = 0, a = 1) = erf(a * x + s)",
    "fn f(x) { let u = 2 * x\n let v = u * u\n v / (1 + v) + u }",
    "fn f(x) { let u = x; u * u; }",
    "fn g(t; k = 2) = k * t\nfn f(x; a = 3) = g(x; k = a) + g(x * x)",
    "fn f(x) = if x > 0 and x < 1 or not x == 2 then x else -x",
    "fn f(x) = if x != 0 then 1 else if x >= 1 then 2 else if x <= 3 then 3 else 4",
    "fn f(x) = abs(x) + sign(x) + min(x, 1) + max(x, 2) + clamp(x, -1, 1)",
    "fn f(x) = exp(x) + expm1(x) + log(x) + log1p(x) + sqrt(x) + rsqrt(x)",
    "fn f(x) = tanh(x) + sinh(x) + cosh(x) + asinh(x) + atan(x) + erf(x)",
    "fn f(x) = erfc(x) + sigmoid(x) + softplus(x) + sin(x) + cos(x)",
    "fn f(x) = x^2^3 + (x^2)^3 + (-x)^2 + -x^2 + 2^-x + x^(1/2)",
    "fn f(x) = (x - 1) - (x - 2) - x / (x / 3) * (x * 4)",
    "fn f(x) = x * -0.5 - -0.25 + -1 * x",
    "fn f(x) = pi * x + e - inf * 0 + nan",
    "fn f(x; pi = 3, e = 2) = pi * x + e",
    "fn f(x; pi = 1) = pi + 1/0 - x + inf",
    "fn f(x) = -0 + 0 * x",
    "fn f(x) = 0.1 + 0.2 + 1/3 + 123456789012345678 + 5e-324",
    "fn f(t; a = 1) = a * t",
    "fn f(x) = (if x > 0 then x else 0) + 1",
    "fn f(x) = if (if x > 0 then x else 0) < 1 then 1 else 2",
    "fn f(x) { let c = x > 0 and x < 1\n if c then 1 else if not c then 2 else 3 }",
    "fn f(x) = tanh(tanh(tanh(x))) * tanh(tanh(x)) + tanh(x)",
    "fn f(x) = max(min(x, x^2), -x) ^ clamp(x, x, x + 1)",
};

static void test_round_trips(void)
{
  char *norms = read_file("examples/norms.dn");
  ok(norms != NULL, "examples/norms.dn is readable from the repository root");
  if (norms)
    round_trip(norms, "examples/norms.dn");
  free(norms);
  for (size_t i = 0; i < sizeof constructs / sizeof *constructs; i++) {
    char what[32];
    snprintf(what, sizeof what, "construct %zu", i + 1);
    round_trip(constructs[i], what);
  }
}

static void test_printing(void)
{
  static const struct {
    const char *src, *want;
  } cases[] = {
      {"fn f(x; a = 1, b = 2) = (a - b) - (x - a)",
       "fn f(x; a = 1, b = 2) = a - b - (x - a)\n"},
      {"fn f(x) = (-x)^2 + -(x^2)", "fn f(x) = (-x)^2 + -x^2\n"},
      {"fn f(x) = (2^3)^x + 2^(3^x)", "fn f(x) = (2^3)^x + 2^3^x\n"},
      {"fn f(x) = x * (0 - 0.5)", "fn f(x) = x * (0 - 0.5)\n"},
      {"fn f(x) = x^(-2)", "fn f(x) = x^(-2)\n"},
      {"fn f(x; s[] = 0.25) = x + s", "fn f(x; s[] = 0.25) = x + s\n"},
      {"fn f(x) = tanh(x) * tanh(x)",
       "fn f(x) {\n  let t1 = tanh(x)\n  t1 * t1\n}\n"},
      {"fn f(t1) = sin(t1) / sin(t1)",
       "fn f(t1) {\n  let t2 = sin(t1)\n  t2 / t2\n}\n"},
      {"fn f(x; e = 1) = 2.718281828459045 * e",
       "fn f(x; e = 1) = 2.718281828459045 * e\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    dnc_mod *m = build(cases[i].src);
    char *p = m ? print_fn(m->fns[0]) : NULL;
    is_str(p, cases[i].want, "prints '%s' with the parentheses it needs",
           cases[i].src);
    free(p);
    dnc_mod_free(m);
  }
}

static void test_hash_consing(void)
{
  dnc_mod *m = build("fn f(x; a = 1) = tanh(a * x) + tanh(a * x)\n"
                     "fn g(x; a = 1) = tanh(a * x)\n"
                     "fn h(x; a = 1) { let u = tanh(a * x)\n u * g(x; a = a) }\n"
                     "fn z(x) = 0 * x + -0 * x\n"
                     "fn n(x) = nan + nan\n");
  if (!m) {
    ok(0, "hash-consing module builds");
    return;
  }
  dnc_node *f = dnc_mod_find(m, "f")->body, *g = dnc_mod_find(m, "g")->body;
  dnc_node *h = dnc_mod_find(m, "h")->body, *z = dnc_mod_find(m, "z")->body;
  dnc_node *n = dnc_mod_find(m, "n")->body;
  ok(f->op == OP_ADD && f->arg[0] == f->arg[1],
     "equal subterms of one expression are one node");
  ok(f->arg[0] == g, "equal subterms of different functions are one node");
  ok(h->op == OP_MUL && h->arg[0] == h->arg[1] && h->arg[0] == g,
     "a let and an inlined call of an equal expression share the node");
  ok(z->arg[0]->arg[0] != z->arg[1]->arg[0],
     "0 and -0 are different constants");
  ok(n->arg[0] == n->arg[1], "a NaN constant is one node");
  uint32_t before = m->dag.count;
  dnc_node *again = dnc_node_op(&m->dag, OP_TANH,
                                dnc_node_op(&m->dag, OP_MUL, dnc_param(&m->dag, 0),
                                            dnc_input(&m->dag), NULL),
                                NULL, NULL);
  ok(again == g && m->dag.count == before,
     "building an existing expression again creates no node");
  int topo = 1;
  for (uint32_t i = 0; i < m->dag.count; i++)
    for (int k = 0; k < m->dag.nodes[i]->nargs; k++)
      topo &= m->dag.nodes[i]->arg[k]->id < m->dag.nodes[i]->id;
  ok(topo, "operands have smaller ids than their users (topological ids)");
  dnc_mod_free(m);

  /* a shared chain: 60 levels of u = u * u + u would be 2^60 tree nodes */
  char src[8192];
  size_t len = (size_t)snprintf(src, sizeof src, "fn f(x) {\n let u0 = x\n");
  for (int i = 1; i <= 60; i++)
    len += (size_t)snprintf(src + len, sizeof src - len,
                            " let u%d = u%d * u%d + u%d\n", i, i - 1, i - 1, i - 1);
  snprintf(src + len, sizeof src - len, " u60\n}\n");
  m = build(src);
  ok(m && m->dag.count <= 2 + 2 * 60,
     "a DAG of 2^60 tree nodes is stored in %u nodes", m ? m->dag.count : 0);
  dnc_mod_free(m);
}

/* Inputs found while fuzzing the front end (tests/fuzz/regressions). */
static void test_fuzz_regressions(void)
{
  static const char *const round_trips[] = {
      "tests/fuzz/regressions/roundtrip-printed-too-deep.dn",
      "tests/fuzz/regressions/timeout-node-equal-exponential.dn",
  };
  for (size_t i = 0; i < sizeof round_trips / sizeof *round_trips; i++) {
    char *src = read_file(round_trips[i]);
    ok(src != NULL, "%s is readable", round_trips[i]);
    if (src)
      round_trip(src, round_trips[i]);
    free(src);
  }
  static const char *const refused[] = {
      "tests/fuzz/regressions/roundtrip-const-hidden-by-param.dn",
      "tests/fuzz/regressions/roundtrip-const-hidden-by-input.dn",
  };
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    char *src = read_file(refused[i]);
    dnc_mod *m = dnc_mod_new();
    if (src)
      dnc_mod_add_source(m, refused[i], src, strlen(src));
    ok(src && dnc_mod_build(m) > 0,
       "%s: naming a parameter or the input inf or nan is an error", refused[i]);
    dnc_mod_free(m);
    free(src);
  }
}

int main(void)
{
  test_fuzz_regressions();
  test_precedence();
  test_literals();
  test_round_trips();
  test_printing();
  test_hash_consing();
  return done_testing();
}
