"""Agreement of the tool's measurements with a reference (manual calipers, traced borders, a simulator's truth).

Method-comparison studies in echocardiography report it as Bland & Altman do (Lancet 1986; i: 307-310): the
bias, the mean of the differences (measured - reference), and the 95 % limits of agreement, bias -/+ 1.96 SD of
the differences, within which the difference on a new recording is expected to fall 19 times out of 20. With a
few recordings these are uncertain themselves; their paper gives the standard errors used here, SD / sqrt(n) for
the bias and about sqrt(3) SD / sqrt(n) for each limit, with Student's t on n - 1 degrees of freedom. A trend of
the differences with the size measured (proportional bias) shows as the slope of the differences on the pairs'
means (least squares, t on n - 2 degrees of freedom).

With several pairs per recording (beats) the differences of one recording are not independent: the error a
recording shares across its beats (its between-recording component) does not average out over its beats. Bland &
Altman (J Biopharm Stat 2007; 17: 571-582, "true value varies") split the variance of one difference into that
component and the beat-to-beat one by a one-way analysis of variance of the differences by recording, and put the
limits of agreement for one pair at bias -/+ 1.96 sqrt(between + within) (`repeated_measures`); the mean of k
beats has sqrt(between + within / k).
"""
import numpy as np

LOA_SD = 1.96  # limits of agreement: bias -/+ this many SDs of the differences


def _t_quantile(level, degrees_of_freedom):
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, degrees_of_freedom))


def _interval(centre, half_width):
    return float(centre - half_width), float(centre + half_width)


def _values(values):
    """A float array of `values`, None read as NaN (a value not measured)."""
    return np.array([np.nan if value is None else value for value in values], dtype=float)


def bland_altman(measured, reference, level=0.95):
    """Agreement of paired values in one unit, a pair with a NaN or None left out -> dict:
    n; bias (mean of measured - reference); sd of the differences (ddof 1); loa_low, loa_high (bias -/+ 1.96 sd);
    bias_ci, loa_low_ci, loa_high_ci ((low, high) `level` intervals); slope of the differences on the pairs' means,
    and slope_ci. Fields that need more pairs are None: sd, the limits and the intervals under 2, the slope under 3
    or when every pair has the same mean; everything but n without pairs."""
    measured, reference = _values(measured), _values(reference)
    if measured.shape != reference.shape:
        raise ValueError(f"{measured.size} measured values against {reference.size} reference values")
    kept = np.isfinite(measured) & np.isfinite(reference)
    difference, mean = measured[kept] - reference[kept], (measured[kept] + reference[kept]) / 2.0
    n = int(difference.size)
    result = dict.fromkeys(("bias", "sd", "loa_low", "loa_high", "bias_ci", "loa_low_ci", "loa_high_ci", "slope",
                            "slope_ci"))
    result["n"] = n
    bias = float(difference.mean()) if n else None
    result["bias"] = bias
    if n < 2:  # no spread from fewer pairs
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


def repeated_measures(measured, reference, recording, level=0.95):
    """Agreement of paired values with several pairs per recording (`recording`: a label per pair), a pair with a
    NaN or None left out -> dict: n (pairs), n_recordings; bias (mean of all differences); sd_within (beat to
    beat within a recording) and sd_between (the part of one difference a recording's pairs share) of the
    differences; sd, of one difference (both together); loa_low, loa_high (bias -/+ 1.96 sd, for one pair);
    bias_ci (`level` interval: the bias's variance from both components, Student's t on n_recordings - 1
    degrees of freedom). sd_within is None without a recording of two pairs (sd is then the differences' own and
    sd_between the same), sd_between None with one recording (sd is then sd_within, which leaves out what the
    recording shares); sd and the limits need two pairs, bias_ci two recordings; otherwise None."""
    measured, reference = _values(measured), _values(reference)
    recording = np.asarray(recording)
    if not measured.shape == reference.shape == recording.shape:
        raise ValueError(f"{measured.size} measured values, {reference.size} reference values and "
                         f"{recording.size} recording labels")
    kept = np.isfinite(measured) & np.isfinite(reference)
    difference = measured[kept] - reference[kept]
    _, group = np.unique(recording[kept], return_inverse=True)
    n, n_recordings = int(difference.size), int(group.max() + 1) if difference.size else 0
    result = dict.fromkeys(("bias", "sd_within", "sd_between", "sd", "loa_low", "loa_high", "bias_ci"))
    result.update(n=n, n_recordings=n_recordings)
    bias = float(difference.mean()) if n else None
    result["bias"] = bias
    if n < 2:  # no spread from fewer pairs
        return result
    pairs = np.bincount(group).astype(float)
    recording_mean = np.bincount(group, weights=difference) / pairs
    within_ss = float(((difference - recording_mean[group]) ** 2).sum())
    within_var = within_ss / (n - n_recordings) if n > n_recordings else None
    between_var = None  # one recording: what its pairs share cannot be told from the bias
    if n_recordings >= 2:
        between_ms = float((pairs * (recording_mean - bias) ** 2).sum()) / (n_recordings - 1)
        pairs_per_recording = (n ** 2 - float((pairs ** 2).sum())) / ((n_recordings - 1) * n)
        between_var = max(0.0, (between_ms - (within_var or 0.0)) / pairs_per_recording)
    sd = float(np.sqrt((between_var or 0.0) + (within_var or 0.0)))
    result.update(sd_within=None if within_var is None else float(np.sqrt(within_var)),
                  sd_between=None if between_var is None else float(np.sqrt(between_var)), sd=sd,
                  loa_low=bias - LOA_SD * sd, loa_high=bias + LOA_SD * sd)
    if n_recordings >= 2:
        bias_var = between_var * float((pairs ** 2).sum()) / n ** 2 + (within_var or 0.0) / n
        result["bias_ci"] = _interval(bias, _t_quantile(level, n_recordings - 1) * np.sqrt(bias_var))
    return result


def mean_of_beats_limits(agreement, beats):
    """(low, high): the limits of agreement of the mean of `beats` pairs of one recording, from
    `repeated_measures`'s components (the beat-to-beat part shrinks with the beats, the shared part does not);
    None where it has no limits or no shared part (one recording)."""
    if agreement["sd"] is None or agreement["sd_between"] is None:
        return None
    within = agreement["sd_within"] or 0.0
    half = LOA_SD * np.sqrt(agreement["sd_between"] ** 2 + within ** 2 / beats)
    return _interval(agreement["bias"], half)
