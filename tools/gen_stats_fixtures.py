#!/usr/bin/python3
"""Statistics fixtures for tests/unit/test_stats.c, written with SciPy 1.10 and
NumPy 1.24 (Debian's python3-scipy / python3-numpy).

    /usr/bin/python3 tools/gen_stats_fixtures.py [tests/fixtures/stats]

kendall.safetensors   case<k>.x, case<k>.y (F64 [n]) and case<k>.result
                      F64 [5] = (tau, p two-sided, p greater, p less, exact)
                      from scipy.stats.kendalltau(method='auto'); exact is 1
                      when 'auto' picks the exact null distribution.
ttest.safetensors     one<k>.x, one<k>.popmean [1], one<k>.result
                      F64 [5] = (t, dof, p two-sided, p greater, p less) from
                      scipy.stats.ttest_1samp; two<k>.x, two<k>.y,
                      two<k>.student and two<k>.welch (same layout) from
                      scipy.stats.ttest_ind(equal_var=True / False); dof from
                      scipy's own _equal_var_ttest_denom / _unequal_var_ttest_denom.
summary.safetensors   case<k>.x with case<k>.summary F64 [3] = (np.mean,
                      scipy.stats' unbiased variance, np.median),
                      case<k>.quantiles = np.quantile(x, q) for the shared q,
                      case<k>.argsort_asc / argsort_desc (I64) =
                      np.argsort(x, kind='stable') / np.argsort(-x, kind='stable');
                      topk<k>.a, topk<k>.b, topk<k>.result F64 [2] = (k, overlap).
special.safetensors   betainc.abx [m,3] and betainc.value (scipy.special.betainc),
                      stdtr.dft [m,2] and stdtr.value (scipy.special.stdtr),
                      ndtr.x and ndtr.value (scipy.special.ndtr).
"""
import os
import sys

import numpy as np
import scipy
import scipy.special as sp
import scipy.stats as ss
from scipy.stats import _stats_py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

ALTS = ("two-sided", "greater", "less")
GEN = "tools/gen_stats_fixtures.py, scipy %s, numpy %s" % (scipy.__version__, np.__version__)


def perm_with_inversions(n, inv, rng):
    """A permutation of n with exactly `inv` inversions (rejection sampling)."""
    while True:
        p = rng.permutation(n)
        count = sum(1 for i in range(n) for j in range(i + 1, n) if p[i] > p[j])
        if count == inv:
            return p.astype(np.float64)


def kendall_cases(rng):
    cases = []
    x = rng.normal(size=3)
    cases.append((x, rng.normal(size=3)))
    x = np.arange(5.0)
    cases.append((x, 2 * x + 1))                           # tau = 1, exact
    x = rng.normal(size=10)
    cases.append((x, x + rng.normal(size=10)))
    x = rng.integers(0, 6, size=20).astype(float)          # ties in x -> asymptotic
    cases.append((x, rng.normal(size=20)))
    x = rng.normal(size=33)
    cases.append((x, 0.3 * x + rng.normal(size=33)))       # largest exact n
    x = rng.normal(size=34)
    cases.append((x, 0.3 * x + rng.normal(size=34)))       # smallest asymptotic n
    x = np.round(rng.normal(size=50), 1)
    cases.append((x, np.round(x + rng.normal(size=50), 0)))  # ties in both
    x = rng.integers(0, 5, size=200).astype(float)
    cases.append((x, rng.integers(0, 5, size=200) + (x > 2)))  # heavy joint ties
    x = rng.normal(size=2000)
    cases.append((x, 0.1 * x + rng.normal(size=2000)))
    x = np.round(rng.normal(size=2000), 1)
    cases.append((x, -0.05 * x + rng.normal(size=2000)))  # ties in x only
    x = np.arange(40.0)
    cases.append((x, -x))                                  # tau = -1, exact c = 0
    y = np.arange(40.0)
    y[[17, 18]] = y[[18, 17]]
    cases.append((np.arange(40.0), y))                     # one discordant pair: exact c = 1
    cases.append((np.arange(8.0), perm_with_inversions(8, 14, rng)))  # tau = 0: 4c = n(n-1)
    x = np.arange(180.0)
    cases.append((x, x * 3))                               # exact with n >= 171: p = 0
    x = rng.normal(size=12)
    cases.append((x, -x + 0.2 * rng.normal(size=12)))
    return cases


