"""Matrix-free factorisation: operators seen only through products are never densified, memory stays far below N^2,
and the learned factors precondition GMRES."""
import tracemalloc
import numpy as np, pytest, torch
from scipy.sparse.linalg import LinearOperator
from lufmm_nb import operators, fit_lu
from lufmm_nb.precond import krylov_solve
from lufmm_nb.matrix_free import fit_matrix_free, estimate_fit_lu_time
from lufmm_nb.testing import no_large_tensors, ProductsOnly
from lufmm_nb.precond_bench import scale_run, _in_subprocess


def test_products_only_refuses():
    A = ProductsOnly(operators.laplacian_1d(64, sparse=True))
    for f in (A.todense, A.toarray, lambda: np.asarray(A)):
        with pytest.raises(AssertionError, match='dense conversion'): f()


def _guarded(f, N, fraction):
    "Run `f` with torch allocations capped at `fraction * 8 N^2` bytes and NumPy's traced peak below the same bound."
    with no_large_tensors(2**62): torch.zeros(2) + 1     # first entry imports torch's dispatch machinery: keep it out of the trace
    tracemalloc.start()
    try:
        with no_large_tensors(int(8 * N * N * fraction)) as g: out = f()
        _, peak = tracemalloc.get_traced_memory()
    finally: tracemalloc.stop()
    assert g.largest < 8 * N * N * fraction
    assert peak < 8 * N * N * fraction, f"NumPy peak {peak:,} bytes"
    return out


def _gmres_ratio(S, net, maxiter=600):
    b = np.random.default_rng(0).standard_normal(S.shape[0])
    plain, prec = krylov_solve(S, b, maxiter=maxiter), krylov_solve(S, b, net.as_preconditioner())
    assert prec['converged'] and prec['residual'] <= 1e-8
    return plain, prec


@pytest.mark.parametrize('make', [operators.convection_diffusion_1d, operators.laplacian_1d])
def test_fit_lu_quick_matrix_free(make):
    N = 4096
    S = make(N, sparse=True)
    A = ProductsOnly(S)
    net, hist = _guarded(lambda: fit_lu(A, block_size=32, preset='quick', progress=False), N, 1 / 16)
    assert A.products < 4 * N                                # products only: ~2 P per stage plus the scale
    plain, prec = _gmres_ratio(S, net)
    assert prec['iterations'] <= 3 and prec['iterations'] * 100 < plain['iterations']


@pytest.mark.parametrize('make', [operators.convection_diffusion_1d, operators.laplacian_1d])
def test_fit_lu_best_matrix_free_when_blockwise_is_exact(make):
    "'best' on a block-tridiagonal operator: every stage ends at its warm start, so neither the compressed start nor the"
    "end-to-end polish (both of which would form N x N arrays) is needed, and none happens."
    N = 4096
    S = make(N, sparse=True)
    A = ProductsOnly(S)
    net, hist = _guarded(lambda: fit_lu(A, block_size=32, preset='best', progress=False), N, 1 / 16)
    assert hist.init == 'banded' and len(hist) == 0 and net.training_state['phase'] == 'done'
    assert A.products < 4 * N
    plain, prec = _gmres_ratio(S, net)
    assert prec['iterations'] <= 3


@pytest.mark.parametrize('make', [operators.convection_diffusion_1d, operators.laplacian_1d])
def test_fit_matrix_free_16384(make):
    N = 16384
    S = make(N, sparse=True)
    A = ProductsOnly(S)
    net, info = _guarded(lambda: fit_matrix_free(A, 32), N, 1 / 64)
    assert A.products == info['products'] == 3 * 32 + 4
    assert info['probe_rel_err'] < 1e-12
    plain, prec = _gmres_ratio(S, net, maxiter=300)
    assert prec['iterations'] <= 3 and not plain['converged']


def test_matches_fit_lu_quick():
    "The closed form reproduces what fit_lu's block-wise warm start finds for a block-tridiagonal operator."
    S = operators.convection_diffusion_1d(1024, sparse=True)
    a, _ = fit_lu(S, block_size=32, preset='quick', progress=False)
    b, _ = fit_matrix_free(S, 32)
    x = torch.randn(4, 1024, dtype=torch.float64)
    with torch.no_grad(): ya, yb = a(x), b(x)
    assert float((ya - yb).abs().max()) < 1e-9 * float(ya.abs().max())


def test_peak_memory_subprocess_16384():
    "A fresh process factorising N = 16384 (8 N^2 = 2 GiB) stays far below a dense matrix."
    N = 16384
    r = _in_subprocess(scale_run, 'convection_diffusion_1d', N, 'matrix-free')
    assert r['peak_rss_mb'] * 2**20 < 8 * N * N / 2, r
    assert r['lu_conv'] and r['lu_iters'] * 3 <= r['none_iters']


def test_estimate_fit_lu_time():
    S = operators.laplacian_1d(2048, sparse=True)                  # block tridiagonal: fit_lu's direct path, timed
    e = estimate_fit_lu_time(S, 32, n_stages=3)
    assert e['stages_timed'] == 0 and e['path'] == 'banded' and e['estimate_s'] > 0
    e = estimate_fit_lu_time(operators.laplacian_2d(16, sparse=True), 8, n_stages=3, max_steps_per_block=2, optimizer='adam')
    assert e['stages_timed'] == 3 and e['path'] == 'stages' and e['estimate_s'] > 0


@pytest.mark.slow
@pytest.mark.parametrize('op', ['convection_diffusion_1d', 'laplacian_1d'])
def test_scale_65536_matrix_free(op):
    "The issue's size: peak memory under 4 GB and preconditioned GMRES at most a third of the plain iterations."
    r = _in_subprocess(scale_run, op, 65536, 'matrix-free')
    assert r['peak_rss_mb'] < 4000, r
    assert r['lu_conv'] and r['lu_iters'] * 3 <= r['none_iters'], r


@pytest.mark.slow
def test_fit_lu_quick_16384_subprocess():
    r = _in_subprocess(scale_run, 'convection_diffusion_1d', 16384, 'quick')
    assert r['peak_rss_mb'] < 4000 and r['lu_conv'] and r['lu_iters'] * 3 <= r['none_iters'], r


def test_estimate_lu_error_is_matrix_free():
    "The randomized error estimates of `evaluate_lu` above max_n form nothing of size N x N (an operator that refuses densification, and torch's dispatch guard)."
    from lufmm_nb.metrics import estimate_lu_error, evaluate_lu
    N = 4096
    S = operators.laplacian_1d(N, sparse=True)
    net, _ = fit_lu(S, 32, preset='quick', progress=False)
    A = ProductsOnly(S + 1e-6 * operators.laplacian_1d(N, sparse=True) @ operators.laplacian_1d(N, sparse=True))
    with no_large_tensors(N * N * 8 // 16):
        est = estimate_lu_error(net, A, k=6, power_steps=3)
        r = evaluate_lu(net, A, max_n=1024, n_samples=4)
    assert r['method'] == 'randomized' and 0 < est['op_err_rel'] < 1e-4 and 0 < est['op_err_fro_rel'] < 1e-4
    assert est['products']['A'] > 0 and A.products == est['products']['A'] + est['products']['A^T'] + r['products']['A'] + r['products']['A^T']
