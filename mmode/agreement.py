"""Agreement of the tool's measurements with a reference (manual calipers, traced borders, a simulator's truth).

Method-comparison studies in echocardiography report it as Bland & Altman do (Lancet 1986; i: 307-310): the
bias, the mean of the differences (measured - reference), and the 95 % limits of agreement, bias -/+ 1.96 SD of
the differences, within which the difference on a new recording is expected to fall 19 times out of 20. With a
few recordings these are uncertain themselves; their paper gives the standard errors used here, SD / sqrt(n) for
the bias and about sqrt(3) SD / sqrt(n) for each limit, with Student's t on n - 1 degrees of freedom. A trend of
the differences with the size measured (proportional bias) shows as the slope of the differences on the pairs'
means (least squares, t on n - 2 degrees of freedom).
"""
import numpy as np

LOA_SD = 1.96  # limits of agreement: bias -/+ this many SDs of the differences


def _t_quantile(level, degrees_of_freedom):
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, degrees_of_freedom))


def _interval(centre, half_width):
    return float(centre - half_width), float(centre + half_width)


def bland_altman(measured, reference, level=0.95):
    """Agreement of paired values in one unit, a pair with a NaN or None left out -> dict:
    n; bias (mean of measured - reference); sd of the differences (ddof 1); loa_low, loa_high (bias -/+ 1.96 sd);
    bias_ci, loa_low_ci, loa_high_ci ((low, high) `level` intervals); slope of the differences on the pairs' means,
    and slope_ci. Fields that need more pairs are None: sd, the limits and the intervals under 2, the slope under 3
    or when every pair has the same mean; everything but n without pairs."""
    measured = np.array([np.nan if value is None else value for value in measured], dtype=float)
    reference = np.array([np.nan if value is None else value for value in reference], dtype=float)
    if measured.shape != reference.shape:
        raise ValueError(f"{measured.size} measured values against {reference.size} reference values")
    kept = np.isfinite(measured) & np.isfinite(reference)
    difference, mean = measured[kept] - reference[kept], (measured[kept] + reference[kept]) / 2.0
    n = int(difference.size)
    result = dict.fromkeys(("bias", "sd", "loa_low", "loa_high", "bias_ci", "loa_low_ci", "loa_high_ci", "slope",
                            "slope_ci"))
    result["n"] = n
    if n == 0:
        return result
    bias = float(difference.mean())
    result["bias"] = bias
    if n < 2:
        return result
    sd = float(difference.std(ddof=1))
    t = _t_quantile(level, n - 1)
    loa_low, loa_high = bias - LOA_SD * sd, bias + LOA_SD * sd
    bias_half, loa_half = t * sd / np.sqrt(n), t * sd * np.sqrt(3.0 / n)
    result.update(sd=sd, loa_low=loa_low, loa_high=loa_high, bias_ci=_interval(bias, bias_half),
                  loa_low_ci=_interval(loa_low, loa_half), loa_high_ci=_interval(loa_high, loa_half))
    spread = float(((mean - mean.mean()) ** 2).sum())
    if n >= 3 and spread > 0.0:
        slope = float(((mean - mean.mean()) * (difference - bias)).sum() / spread)
        residual = difference - bias - slope * (mean - mean.mean())
        slope_half = _t_quantile(level, n - 2) * np.sqrt(float((residual ** 2).sum()) / (n - 2) / spread)
        result.update(slope=slope, slope_ci=_interval(slope, slope_half))
    return result
