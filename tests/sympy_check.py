"""sympy_check.py FUNCS.dn DERIVS.dn [LABEL] - TAP: dnc's derivatives against
SymPy's.

FUNCS.dn holds functions in dnc's language; DERIVS.dn the output of
`dnc diff --format dsl` on it (first derivatives with respect to x and every
parameter, named f__dx, f__dalpha). Each function is translated to SymPy,
differentiated there with sympy.diff, and compared numerically with dnc's
derivative (also translated) at random points, in 30-digit arithmetic.
Points where either side is not a finite real, or where SymPy's derivative
involves a Heaviside or DiracDelta at a kink, are skipped.
"""
import random
import re
import sys

import mpmath
import sympy as sp

mpmath.mp.dps = 30
sys.setrecursionlimit(4000)

TOKEN = re.compile(r"[ \t\r]*(?:(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
                   r"|([A-Za-z_][A-Za-z0-9_]*)|(<=|>=|==|!=|[-+*/^()<>=,;{}\[\]])|(\n))")


def tokens(text):
    out = []
    pos = 0
    text = re.sub(r"#[^\n]*", "", text)
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise SyntaxError("bad character at %r" % text[pos:pos + 20])
        pos = m.end()
        if m.group(1):
            out.append(("num", m.group(1)))
        elif m.group(2):
            out.append(("name", m.group(2)))
        elif m.group(3):
            out.append(("op", m.group(3)))
        else:
            out.append(("nl", "\n"))
    return out


def sigmoid(u):
    return 1 / (1 + sp.exp(-u))


FUNCS = {
    "abs": sp.Abs, "sign": sp.sign, "min": sp.Min, "max": sp.Max,
    "clamp": lambda v, lo, hi: sp.Min(sp.Max(v, lo), hi),
    "exp": sp.exp, "expm1": lambda u: sp.exp(u) - 1, "log": sp.log,
    "log1p": lambda u: sp.log(1 + u), "sqrt": sp.sqrt,
    "rsqrt": lambda u: 1 / sp.sqrt(u), "tanh": sp.tanh, "sinh": sp.sinh,
    "cosh": sp.cosh, "asinh": sp.asinh, "atan": sp.atan, "erf": sp.erf,
    "erfc": sp.erfc, "sigmoid": sigmoid,
    "softplus": lambda u: sp.log(1 + sp.exp(u)), "sin": sp.sin, "cos": sp.cos,
    "fma": lambda a, b, c: a * b + c,
    "hypot": lambda a, b: sp.sqrt(a**2 + b**2),
}
CONSTS = {"pi": sp.pi, "e": sp.E, "inf": sp.oo, "nan": sp.nan}


