#!/usr/bin/env python3
"""report.py - the tables, Spearman correlations and plot of the property
studies that run.sh trained (docs/search.md, "Does screening predict
training?").

    python3 examples/search/study/report.py OUT [--run DIR ...]
        [--svg docs/search_study.svg] [--png FILE.png]

OUT holds TASK/STUDY/results.json for the tasks digits-vit and char-lm and
the studies ranked, shift, flat, bounded and monotonic; each --run DIR is a
`python -m dnc.search` run whose screening order is compared with its
trained order. Prints markdown; writes the plot (SVG, drawn here: no
plotting library needed).
"""
import argparse
import json
import math
import os
import re

TASKS = [("digits-vit", "validation accuracy", "max"),
         ("char-lm", "validation loss", "min")]
STUDIES = ["ranked", "shift", "flat", "bounded", "monotonic"]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
          "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def load(path):
    with open(path) as f:
        return json.load(f)


def ranks(v):
    """Ranks 1..n, ties averaged."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(a, b):
    """Spearman's rho (Pearson on average ranks); None under 3 points or
    with a constant side."""
    if len(a) < 3:
        return None
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    sab = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    saa = sum((x - ma) ** 2 for x in ra)
    sbb = sum((y - mb) ** 2 for y in rb)
    if saa == 0 or sbb == 0:
        return None
    return sab / math.sqrt(saa * sbb)


def param(study, name):
    """The study's parameter of a candidate, from its name."""
    if study in ("shift", "flat"):
        m = re.search(r"\|%s\(([-0-9.e]+)\)" % study, name)
        return float(m.group(1)) if m else 0.0
    return name


def score(mode, m):
    """Larger is better."""
    return m if mode == "max" else -m


def study_rows(out, task, study):
    p = os.path.join(out, task, study, "results.json")
    if not os.path.exists(p):
        return None
    return load(p)


def fmt(v, d=4):
    return "-" if v is None else "%.*f" % (d, v)


def correlation(r, mode, use_rung=None):
    """Spearman between the screening order (rank 1 best) and the trained
    metric, over the candidates with a metric: positive when screening's
    better candidates trained better."""
    xs, ys = [], []
    for row in r["results"]:
        if row["screen_rank"] is None:
            continue
        m = row["final_mean"] if use_rung is None else row["rungs"][use_rung]
        if m is None:
            continue
        xs.append(-row["screen_rank"])
        ys.append(score(mode, m))
    return spearman(xs, ys), len(xs)


# ------------------------------------------------------------------ SVG