def gen_kendall(out_dir, rng):
    tensors = {}
    for k, (x, y) in enumerate(kendall_cases(rng)):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        res = [ss.kendalltau(x, y, alternative=a) for a in ALTS]
        n = len(x)
        xt = len(np.unique(x)) < n
        yt = len(np.unique(y)) < n
        dis = sum(1 for i in range(n) for j in range(i + 1, n)
                  if (x[i] - x[j]) * (y[i] - y[j]) < 0) if n <= 200 else None
        tot = n * (n - 1) // 2
        exact = (not xt and not yt) and (n <= 33 or (dis is not None and min(dis, tot - dis) <= 1))
        tensors["case%d.x" % k] = x
        tensors["case%d.y" % k] = y
        tensors["case%d.result" % k] = np.array(
            [res[0].statistic, res[0].pvalue, res[1].pvalue, res[2].pvalue, float(exact)])
    st.save(os.path.join(out_dir, "kendall.safetensors"), tensors,
            metadata={"cases": str(len(tensors) // 3), "generator": GEN})


def one_sample(x, popmean):
    r = [ss.ttest_1samp(x, popmean, alternative=a) for a in ALTS]
    return np.array([r[0].statistic, float(r[0].df), r[0].pvalue, r[1].pvalue, r[2].pvalue])


def two_sample(x, y, equal_var):
    r = [ss.ttest_ind(x, y, equal_var=equal_var, alternative=a) for a in ALTS]
    v1, v2 = _stats_py._var(x, ddof=1), _stats_py._var(y, ddof=1)
    if equal_var:
        df, _ = _stats_py._equal_var_ttest_denom(v1, len(x), v2, len(y))
    else:
        df, _ = _stats_py._unequal_var_ttest_denom(v1, len(x), v2, len(y))
    return np.array([r[0].statistic, float(df), r[0].pvalue, r[1].pvalue, r[2].pvalue])


def gen_ttest(out_dir, rng):
    tensors = {}
    ones = [
        (rng.normal(0.3, 1.0, size=3), 0.0),
        (rng.normal(0.5, 1.0, size=10), 0.0),
        (rng.normal(-0.2, 2.0, size=50), 0.1),
        (rng.normal(0.02, 0.1, size=500), 0.0),
        (rng.normal(1.0, 0.5, size=2000), 0.0),   # t ~ 90: p far in the tail
        (rng.normal(0.0, 1.0, size=2000), 0.01),
        (rng.uniform(0, 1, size=7), 0.5),
    ]
    for k, (x, m) in enumerate(ones):
        tensors["one%d.x" % k] = x
        tensors["one%d.popmean" % k] = np.array([m])
        tensors["one%d.result" % k] = one_sample(x, m)
    twos = [
        (rng.normal(0.5, 1, size=3), rng.normal(0, 1, size=3)),
        (rng.normal(0.2, 1, size=20), rng.normal(0, 1, size=25)),
        (rng.normal(0.3, 0.5, size=5), rng.normal(0, 3, size=40)),   # Welch matters
        # UnitMem-like: Top-50 vs Least-50 over a tap's 256 units, in [0, 1]
        (rng.beta(2, 5, size=256), rng.beta(2, 6, size=256)),
        (rng.normal(0.1, 1, size=1000), rng.normal(0, 1, size=800)),
        (rng.normal(3, 1, size=400), rng.normal(0, 1, size=400)),    # tiny p
        (rng.normal(0, 1, size=30), rng.normal(0.4, 1, size=30)),    # t < 0
    ]
    for k, (x, y) in enumerate(twos):
        tensors["two%d.x" % k] = x
        tensors["two%d.y" % k] = y
        tensors["two%d.student" % k] = two_sample(x, y, True)
        tensors["two%d.welch" % k] = two_sample(x, y, False)
    st.save(os.path.join(out_dir, "ttest.safetensors"), tensors,
            metadata={"one": str(len(ones)), "two": str(len(twos)), "generator": GEN})


QUANTILES = np.array([0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.6, 0.75, 0.9, 0.99, 1.0])


def gen_summary(out_dir, rng):
    tensors = {"q": QUANTILES}
    xs = [
        np.array([2.5]),
        np.array([3.0, -1.0]),
        np.array([1.0, 5.0, 3.0]),
        np.array([4.0, 1.0, 4.0, 2.0, 1.0, 4.0, 0.0]),            # ties
        rng.normal(size=100),
        rng.normal(10.0, 3.0, size=2000),
        np.round(rng.normal(size=301), 1),                       # ties, odd n
        rng.exponential(size=64) * 1e-3,
    ]
    for k, x in enumerate(xs):
        tensors["case%d.x" % k] = x
        tensors["case%d.summary" % k] = np.array(
            [np.mean(x), _stats_py._var(x, ddof=1) if len(x) > 1 else np.nan, np.median(x)])
        tensors["case%d.quantiles" % k] = np.quantile(x, QUANTILES)
        tensors["case%d.argsort_asc" % k] = np.argsort(x, kind="stable").astype(np.int64)
        tensors["case%d.argsort_desc" % k] = np.argsort(-x, kind="stable").astype(np.int64)
    topk = [
        (rng.normal(size=500), None, 100),
        (rng.normal(size=500), "corr", 100),
        (np.round(rng.normal(size=60), 0), "ties", 10),
        (rng.normal(size=50), "same", 50),
    ]
    for k, (a, kind, kk) in enumerate(topk):
        if kind == "corr":
            b = a + 0.5 * rng.normal(size=len(a))
        elif kind == "ties":
            b = np.round(a + rng.normal(size=len(a)), 0)
        elif kind == "same":
            b = -a
        else:
            b = rng.normal(size=len(a))
        ta = set(np.argsort(-a, kind="stable")[:kk].tolist())
        tb = set(np.argsort(-b, kind="stable")[:kk].tolist())
        tensors["topk%d.a" % k] = a
        tensors["topk%d.b" % k] = b
        tensors["topk%d.result" % k] = np.array([kk, len(ta & tb) / kk])
    st.save(os.path.join(out_dir, "summary.safetensors"), tensors,
            metadata={"cases": str(len(xs)), "topk": str(len(topk)), "generator": GEN})


def gen_special(out_dir, rng):
    abx = []
    for a in (0.5, 1.0, 2.5, 10.0, 150.0, 1000.0):
        for b in (0.5, 1.0, 3.0, 40.0, 500.0):
            for x in (1e-10, 0.001, 0.1, 0.35, 0.5, 0.8, 0.97, 0.999999):
                abx.append((a, b, x))
    for _ in range(60):
        abx.append((np.exp(rng.uniform(-3, 7)), np.exp(rng.uniform(-3, 7)), rng.uniform()))
    abx = np.array(abx)
    value = sp.betainc(abx[:, 0], abx[:, 1], abx[:, 2])
    dft = []
    for df in (1.0, 2.0, 3.0, 4.5, 9.0, 30.0, 97.3, 510.0, 2000.0, 1e6):
        for t in (-300.0, -40.0, -8.0, -2.5, -1.0, -0.01, 0.0, 0.3, 1.96, 5.0, 25.0):
            dft.append((df, t))
    dft = np.array(dft)
    sdt = sp.stdtr(dft[:, 0], dft[:, 1])
    x = np.array([-38.0, -20.0, -8.0, -3.0, -1.0, -0.5, -1e-3, 0.0, 0.3, 0.7071, 0.71, 2.0,
                  6.0, 9.0])
    st.save(os.path.join(out_dir, "special.safetensors"),
            {"betainc.abx": abx, "betainc.value": value, "stdtr.dft": dft, "stdtr.value": sdt,
             "ndtr.x": x, "ndtr.value": sp.ndtr(x)},
            metadata={"generator": GEN})


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "stats")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240917)
    gen_kendall(out_dir, rng)
    gen_ttest(out_dir, rng)
    gen_summary(out_dir, rng)
    gen_special(out_dir, rng)


if __name__ == "__main__":
    main()