class Parser:
    """Recursive descent over the grammar of docs/language.md."""

    def __init__(self, toks):
        self.t = toks
        self.i = 0
        self.in_block = False

    def newline_ends(self):
        """In a block a line that starts with '-' is a new statement."""
        return self.in_block and self.i < len(self.t) and self.t[self.i][0] == "nl"

    def peek(self, skip_nl=True):
        j = self.i
        while skip_nl and j < len(self.t) and self.t[j][0] == "nl":
            j += 1
        return self.t[j] if j < len(self.t) else ("eof", "")

    def take(self, value=None):
        while self.i < len(self.t) and self.t[self.i][0] == "nl":
            self.i += 1
        tok = self.t[self.i] if self.i < len(self.t) else ("eof", "")
        if value is not None and tok[1] != value:
            raise SyntaxError("expected %r, got %r" % (value, tok))
        self.i += 1
        return tok

    def definitions(self):
        """(name, input, params, body) per fn; body None where SymPy cannot
        represent the function (say min(x, 1/0): zoo is not comparable)."""
        defs = []
        while self.peek()[0] != "eof":
            start = self.i
            try:
                defs.append(self.fn())
            except (ValueError, TypeError, KeyError, RecursionError) as err:
                self.i = start
                self.take("fn")
                name = self.take()[1]
                while self.peek() != ("name", "fn") and self.peek()[0] != "eof":
                    self.take()
                defs.append((name, None, [], None))
                print("# %s: not representable in SymPy (%s)" % (name, err))
        return defs

    def fn(self):
        self.take("fn")
        name = self.take()[1]
        self.take("(")
        inp = self.take()[1]
        params = []
        if self.peek()[1] == ";":
            self.take(";")
            while True:
                p = self.take()[1]
                if self.peek()[1] == "[":
                    self.take("[")
                    self.take("]")
                self.take("=")
                params.append((p, self.expr({})))
                if self.peek()[1] != ",":
                    break
                self.take(",")
        self.take(")")
        env = {inp: sp.Symbol(inp, real=True)}
        for p, _ in params:
            env[p] = sp.Symbol(p, real=True)
        if self.peek()[1] == "=":
            self.take("=")
            body = self.expr(env)
        else:
            self.take("{")
            self.in_block = True
            while self.peek()[1] == "let":
                self.take("let")
                v = self.take()[1]
                self.take("=")
                env = dict(env)
                env[v] = self.expr(env)
                while self.peek()[1] == ";":
                    self.take(";")
            body = self.expr(env)
            while self.peek()[1] == ";":
                self.take(";")
            self.take("}")
            self.in_block = False
        return name, inp, [(p, float(d)) for p, d in params], body

    def expr(self, env):
        if self.peek()[1] == "if":
            self.take("if")
            c = self.expr(env)
            self.take("then")
            a = self.expr(env)
            self.take("else")
            b = self.expr(env)
            return sp.Piecewise((a, c), (b, True))
        return self.or_(env)

    def or_(self, env):
        a = self.and_(env)
        while self.peek()[1] == "or":
            self.take()
            a = sp.Or(a, self.and_(env))
        return a

    def and_(self, env):
        a = self.not_(env)
        while self.peek()[1] == "and":
            self.take()
            a = sp.And(a, self.not_(env))
        return a

    def not_(self, env):
        if self.peek()[1] == "not":
            self.take()
            return sp.Not(self.not_(env))
        return self.cmp(env)

    def cmp(self, env):
        a = self.add(env)
        op = self.peek()[1]
        rel = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge,
               "==": sp.Eq, "!=": sp.Ne}
        if op in rel:
            self.take()
            return rel[op](a, self.add(env))
        return a

    def add(self, env):
        a = self.mul(env)
        while True:
            ends = self.newline_ends()
            nxt = self.peek()[1]
            if nxt not in ("+", "-") or (ends and nxt == "-"):
                break
            op = self.take()[1]
            b = self.mul(env)
            a = a + b if op == "+" else a - b
        return a

    def mul(self, env):
        a = self.unary(env)
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            b = self.unary(env)
            a = a * b if op == "*" else a / b
        return a

    def unary(self, env):
        if self.peek()[1] == "-":
            self.take()
            return -self.unary(env)
        return self.power(env)

    def power(self, env):
        a = self.primary(env)
        if self.peek()[1] == "^":
            self.take()
            return sp.Pow(a, self.unary(env))
        return a

    def primary(self, env):
        kind, v = self.take()
        if kind == "num":
            return sp.Float(v, 30) if ("." in v or "e" in v or "E" in v) else sp.Integer(v)
        if v == "(":
            e = self.expr(env)
            self.take(")")
            return e
        if kind == "name" and self.peek(False)[1] == "(":
            self.take("(")
            args = [self.expr(env)]
            while self.peek()[1] == ",":
                self.take(",")
                args.append(self.expr(env))
            self.take(")")
            return FUNCS[v](*args)
        if v in env:
            return env[v]
        if v in CONSTS:
            return CONSTS[v]
        raise SyntaxError("unknown name %r" % v)


_H0 = [mpmath.mpf(0.5)]


def _heaviside(v, *rest):
    if v > 0:
        return mpmath.mpf(1)
    if v < 0:
        return mpmath.mpf(0)
    return _H0[0]


def _delta(v, *rest):
    if v == 0:
        raise ValueError("DiracDelta at 0")
    return mpmath.mpf(0)