class Svg:
    """A figure as primitives, written as SVG, or as PNG through Pillow
    (where it is installed) to look at."""

    def __init__(self, w, h):
        self.w, self.h, self.ops = w, h, []

    def line(self, x1, y1, x2, y2, color, dash=False):
        self.ops.append(("line", x1, y1, x2, y2, color, dash))

    def rect(self, x, y, w, h, color):
        self.ops.append(("rect", x, y, w, h, color))

    def poly(self, pts, color):
        self.ops.append(("poly", pts, color))

    def dot(self, x, y, color):
        self.ops.append(("dot", x, y, color))

    def text(self, x, y, s, anchor="middle", size=12, rotate=0,
             color="#000"):
        self.ops.append(("text", x, y, s, anchor, size, rotate, color))

    def svg(self):
        out = []
        for op in self.ops:
            k = op[0]
            if k == "line":
                _, x1, y1, x2, y2, c, dash = op
                out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" '
                           'stroke="%s"%s/>' % (x1, y1, x2, y2, c,
                                                ' stroke-dasharray="4 3"'
                                                if dash else ""))
            elif k == "rect":
                _, x, y, w, h, c = op
                out.append('<rect x="%.1f" y="%.1f" width="%.1f" height='
                           '"%.1f" fill="none" stroke="%s"/>' % (x, y, w, h,
                                                                 c))
            elif k == "poly":
                _, pts, c = op
                out.append('<polyline fill="none" stroke="%s" stroke-width='
                           '"1.5" points="%s"/>' % (c, " ".join(
                               "%.1f,%.1f" % p for p in pts)))
            elif k == "dot":
                _, x, y, c = op
                out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' %
                           (x, y, c))
            else:
                _, x, y, s, anchor, size, rot, c = op
                s = s.replace("&", "&amp;").replace("<", "&lt;")
                out.append('<text x="%.1f" y="%.1f" text-anchor="%s" '
                           'font-size="%d" fill="%s"%s>%s</text>' % (
                               x, y, anchor, size, c,
                               ' transform="rotate(%d %.1f %.1f)"' % (
                                   rot, x, y) if rot else "", s))
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" '
                'height="%d" viewBox="0 0 %d %d" font-family="sans-serif" '
                'font-size="12">\n<rect width="100%%" height="100%%" '
                'fill="white"/>\n%s\n</svg>\n' % (
                    self.w, self.h, self.w, self.h, "\n".join(out)))

    def png(self, path, scale=2):
        from PIL import Image, ImageDraw, ImageFont
        img = Image.new("RGB", (self.w * scale, self.h * scale), "white")
        d = ImageDraw.Draw(img)
        S = lambda v: v * scale

        def font(size):
            try:
                return ImageFont.truetype("DejaVuSans.ttf", size * scale)
            except OSError:
                return ImageFont.load_default(size=size * scale)
        for op in self.ops:
            k = op[0]
            if k == "line":
                _, x1, y1, x2, y2, c, dash = op
                if dash:
                    n = max(1, int(abs(x2 - x1 + y2 - y1) / 7))
                    for i in range(n):
                        a, b = i / n, (i + 0.57) / n
                        d.line([S(x1 + (x2 - x1) * a), S(y1 + (y2 - y1) * a),
                                S(x1 + (x2 - x1) * b), S(y1 + (y2 - y1) * b)],
                               fill=c, width=scale)
                else:
                    d.line([S(x1), S(y1), S(x2), S(y2)], fill=c, width=scale)
            elif k == "rect":
                _, x, y, w, h, c = op
                d.rectangle([S(x), S(y), S(x + w), S(y + h)], outline=c,
                            width=scale)
            elif k == "poly":
                _, pts, c = op
                d.line([(S(x), S(y)) for x, y in pts], fill=c,
                       width=int(1.5 * scale))
            elif k == "dot":
                _, x, y, c = op
                d.ellipse([S(x - 3), S(y - 3), S(x + 3), S(y + 3)], fill=c)
            else:
                _, x, y, s, anchor, size, rot, c = op
                f = font(size)
                l, t, r, b = d.textbbox((0, 0), s, font=f)
                tw, th = r - l, b - t
                tile = Image.new("RGBA", (tw + 4, th + 4), (255, 255, 255, 0))
                ImageDraw.Draw(tile).text((2 - l, 2 - t), s, font=f, fill=c)
                dx = {"start": 0, "middle": tw / 2, "end": tw}[anchor]
                if rot:
                    tile = tile.rotate(-rot, expand=True,
                                       resample=Image.BICUBIC)
                    import math as m
                    a = m.radians(rot)
                    # the anchor point of the rotated text
                    ox = S(x) - dx * m.cos(a)
                    oy = S(y) - dx * m.sin(a)
                    px = ox - (tile.width / 2) + (tw / 2) * m.cos(a) \
                        - (-th / 2) * m.sin(a)
                    py = oy - (tile.height / 2) + (tw / 2) * m.sin(a) \
                        + (-th / 2) * m.cos(a)
                    img.paste(tile, (int(px), int(py)), tile)
                else:
                    img.paste(tile, (int(S(x) - dx - 2), int(S(y) - th - 2)),
                              tile)
        img.save(path)


def nice_ticks(lo, hi, n=4):
    if hi <= lo:
        hi = lo + 1
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    t = math.ceil(lo / step) * step
    out = []
    while t <= hi + 1e-12:
        out.append(round(t, 10))
        t += step
    return out


