"""Haar rotations and the rotated-basis score against a float64 brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from precompute.analyses import rotation_stats as rs
from precompute.analyses import rotations as rot
from precompute.core.feeds import ArrayFeed
from precompute.statistics.correlation import pearson_all
from tests.unit.test_analyses_support import ArraySource, toy_open_model


def brute_best_r(responses: np.ndarray, acts: np.ndarray, q: np.ndarray) -> np.ndarray:
    """float64: rotate every position's channel vector by q, correlate every site with every unit, max."""
    a = np.asarray(acts, np.float64)  # (stimuli, N, H, W)
    rotated = np.einsum("snhw,nk->skhw", a, q).reshape(a.shape[0], -1)
    r = pearson_all(responses, rotated.T)
    return np.nanmax(np.where(np.isnan(r), -np.inf, r), axis=1)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_haar_rotation_is_a_rotation(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        q = rs.haar_rotation(n, rng)
        np.testing.assert_allclose(q.T @ q, np.eye(n), atol=1e-12)
        assert np.linalg.det(q) == pytest.approx(1.0, abs=1e-9)


def _trace_moments(sample, n: int, draws: int, seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    qs = [sample(n, rng) for _ in range(draws)]
    tr = np.array([np.trace(q) for q in qs])
    tr2 = np.array([np.trace(q @ q) for q in qs])
    return tr.mean(), (tr**2).mean(), tr2.mean()


def test_haar_trace_moments_match_so_n():
    # Haar on SO(N), N >= 3: E[tr Q] = 0, E[(tr Q)^2] = 1, E[tr Q^2] = 1 (standard errors ~ 1/sqrt(draws))
    for n in (3, 6):
        m1, m2, m3 = _trace_moments(rs.haar_rotation, n, 3000, seed=n)
        assert abs(m1) < 0.08 and abs(m2 - 1) < 0.1 and abs(m3 - 1) < 0.1


def test_trace_moment_check_rejects_qr_without_sign_fix():
    """The moment test can fail: plain QR (no sign correction) is not Haar and is caught."""

    def biased(n, rng):
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        if np.linalg.det(q) < 0:
            q[:, 0] = -q[:, 0]
        return q

    m1, _, _ = _trace_moments(biased, 5, 1000, seed=1)
    assert abs(m1) > 0.5


def test_haar_so3_rotation_angle_distribution():
    # Haar SO(3): tr Q = 1 + 2 cos(theta), theta has density (1 - cos theta) / pi on [0, pi]
    rng = np.random.default_rng(3)
    theta = np.array([np.arccos(np.clip((np.trace(rs.haar_rotation(3, rng)) - 1) / 2, -1, 1)) for _ in range(2000)])
    p = sps.kstest(theta, lambda t: (t - np.sin(t)) / np.pi).pvalue
    assert p > 1e-3


def _toy(n_stim=60, n_sites=5, n_ch=6, h=3, w=2, seed=0):
    rng = np.random.default_rng(seed)
    acts = rng.gamma(2.0, 1.0, size=(n_stim, n_ch, h, w)) * (1 + rng.random(n_ch))[None, :, None, None]
    if n_ch > 1:
        acts[:, 1] = 3.0  # a dead channel: never matched in the natural basis
    resp = rng.normal(size=(n_sites, n_stim)) + acts[:, 0, 1, 1][None] * np.arange(n_sites)[:, None]
    return resp, acts


@pytest.mark.parametrize("mode", ["covariance", "direct"])
def test_identity_rotation_gives_natural_scores(mode):
    resp, acts = _toy()
    z = rs.standardized_rows(resp)
    st = rs.stats_from_activations(z, acts.reshape(acts.shape[0], acts.shape[1], -1), mode)
    got = rs.rotated_best_r(st, np.eye(acts.shape[1]))
    np.testing.assert_allclose(got, brute_best_r(resp, acts, np.eye(acts.shape[1])), atol=1e-6)


@pytest.mark.parametrize("mode", ["covariance", "direct"])
def test_rotated_scores_match_brute_force(mode):
    resp, acts = _toy(seed=1)
    q = rs.haar_rotation(acts.shape[1], np.random.default_rng(0))
    z = rs.standardized_rows(resp)
    st = rs.stats_from_activations(z, acts.reshape(acts.shape[0], acts.shape[1], -1), mode)
    np.testing.assert_allclose(rs.rotated_best_r(st, q), brute_best_r(resp, acts, q), atol=1e-5)


@pytest.mark.parametrize("n_ch", [6, 80])  # N < n: covariance mode; N > n: direct mode
def test_streaming_scores_with_position_passes_match_brute_force(n_ch):
    resp, acts = _toy(n_stim=70, n_ch=n_ch, seed=2)
    ids = [f"s{i}" for i in range(acts.shape[0])]
    source = ArraySource(ids, [acts.astype(np.float32)])
    feed = ArrayFeed(ids, [np.zeros((2, 2), np.uint8)] * len(ids))
    keep = np.arange(3, 70)  # a subset of the stimuli, as when some responses are missing
    qs = [rs.haar_rotation(n_ch, np.random.default_rng(k)) for k in range(2)]
    per_pos = rs.bytes_per_position(resp.shape[0], len(keep), n_ch, rs.choose_mode(len(keep), n_ch))
    natural, rotated, info = rs.layer_rotation_scores(
        source, feed, 0, resp[:, keep], keep, qs, memory_bytes=2 * per_pos
    )  # 3 position passes
    assert info["passes"] == 3 and info["mode"] == ("covariance" if n_ch < len(keep) else "direct")
    np.testing.assert_allclose(natural, brute_best_r(resp[:, keep], acts[keep], np.eye(n_ch)), atol=2e-5)
    for k, q in enumerate(qs):
        np.testing.assert_allclose(rotated[k], brute_best_r(resp[:, keep], acts[keep], q), atol=2e-5)


def test_neural_self_rotation_identity_is_perfect_and_rotation_is_not():
    rng = np.random.default_rng(0)
    resp = rng.normal(size=(12, 200))
    np.testing.assert_allclose(rot.neural_self_rotation(resp, np.eye(12)), 1.0)
    rotated = rot.neural_self_rotation(resp, rs.haar_rotation(12, rng))
    assert np.all(rotated < 0.999) and np.all(rotated > 0)


def test_rotations_analysis_writes_natural_equal_to_layer_matches(results_env, monkeypatch):
    from precompute.analyses import common
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis

    # registered on import (the lead adds precompute.analyses.* to ANALYSIS_MODULES)
    assert rot.run_rotations is not None

    monkeypatch.setattr(common, "open_model", toy_open_model)
    (analysis,) = get_analyses(["rotations"])
    assert run_analysis(results_env, analysis, "mini", "toy")
    with results_env.connect() as con:
        df = con.execute(
            "SELECT region, layer_idx, basis, run, value, seed FROM rotations WHERE dataset = 'mini' AND model = 'toy'"
        ).df()
        ref = con.execute(
            "SELECT s.region, l.layer_idx, median(l.r) AS med FROM layer_matches l JOIN sites s "
            "ON s.dataset = l.dataset AND s.site_id = l.site_id WHERE l.model = 'toy' AND l.rank = 1 "
            "GROUP BY ALL"
        ).df()
    assert set(df["basis"]) == {"natural", "rotated", "neural_self"}
    for region, group in df.groupby("region"):
        nat = group[group["basis"] == "natural"]
        assert len(nat) == 1 and len(group[group["basis"] == "rotated"]) == rot.N_RUNS
        sub = ref[ref["region"] == region]
        best = sub.loc[sub["med"].idxmax()]
        assert int(nat["layer_idx"].iloc[0]) == int(best["layer_idx"])
        assert nat["value"].iloc[0] == pytest.approx(best["med"], abs=1e-5)
        assert group.loc[group["basis"] == "rotated", "seed"].notna().all()


def test_analyses_skip_what_needs_a_model_that_cannot_run(results_env):
    """The toy model has no ONNX file: rotations and receptive fields write nothing instead of failing the step."""
    from precompute.analyses import receptive_fields  # noqa: F401  (registers it)
    from precompute.analyses.registry import get_analyses
    from precompute.jobs.analyze import run_analysis

    for analysis in get_analyses(["rotations", "receptive_fields"]):
        assert run_analysis(results_env, analysis, "mini", "toy")
    with results_env.connect() as con:
        assert con.execute("SELECT count(*) FROM rotations").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM receptive_fields").fetchone()[0] == 0


def test_layers_share_one_inference_pass_and_match_per_layer_scores():
    """Two layers (one per mode) with different stimuli subsets: one pass over their union, each layer's
    scores equal to its own single-layer computation and to the brute force."""
    rng = np.random.default_rng(4)
    n_stim = 70
    ids = [f"s{i}" for i in range(n_stim)]
    small = rng.gamma(2.0, 1.0, size=(n_stim, 5, 3, 3)).astype(np.float32)  # covariance mode
    wide = rng.gamma(2.0, 1.0, size=(n_stim, 90, 2, 1)).astype(np.float32)  # direct mode (N > n)
    source = ArraySource(ids, [small, wide])
    feed = ArrayFeed(ids, [np.zeros((2, 2), np.uint8)] * n_stim)
    resp = rng.normal(size=(4, n_stim)) + small[:, 2, 1, 1][None]
    keep_a, keep_b = np.arange(0, 60), np.arange(5, 70)
    qs = [rs.haar_rotation(5, np.random.default_rng(k)) for k in range(2)]
    jobs = [
        rs.LayerJob(0, resp[:, keep_a], keep_a, qs),
        rs.LayerJob(1, resp[:, keep_b], keep_b, [rs.haar_rotation(90, np.random.default_rng(9))]),
    ]
    got = rs.layers_rotation_scores(source, feed, jobs)
    assert source.calls == -(-n_stim // rs.INFERENCE_BATCH)  # one pass over the 70 stimuli for both layers
    assert [info["mode"] for *_, info in got] == ["covariance", "direct"]
    for job, acts, (natural, rotated, _) in zip(jobs, (small, wide), got, strict=True):
        alone = rs.layer_rotation_scores(
            ArraySource(ids, [small, wide]), feed, job.layer_idx, job.responses, job.stimuli, job.rotations
        )
        np.testing.assert_array_equal(natural, alone[0])
        np.testing.assert_array_equal(rotated, alone[1])
        n_ch = acts.shape[1]
        np.testing.assert_allclose(natural, brute_best_r(job.responses, acts[job.stimuli], np.eye(n_ch)), atol=2e-5)
        for k, q in enumerate(job.rotations):
            np.testing.assert_allclose(rotated[k], brute_best_r(job.responses, acts[job.stimuli], q), atol=2e-5)


def test_plan_passes_packs_chunks_within_the_memory_bound():
    from precompute.models.base import LayerInfo

    layers = [LayerInfo(0, "a", 4, 4, 4), LayerInfo(1, "b", 8, 2, 2)]
    keep = np.arange(50)
    jobs = [rs.LayerJob(0, np.zeros((3, 50)), keep, []), rs.LayerJob(1, np.zeros((3, 50)), keep, [])]
    per = [rs.bytes_per_position(3, 50, la.channels, "covariance") for la in layers]
    plan = rs.plan_passes(jobs, layers, 16 * per[0] + 4 * per[1])
    assert len(plan) == 1 and [j for j, _ in plan[0]] == [0, 1]  # everything fits: one pass
    bound = 10 * per[0]  # layer 0 in chunks of 10 + 6 positions, layer 1 of 3 + 1: the last fits beside the 6
    plan = rs.plan_passes(jobs, layers, bound)
    chunks = [c for chunks in plan for c in chunks]
    covered = {j: sorted(p for jj, sl in chunks if jj == j for p in range(16 if j == 0 else 4)[sl]) for j in (0, 1)}
    assert covered == {0: list(range(16)), 1: list(range(4))}
    for chunks in plan:
        assert sum((sl.stop - sl.start) * per[j] for j, sl in chunks) <= bound
    assert len(plan) == 3


def test_identity_rotation_and_single_channel_layer_reuse_the_natural_scores():
    resp, acts = _toy(n_ch=1, seed=3)
    z = rs.standardized_rows(resp)
    st = rs.stats_from_activations(z, acts.reshape(acts.shape[0], 1, -1), "covariance")
    q = rs.haar_rotation(1, np.random.default_rng(0))
    np.testing.assert_array_equal(q, np.eye(1))  # SO(1) = {1}
    natural, rotated = rs.rotated_best_rs(st, [q, q])
    np.testing.assert_array_equal(rotated, np.stack([natural, natural]))
    np.testing.assert_allclose(natural, brute_best_r(resp, acts, np.eye(1)), atol=1e-6)