_MODULES = [{"Heaviside": _heaviside, "DiracDelta": _delta}, "mpmath"]


def compiled(expr, syms):
    """expr as a function of syms over mpmath numbers (None if SymPy cannot
    print it as code)."""
    try:
        return sp.lambdify(syms, expr, modules=_MODULES)
    except Exception:  # noqa: BLE001 - any printer failure means: unchecked
        return None


def value(fn, args):
    """A finite real value, or None."""
    try:
        v = fn(*args)
    except (ValueError, ZeroDivisionError, TypeError, OverflowError,
            RecursionError, AttributeError, NameError):
        return None
    if isinstance(v, bool):
        return None
    try:
        v = mpmath.mpmathify(v)
    except (TypeError, ValueError):
        return None
    if not isinstance(v, mpmath.mpf) or not mpmath.isfinite(v):
        return None
    return v


def at_kink(fn, args):
    """Does the value depend on Heaviside(0)? Then the point is a kink, where
    dnc's documented convention (min/max ties go to the first operand) and
    SymPy's Heaviside(0) = 1/2 legitimately differ."""
    vals = []
    for h0 in (0, 1):
        _H0[0] = mpmath.mpf(h0)
        vals.append(value(fn, args))
    _H0[0] = mpmath.mpf(0.5)
    return vals[0] is None or vals[1] is None or vals[0] != vals[1]


def main():
    funcs = Parser(tokens(open(sys.argv[1]).read())).definitions()
    derivs = {name: body for name, _, _, body in
              Parser(tokens(open(sys.argv[2]).read())).definitions()}
    label = sys.argv[3] if len(sys.argv) > 3 else sys.argv[1]
    rng = random.Random(12345)
    n = bad = unchecked = checks = 0
    per_function = len(funcs) <= 40
    for name, inp, params, body in funcs:
        if body is None:
            unchecked += 1
            continue
        syms = [sp.Symbol(inp, real=True)] + [sp.Symbol(p, real=True) for p, _ in params]
        fails = []
        checked = 0
        for var in syms:
            dname = "%s__d%s" % (name, var.name)
            if dname not in derivs:
                fails.append("no derivative %s in the dnc output" % dname)
                continue
            got_expr = derivs[dname]
            if got_expr is None:
                fails.append("%s is not representable in SymPy" % dname)
                continue
            try:
                want_fn = compiled(sp.diff(body, var), syms)
            except RecursionError:
                continue
            got_fn = compiled(got_expr, syms)
            if want_fn is None or got_fn is None:
                continue
            for _ in range(4):
                args = [mpmath.mpf(rng.uniform(-4, 4))] + [mpmath.mpf(d) for _, d in params]
                want = value(want_fn, args)
                got = value(got_fn, args)
                if want is None or got is None or at_kink(want_fn, args):
                    continue
                checked += 1
                if abs(want - got) > mpmath.mpf("1e-9") * (1 + abs(want)):
                    fails.append("%s at %s: dnc %s, sympy %s" %
                                 (dname, args[0], got, want))
        checks += checked
        if checked == 0:
            unchecked += 1
        if fails:
            bad += 1
        if per_function:
            n += 1
            ok = not fails and checked > 0
            print("%sok %d - %s: %s's derivatives agree with sympy.diff at %d points"
                  % ("" if ok else "not ", n, label, name, checked))
            for f in fails[:3]:
                print("#   " + f)
        elif fails and bad <= 5:
            print("# %s: %s" % (name, "; ".join(fails[:2])))
    if not per_function:
        n += 1
        print("%sok %d - %s: the derivatives of %d functions agree with sympy.diff "
              "(%d disagree, %d point checks)" % ("" if bad == 0 else "not ", n, label,
                                                  len(funcs), bad, checks))
        n += 1
        share = unchecked / max(1, len(funcs))
        print("%sok %d - %s: %d of %d functions had no checkable point (at most 10%%)"
              % ("" if share <= 0.10 else "not ", n, label, unchecked, len(funcs)))
    print("1..%d" % n)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
