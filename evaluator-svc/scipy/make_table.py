#!/usr/bin/env python3
"""Reference values for evaluator-svc's statistics, computed with SciPy.

Writes a JSON table of cases (inputs and SciPy's answers) to the path given as the first
argument, or to stdout. `stats_table.json` beside this script is its committed output;
`tests/tests/evaluator_statistics.rs` checks the Rust formulas against it, and (where Python with SciPy is
available, always in CI) runs this script again and checks that it reproduces the table.

    python3 make_table.py stats_table.json

Inputs come from a fixed-seed `random.Random`, so the cases do not depend on NumPy's generator.
"""

import json
import math
import random
import sys

import numpy as np
from scipy import stats

CONFIDENCES = [0.8, 0.9, 0.95, 0.99]


def sample(rng, n, mean, spread):
    return [round(rng.gauss(mean, spread), 6) for _ in range(n)]


def one_sample_cases(rng):
    cases = []
    shapes = [(2, 0.9, 0.01), (3, 0.95, 0.004), (5, 0.8, 0.05), (10, 0.5, 0.2), (30, 1.2, 0.3),
              (4, 0.97, 0.001), (7, 100.0, 15.0), (2, -3.0, 2.0), (50, 0.0, 1.0)]
    for index, (n, mean, spread) in enumerate(shapes):
        values = sample(rng, n, mean, spread)
        for threshold in (mean - spread, mean, mean + 0.5 * spread):
            confidence = CONFIDENCES[(index + len(cases)) % len(CONFIDENCES)]
            x = np.array(values)
            greater = stats.ttest_1samp(x, threshold, alternative="greater")
            less = stats.ttest_1samp(x, threshold, alternative="less")
            sem = stats.sem(x)
            low, high = stats.t.interval(confidence, n - 1, loc=x.mean(), scale=sem)
            cases.append({
                "values": values,
                "threshold": threshold,
                "confidence": confidence,
                "mean": float(x.mean()),
                "std_dev": float(x.std(ddof=1)),
                "std_error": float(sem),
                "ci_low": float(low),
                "ci_high": float(high),
                "t": float(greater.statistic),
                "df": float(greater.df),
                "p_greater": float(greater.pvalue),
                "p_less": float(less.pvalue),
            })
    return cases


def hedges_g(a, b):
    na, nb = len(a), len(b)
    pooled = math.sqrt(((na - 1) * np.var(a, ddof=1) + (nb - 1) * np.var(b, ddof=1)) / (na + nb - 2))
    return float((np.mean(a) - np.mean(b)) / pooled * (1 - 3 / (4 * (na + nb) - 9)))


def welch_cases(rng):
    cases = []
    shapes = [((3, 0.9, 0.01), (3, 0.88, 0.01)), ((5, 0.8, 0.05), (8, 0.82, 0.01)),
              ((2, 1.0, 0.5), (2, 2.0, 0.5)), ((10, 0.5, 0.2), (4, 0.5, 0.3)),
              ((20, 10.0, 3.0), (25, 9.0, 1.0)), ((6, 0.951, 0.002), (6, 0.949, 0.002))]
    for index, (shape_a, shape_b) in enumerate(shapes):
        a, b = sample(rng, *shape_a), sample(rng, *shape_b)
        confidence = CONFIDENCES[index % len(CONFIDENCES)]
        result = stats.ttest_ind(np.array(a), np.array(b), equal_var=False)
        interval = result.confidence_interval(confidence)
        cases.append({
            "a": a,
            "b": b,
            "confidence": confidence,
            "difference": float(np.mean(a) - np.mean(b)),
            "t": float(result.statistic),
            "df": float(result.df),
            "p_two_sided": float(result.pvalue),
            "ci_low": float(interval.low),
            "ci_high": float(interval.high),
            "hedges_g": hedges_g(np.array(a), np.array(b)),
        })
    return cases


def holm(p_values):
    """Holm's step-down adjustment, written out (SciPy has no Holm function)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def holm_cases(rng):
    cases = []
    for m in (1, 2, 5, 20):
        p_values = [round(rng.random() ** 3, 6) for _ in range(m)]
        cases.append({"p_values": p_values, "adjusted": holm(p_values)})
    cases.append({"p_values": [0.01, 0.04, 0.03, 0.5], "adjusted": holm([0.01, 0.04, 0.03, 0.5])})
    return cases


def quantile_cases():
    """Two-sided Student-t quantiles, the core of every interval."""
    return [{"df": df, "confidence": c, "quantile": float(stats.t.ppf(0.5 + c / 2, df))}
            for df in (1, 2, 3, 4, 9, 29, 99, 1000) for c in CONFIDENCES]


def main():
    rng = random.Random(20261127)
    table = {
        "generator": "evaluator-svc/scipy/make_table.py",
        "scipy": __import__("scipy").__version__,
        "one_sample": one_sample_cases(rng),
        "welch": welch_cases(rng),
        "holm": holm_cases(rng),
        "t_quantile": quantile_cases(),
    }
    text = json.dumps(table, indent=1) + "\n"
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