def panel(svg, x0, y0, w, h, title, xlabels, series, ylabel, numeric, base):
    """series: [(label, [(x, mean, std)])]; xlabels: the x positions'
    labels (numeric: the values themselves)."""
    ml, mb, mt = 48, 58, 22
    fw, fh = w - ml - 10, h - mb - mt
    vals = [m + s for _, pts in series for _, m, s in pts] + \
        [m - s for _, pts in series for _, m, s in pts]
    if base is not None:
        vals += [base]
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or 0.01
    lo, hi = lo - pad, hi + pad
    n = len(xlabels)
    if numeric:
        xs = [float(v) for v in xlabels]
        xa, xb = min(xs), max(xs)
        if xb == xa:
            xb = xa + 1
        X = lambda v: x0 + ml + 10 + (float(v) - xa) / (xb - xa) * (fw - 20)
    else:
        X = lambda v: x0 + ml + (xlabels.index(v) + 0.5) * fw / n
    Y = lambda v: y0 + mt + (hi - v) / (hi - lo) * fh
    svg.text(x0 + ml + fw / 2, y0 + 15, title, size=12)
    for t in nice_ticks(lo, hi):
        svg.line(x0 + ml, Y(t), x0 + ml + fw, Y(t), "#e4e4e4")
        svg.text(x0 + ml - 4, Y(t) + 4, "%g" % t, anchor="end", size=10)
    svg.rect(x0 + ml, y0 + mt, fw, fh, "#999")
    if ylabel:
        svg.text(x0 + 12, y0 + mt + fh / 2, ylabel, size=11, rotate=-90)
    for v in xlabels:
        if numeric:
            svg.text(X(v), y0 + mt + fh + 14, "%g" % float(v), size=10)
        else:
            svg.text(X(v) + 3, y0 + mt + fh + 12, str(v), anchor="end",
                     size=9, rotate=-35)
    if base is not None:
        svg.line(x0 + ml, Y(base), x0 + ml + fw, Y(base), "#555", dash=True)
        svg.text(x0 + ml + fw - 3, Y(base) - 3, "LayerNorm", anchor="end",
                 size=9, color="#555")
    for i, (label, pts) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        if numeric and len(pts) > 1:
            svg.poly([(X(x), Y(m)) for x, m, _ in pts], c)
        for x, m, s in pts:
            svg.line(X(x), Y(m - s), X(x), Y(m + s), c)
            svg.dot(X(x), Y(m), c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--run", action="append", default=[])
    ap.add_argument("--svg", default=None)
    ap.add_argument("--png", default=None, help="also as PNG (Pillow)")
    a = ap.parse_args()
    W, H = 230, 230
    svg = Svg(W * len(STUDIES), H * len(TASKS) + 24)
    svg.text(W * len(STUDIES) / 2, 16, "python -m dnc.search: the Derf "
             "paper's property studies at small scale (mean, bars: +-1 std "
             "over seeds; top: digits-vit, bottom: char-lm)", size=13)
    for ti, (task, metric, mode) in enumerate(TASKS):
        base = None
        r = study_rows(a.out, task, "ranked")
        if r:
            for row in r["results"]:
                if row["status"] == "baseline":
                    base = row["final_mean"]
        print("\n### %s (%s, %s is better)\n" % (task, metric,
                                                 "higher" if mode == "max"
                                                 else "lower"))
        if r:
            c = r["config"]
            print("%d steps, %d seeds; LayerNorm %s +- %s\n" % (
                c["steps"], c["seeds"], fmt(base),
                fmt(next((x["final_std"] for x in r["results"]
                          if x["status"] == "baseline"), None))))
        print("| study | candidate | props (ZBCM) | screen rank | %s | std "
              "| status |" % metric)
        print("|---|---|---|---|---|---|---|")
        for si, study in enumerate(STUDIES):
            r = study_rows(a.out, task, study)
            if r is None:
                continue
            rows = [x for x in r["results"] if x["screen_rank"] is not None]
            rows.sort(key=lambda x: x["screen_rank"])
            for x in rows:
                sc = x["screen"]
                zbcm = "".join(ch if sc.get(k) else "-" for ch, k in zip(
                    "ZBCM", ["zero_centred", "bounded", "center_sensitive",
                             "monotonic"]))
                print("| %s | `%s` | %s | %d | %s | %s | %s%s |" % (
                    study, x["name"].replace("|", "\\|"), zbcm,
                    x["screen_rank"], fmt(x["final_mean"]),
                    fmt(x["final_std"]), x["status"],
                    (": " + x["error"][:60]) if x["error"] else ""))
            rho, n = correlation(r, mode)
            print("| %s | *Spearman(screening, training) over %d* | | | %s "
                  "| | |" % (study, n, fmt(rho, 2)))
            numeric = study in ("shift", "flat")
            pts = [(param(study, x["name"]), x["final_mean"],
                    x["final_std"] or 0.0) for x in rows
                   if x["final_mean"] is not None]
            if numeric:
                pts.sort()
                labels = [p for p, _, _ in pts]
            else:
                labels = [x["name"] for x in rows
                          if x["final_mean"] is not None]
            title = {"ranked": "the paper's ranked functions",
                     "shift": "erf(x + lambda): lambda",
                     "flat": "erf with a flat centre: width",
                     "bounded": "bounded vs not",
                     "monotonic": "monotonic vs not"}[study]
            panel(svg, si * W, 24 + ti * H, W, H, title, labels,
                  [(study, pts)], metric if si == 0 else "", numeric, base)
        # every study's candidates together, each distinct source once, in
        # the order dnc search ranks by default (props desc, residual asc)
        pooled = {}
        for study in STUDIES:
            r = study_rows(a.out, task, study)
            for x in (r or {"results": []})["results"]:
                if x["source"] and x["final_mean"] is not None:
                    body = x["source"].split("=", 1)[1].strip()
                    pooled.setdefault(body, x)
        if pooled:
            # a residual of null (NaN: f not finite at LayerNorm's points)
            # ranks last, as in dnc search (it was a TypeError here)
            xs = [(-x["screen"]["props"], math.inf
                   if x["screen"]["residual"] is None
                   else x["screen"]["residual"]) for x in pooled.values()]
            order = sorted(range(len(xs)), key=lambda i: xs[i])
            pos = [0] * len(xs)
            for rank, i in enumerate(order):
                pos[i] = -rank
            ys = [score(mode, x["final_mean"]) for x in pooled.values()]
            print("\nAll studies' %d distinct candidates pooled, in `dnc "
                  "search`'s default order (props desc, residual asc): "
                  "Spearman %s.\n" % (len(ys), fmt(spearman(pos, ys), 2)))
    for d in a.run:
        r = load(os.path.join(d, "results.json"))
        mode = r["mode"]
        print("\n### %s: %s, top %d\n" % (d, r["task"],
                                          r["config"]["top"]))
        for i, rung in enumerate(r["rungs"]):
            rho, n = correlation(r, mode, use_rung=i)
            print("- rung %d (%d steps, %d candidates): Spearman %s over %d"
                  % (i + 1, rung["steps"], rung["candidates"], fmt(rho, 2),
                     n))
    if a.svg:
        with open(a.svg, "w") as f:
            f.write(svg.svg())
    if a.png:
        svg.png(a.png)


if __name__ == "__main__":
    main()
