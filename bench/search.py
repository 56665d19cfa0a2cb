#!/usr/bin/python3
"""search.py - the speed of `dnc search`, in the same `make bench`.

    /usr/bin/python3 bench/search.py build/dnc build/bench/kernels.json

Runs `dnc search examples/search/derf_space.dns` (16,800 candidates) on
every CPU, three times, and adds to the JSON (made if missing):
  "search/candidates_per_s": candidates expanded, simplified, deduplicated
      and measured per second (the median run), as dnc search reports it
      (the candidates of the space over the whole run's time: expansion,
      simplification, derivatives, deduplication, measuring, ranking and
      writing the tables);
  "search/candidates", "search/distinct": the space's size before and
      after deduplication.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile

import results

SPEC = "examples/search/derf_space.dns"
LINE = re.compile(r"dnc search: (\d+) candidates, (\d+) distinct; .*?: "
                  r"(\d+) candidates/s")


def main():
    dnc = sys.argv[1] if len(sys.argv) > 1 else "build/dnc"
    out = sys.argv[2] if len(sys.argv) > 2 else "build/bench/kernels.json"
    rates = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(3):
            p = subprocess.run([dnc, "search", SPEC, "-o", os.path.join(d, "s"),
                                "--top", "0"], capture_output=True, text=True)
            m = LINE.search(p.stderr)
            if p.returncode != 0 or not m:
                print(f"search: dnc search failed:\n{p.stderr}")
                sys.exit(1)
            total, distinct, rate = map(int, m.groups())
            rates.append(rate)
            print(p.stderr.strip())
    res = results.load(out)
    res["search/candidates_per_s"] = statistics.median(rates)
    res["search/candidates"] = total
    res["search/distinct"] = distinct
    print(f"search: {statistics.median(rates)} candidates/s (median of 3), "
          f"{total} candidates, {distinct} distinct")
    results.save(out, res)


if __name__ == "__main__":
    main()
