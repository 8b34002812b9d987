"""No silent wrong answers in the numerics: caches that cannot go stale, pivots judged by what they are,
results that do not depend on the scale of the data, honest Krylov residuals, and clear errors for inputs
that cannot give a right answer. Every case checks the correct result against a dense reference, or the
expected error type and message fragment, or the expected warning."""
import copy, math, warnings
import numpy as np, pytest, torch
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator
from lufmm_nb import (FMMMatrix, GFMMBlock, LUNet, fit_lu, evaluate_lu, lu_solve, triangular_solve, dense_block_solve,
                      SingularBlockError, krylov_solve, jacobi_preconditioner, fit_matrix_free, operators as ops)
from lufmm_nb.fmm import pow2_scale
from lufmm_nb.gfmm import clear_caches, weights_fingerprint
from lufmm_nb.solve import default_max_cond
from lufmm_nb.testing import well_conditioned_lunet
from lufmm_nb.metrics import _col_norms

f64 = torch.float64

def rel(a, b): return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))

def dense_solve(net, b, transpose=False):
    "Reference: LAPACK on the dense product of the factors, built without any cache (autograd on: no cached edges)."
    with torch.enable_grad(): A = net.to_dense().detach()
    return torch.linalg.solve(A.T if transpose else A, b)

def agrees(net, b, eps=1e-11):
    for t in (False, True): assert rel(net.solve(b, transpose=t), dense_solve(net, b, t)) < eps

@pytest.fixture
def net(): return well_conditioned_lunet(8, 4, init_scale=.5, shift=2., seed=1)      # N = 32, float64

@pytest.fixture
def b(): return torch.randn(32, 3, dtype=f64, generator=torch.Generator().manual_seed(0))

def block_lu_net(A, P):
    "A `LUNet` holding the exact block LU of a block-tridiagonal `A` (no pivoting, every pivot split evenly by its SVD, no check)."
    N = A.shape[0]; M = N // P
    net = LUNet(M, P, dtype=f64, init_scale=0.)
    L, U = net.L, net.U
    oL0, oL1, oU0, oU1 = L.offsets.index(0), L.offsets.index(-1), U.offsets.index(0), U.offsets.index(1)
    blk = lambda i, j: A[i * P:(i + 1) * P, j * P:(j + 1) * P]
    S = blk(0, 0).clone()
    with torch.no_grad():
        for m in range(M):
            W, s, Vh = torch.linalg.svd(S); r = s.sqrt()
            L.bridge[oL0, M - 1 + m], U.bridge[oU0, M - 1 + m] = W * r, r[:, None] * Vh
            if m + 1 < M:
                Umn, Lnm = (W.mT @ blk(m, m + 1)) / r[:, None], (blk(m + 1, m) @ Vh.mT) / r
                U.bridge[oU1, M - 1 + m], L.bridge[oL1, M - 1 + m + 1] = Umn, Lnm
                S = blk(m + 1, m + 1) - Lnm @ Umn
    return net

# ------------------------------------------------------------------ 1. caches that cannot go stale
def test_data_edit_reproducer():
    "The issue's reproducer: zeroing L's bridges through `.data` must change the solve (here: refuse it) and the metrics."
    A = ops.laplacian_1d(64); net, _ = fit_lu(A, block_size=16, preset='quick', progress=False)
    b = torch.ones(64, dtype=f64); x0 = net.solve(b)
    assert rel(x0, torch.linalg.solve(A, b)) < 1e-8
    net.L.bridge.data.zero_()                                   # L^ = 0: nothing left to solve with
    with pytest.raises(SingularBlockError, match=r'diagonal block 0 \(rows 0..15\) of L is singular'): net.solve(b)
    d = evaluate_lu(net, A, n_samples=10)
    assert abs(d['op_err'] - float(torch.linalg.matrix_norm(A, 2))) < 1e-12 and d['ex_lu'] == math.inf, d

@pytest.mark.parametrize('edit', ['data_mul', 'data_index', 'numpy_view', 'data_swap', 'data_neg', 'data_rebind', 'one_ulp'])
def test_solve_sees_edits_that_bypass_the_version_counter(net, b, edit):
    net.solve(b)                                                # fill the caches
    p, q = net.L.bridge, net.U.enc
    v = (p._version, q._version)
    if edit == 'data_mul': p.data.mul_(1.5)
    elif edit == 'data_index': p.data[:, 8:] *= 0.5
    elif edit == 'numpy_view': q.detach().numpy()[9] *= -3
    elif edit == 'data_swap': q.data[[9, 10]] = q.data[[10, 9]].clone()
    elif edit == 'data_neg': net.U.dec.data.neg_()
    elif edit == 'data_rebind': p.data = p.data * 1.25          # a new storage, version 0 again
    elif edit == 'one_ulp': p.data[0, 9, 1, 1] = torch.nextafter(p.data[0, 9, 1, 1], torch.tensor(math.inf, dtype=f64)) * 1e3
    if edit != 'data_rebind': assert (p._version, q._version) == v  # the counter did not move: only the values tell
    agrees(net, b)

def test_storage_reuse_at_the_same_address(net, b):
    "ABA: a new tensor in a freed buffer can have the old address and version; the values checksum still tells them apart."
    for s in (1.1, 1.2, 1.3, 1.4):
        net.L.bridge.data = net.L.bridge.data.clone() * s
        agrees(net, b)

def test_load_state_dict_copy_and_optimiser_step(net, b):
    net.solve(b)
    net.load_state_dict(well_conditioned_lunet(8, 4, init_scale=.5, shift=2., seed=9).state_dict()); agrees(net, b)
    with torch.no_grad(): net.U.bridge.copy_(net.U.bridge * 0.9)
    agrees(net, b)
    x0 = net.solve(b); opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    net(torch.randn(4, 32, dtype=f64)).square().mean().backward(); opt.step(); agrees(net, b)
    assert rel(net.solve(b), x0) > 1e-6                         # the step did change the answer

def test_dtype_moves(net, b):
    x64 = net.solve(b)
    net.float(); assert rel(net.solve(b.float()).double(), x64) < 1e-5
    with pytest.raises(TypeError, match='expected b of dtype torch.float32'): net.solve(b)
    net.double(); agrees(net, b)

def test_forward_cache_sees_data_edits():
    blk = GFMMBlock(8, 4, dtype=f64); x = torch.randn(3, 32, dtype=f64)
    with torch.no_grad():
        y0 = blk(x); blk.bridge.data.mul_(2.)
        y1 = blk(x)
    with torch.enable_grad(): ref = blk(x).detach()             # uncached path
    assert not torch.equal(y0, y1) and torch.allclose(y1, ref, rtol=1e-13, atol=1e-13)

def test_clear_caches_and_copies(net, b):
    net.solve(b)
    assert '_caches' in net.L.__dict__ and '_caches' not in copy.deepcopy(net.L).__dict__
    assert clear_caches(net) is net and all('_caches' not in m.__dict__ for m in net.modules())
    assert net.L.clear_caches() is net.L
    agrees(net, b)
    with pytest.raises(TypeError, match='clear_caches: expected a torch.nn.Module, got Tensor'): clear_caches(b)

def test_evaluate_lu_sees_data_edit():
    net = well_conditioned_lunet(4, 8, seed=2); A = net.to_dense().detach()
    assert evaluate_lu(net, A, n_samples=5)['op_err'] < 1e-13
    net.U.bridge.data[:, 3:] *= 1.01
    with torch.enable_grad(): Ah = net.to_dense().detach()
    assert abs(evaluate_lu(net, A, n_samples=5)['op_err'] - float(torch.linalg.matrix_norm(Ah - A, 2))) < 1e-12

def test_fingerprint_sees_single_changes():
    x = torch.randn(4, 8, 8, dtype=f64); f = weights_fingerprint(x)
    for i in range(0, x.numel(), 37):
        y = x.clone().reshape(-1); y[i] = torch.nextafter(y[i], torch.tensor(math.inf, dtype=f64))
        assert weights_fingerprint(y.reshape(x.shape)) != f
    assert weights_fingerprint(x.clone()) == f

# ------------------------------------------------------------------ 2. pivots judged by what they are
def test_neumann_reproducer():
    "The singular Neumann Laplacian: a solve must not return a huge x as if it were an answer."
    A = ops.laplacian_1d(64).clone(); A[0, 0] = A[-1, -1] = 1.
    b = torch.randn(64, dtype=f64, generator=torch.Generator().manual_seed(0))
    try: net, _ = fit_lu(A, block_size=16, preset='quick', progress=False)
    except ValueError as e:                                     # fit_lu refusing the singular pivot is a clear error too
        assert 'singular' in str(e); return
    with pytest.raises(SingularBlockError, match=r'the pivot L_ii U_ii of diagonal block 3 \(rows 48..63\).*numerically singular'):
        net.solve(b)

def test_split_singular_pivot_exact_block_lu():
    A = ops.laplacian_1d(64).clone(); A[0, 0] = A[-1, -1] = 1.
    net = block_lu_net(A, 16)
    assert rel(net.to_dense().detach(), A) < 1e-12               # the factors reproduce A
    for where, f in (('lu_solve', lambda b: net.solve(b)), ('lu_solve', lambda b: net.solve(b, transpose=True)),
                     ('dense_block_solve', lambda b: dense_block_solve(*net.factors(), b, 16))):
        with pytest.raises(SingularBlockError, match=f'{where}: the pivot .* of diagonal block 3'): f(torch.ones(64, dtype=f64))
    with pytest.raises(SingularBlockError, match='pivot block 3'): fit_matrix_free(A, 16)
    try: net.solve(torch.ones(64, dtype=f64))
    except SingularBlockError as e: assert e.block == 3 and e.cond > default_max_cond(16, f64)

def test_synthetic_split_pivot(net):
    W, _, Vh = torch.linalg.svd(torch.randn(4, 4, dtype=f64, generator=torch.Generator().manual_seed(1)))
    q = torch.tensor([1., 1e-2, 1e-5, 1e-9], dtype=f64)
    o = net.L.offsets.index(0), net.U.offsets.index(0)
    with torch.no_grad(): net.L.bridge[o[0], 7 + 2] = W * q; net.U.bridge[o[1], 7 + 2] = q[:, None] * Vh
    for cond in (torch.linalg.cond(W * q), torch.linalg.cond(q[:, None] * Vh)): assert cond < 1 / torch.finfo(f64).eps  # each passes alone
    with pytest.raises(SingularBlockError, match='the pivot L_ii U_ii of diagonal block 2 \\(rows 8..11\\)'): net.solve(torch.ones(32, dtype=f64))
    assert torch.isfinite(net.solve(torch.ones(32, dtype=f64), max_cond=math.inf)).all()   # off on request

def test_ill_conditioned_factors_with_fine_pivot_solve(net, b):
    D = torch.diag(torch.tensor([1e5, 1., 1., 1e-5], dtype=f64))
    o = net.L.offsets.index(0), net.U.offsets.index(0)
    with torch.no_grad(): net.L.bridge[o[0], 7 + 5] = D; net.U.bridge[o[1], 7 + 5] = torch.linalg.inv(D)
    with torch.enable_grad(): cond = float(torch.linalg.cond(net.to_dense().detach()))
    agrees(net, b, eps=100 * cond * torch.finfo(f64).eps)

def test_biharmonic_1d_still_solves():
    "A legitimately ill-conditioned case (the article's biharmonic 1D, cond ~ 1e9): exact block LU, solve without complaint."
    A = ops.biharmonic_1d(256)
    net, info = fit_matrix_free(A, 32)
    assert info['max_pivot_cond'] < 1e12
    b = torch.randn(256, dtype=f64, generator=torch.Generator().manual_seed(3))
    x, xr = net.solve(b), torch.linalg.solve(A, b)
    cA = float(torch.linalg.cond(A))
    eb = float(torch.linalg.norm(A @ x - b) / (torch.linalg.matrix_norm(A, 2) * torch.linalg.norm(x) + torch.linalg.norm(b)))
    assert cA > 1e7 and rel(x, xr) < 10 * cA * torch.finfo(f64).eps and eb < 1e-14, (cA, rel(x, xr), eb)

def test_default_max_cond_values():
    assert 1e14 < default_max_cond(32, f64) < 2e14 and 2e5 < default_max_cond(32, torch.float32) < 3e5

# ------------------------------------------------------------------ 3. scaling-safe numerics
def test_fmm_from_dense_any_scale():
    A0 = ops.exponential_kernel(64, rho=0.9)
    f0 = FMMMatrix.from_dense(A0, 3); e0 = rel(f0.to_dense(), A0)
    assert f0.ranks == [1, 2, 2] and e0 < 1e-14
    for c in (1e-300, 2.**-996, 1e-160, 1e160, 2.**996, 1e300):
        f = FMMMatrix.from_dense(A0 * c, 3)
        assert f.ranks == f0.ranks, (c, f.ranks)               # was [1, 1, 1] with relative error 0.27 at 1e160
        assert abs(rel(f.to_dense() / c, A0) - e0) < 1e-14

def test_fmm_from_dense_float32_scale():
    A0 = ops.exponential_kernel(64, rho=0.9).float()
    assert FMMMatrix.from_dense(A0 * 1e30, 3).ranks == FMMMatrix.from_dense(A0 * 1e-30, 3).ranks == FMMMatrix.from_dense(A0, 3).ranks

def test_fmm_matmul_non_finite_and_overflow():
    f = FMMMatrix.from_dense(ops.exponential_kernel(64, rho=0.9), 3)
    with pytest.raises(ValueError, match='FMMMatrix @ x: expected finite x, got NaN or Inf'): f @ torch.full((64,), math.inf, dtype=f64)
    f32 = FMMMatrix.from_dense(ops.exponential_kernel(64, rho=0.9).float(), 3)
    with pytest.raises(ValueError, match='the product overflows float32'): f32 @ torch.full((64,), 1e300, dtype=f64)
    x = torch.randn(64, dtype=f64)
    assert rel((f @ (x * 1e300)) / 1e300, f.to_dense() @ x) < 1e-13

@pytest.mark.parametrize('c', [1e-300, 1e-160, 1e160, 1e300])
def test_solve_any_scale_of_b(net, b, c):
    x = dense_solve(net, b)
    assert rel(net.solve(b * c) / c, x) < 1e-12
    assert rel(dense_block_solve(*net.factors(), b * c, 4) / c, x) < 1e-12
    assert rel(torch.from_numpy(net.as_preconditioner().matmat(b.numpy() * c)) / c, x) < 1e-12

def test_solve_mixed_column_scales(net, b):
    s = torch.tensor([1e-300, 1., 1e300], dtype=f64)
    assert rel(net.solve(b * s) / s, dense_solve(net, b)) < 1e-12

def test_float32_net_float64_rhs_beyond_float32():
    n32 = well_conditioned_lunet(8, 4, init_scale=.5, shift=2., dtype=torch.float32)
    b = np.random.default_rng(0).standard_normal(32)
    x0 = n32.solve(b)
    assert np.array_equal(n32.solve(b * 2.**332) / 2.**332, x0)          # 2^332 ~ 9e99, beyond float32: the very same digits
    assert np.linalg.norm(n32.solve(b * 1e100) / 1e100 - x0) / np.linalg.norm(x0) < 1e-5

def test_solution_overflow_is_an_error():
    small = well_conditioned_lunet(8, 3, init_scale=1e-3, shift=1e-2, dtype=torch.float32)
    with pytest.raises(ValueError, match='lu_solve: the solution overflows float32'): small.solve(np.full(24, 1e37, dtype=np.float32))
    with pytest.raises(ValueError, match='the solution overflows torch.float32'): small.solve(torch.full((24,), 1e37))

def test_evaluate_lu_any_scale():
    net = well_conditioned_lunet(4, 16, seed=3)
    Ap = net.to_dense().detach() + 1e-6 * torch.randn(64, 64, generator=torch.Generator().manual_seed(2), dtype=f64)
    d0 = evaluate_lu(net, Ap, n_samples=10)
    for e in (-498, 498):
        big = copy.deepcopy(net)
        with torch.no_grad():
            for B in (big.L, big.U): B.bridge.mul_(2.**e)
        d = evaluate_lu(big, Ap * 2.**(2 * e), n_samples=10)
        for k in ('op_err_rel', 'ex_lu', 'ex_lapack', 'eb_lu', 'eb_lapack', 'cond_A', 'cond_Ahat'):
            assert math.isfinite(d[k]) and abs(d[k] - d0[k]) <= 1e-9 * abs(d0[k]), (e, k, d[k], d0[k])
        assert abs(d['op_err'] / 2.**(2 * e) - d0['op_err']) <= 1e-9 * d0['op_err']

def test_col_norms_do_not_square_into_overflow():
    X = torch.tensor([[3., 0., math.nan], [4., 0., 1.]], dtype=f64)
    for c in (1e-300, 1., 1e300):
        n = _col_norms(X * c)
        assert abs(float(n[0]) / c - 5) < 1e-14 and float(n[1]) == 0 and n[2] == math.inf

def test_pow2_scale():
    assert [pow2_scale(a) for a in (0.75, 3., 0., math.nan, math.inf)] == [1., 4., 1., 1., 1.]
    assert pow2_scale(1.7e308) == 2.**1023 and pow2_scale(1e38, torch.float32) == 2.**127
    for a in (1e-300, 1e-5, 1e5, 1e300): assert 0.5 <= a / pow2_scale(a) < 1

def test_fit_matrix_free_huge_operator():
    A = ops.laplacian_1d(128, sparse=True) * 1e300
    net, info = fit_matrix_free(A, 32)
    assert info['probe_rel_err'] < 1e-13
    b = np.random.default_rng(0).standard_normal(128)
    x = net.solve(b)
    assert np.isfinite(x).all() and np.linalg.norm(A @ x - b) / np.linalg.norm(b) < 1e-12

@pytest.mark.parametrize('solver', ['gmres', 'cg', 'bicgstab'])
def test_krylov_any_scale(solver):
    A = ops.laplacian_1d(64, sparse=True); b = np.random.default_rng(0).standard_normal(64)
    r0 = krylov_solve(A, b, solver=solver)
    for c in (2.**-996, 2.**996):
        r = krylov_solve(A * c, b * c, solver=solver)
        assert r['iterations'] == r0['iterations'] and r['converged'] and np.allclose(r['x'], r0['x'], rtol=0, atol=1e-13)
    r = krylov_solve(A, b * 1e-300, solver=solver)               # BiCGSTAB's absolute breakdown test would trip here unscaled
    assert r['converged'] and np.allclose(r['x'] / 1e-300, r0['x'], rtol=0, atol=1e-6 * np.abs(r0['x']).max())

# ------------------------------------------------------------------ 4. honest residuals and clear errors
def test_gmres_poor_preconditioner_true_residual():
    A = ops.laplacian_1d(64, sparse=True); b = np.random.default_rng(0).standard_normal(64)
    d = np.r_[np.ones(32), np.full(32, 1e-12)]
    poor = LinearOperator((64, 64), matvec=lambda x: d * x, dtype=np.float64)
    with pytest.warns(UserWarning, match="preconditioned residual estimate reached .* but the true relative residual"):
        r = krylov_solve(A, b, poor, maxiter=200)
    true = np.linalg.norm(b - A @ r['x']) / np.linalg.norm(b)
    assert r['history_solver'][-1] < 1e-12 and abs(r['history'][-1] - true) < 1e-15 and abs(r['residual'] - true) < 1e-15
    assert true > 1e-3 and not r['converged'] and r['history_iters'].tolist() == [0, r['iterations']]

@pytest.mark.parametrize('solver', ['cg', 'bicgstab'])
def test_false_convergence_warns(solver):
    A32 = ops.laplacian_1d(128, sparse=True).astype(np.float32)
    op = LinearOperator((128, 128), matvec=lambda x: (A32 @ x.astype(np.float32)).astype(np.float64), dtype=np.float64)
    b = np.random.default_rng(0).standard_normal(128)
    with pytest.warns(UserWarning, match=f'{solver} reported convergence \\(info 0\\) but the true relative residual'):
        r = krylov_solve(op, b, solver=solver, rtol=1e-10)
    assert r['info'] == 0 and not r['converged'] and r['residual'] > 1e-8
    assert abs(r['history'][-1] - r['residual']) < 1e-15 and len(r['history']) == r['iterations'] + 1

def test_honest_run_does_not_warn():
    A = ops.laplacian_2d(8, sparse=True); b = np.random.default_rng(1).standard_normal(64)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for s in ('gmres', 'cg', 'bicgstab'): assert krylov_solve(A, b, solver=s)['converged']

@pytest.mark.parametrize('solver', ['gmres', 'cg', 'bicgstab'])
def test_krylov_non_finite_preconditioner_output(solver):
    A = ops.laplacian_1d(32, sparse=True); b = np.ones(32)
    bad = LinearOperator((32, 32), matvec=lambda x: np.where(np.arange(32) == 5, np.inf, x), dtype=np.float64)
    with pytest.raises(ValueError, match=r'krylov_solve: the preconditioner M \(application 1\) returned NaN or Inf'):
        krylov_solve(A, b, bad, solver=solver)

@pytest.mark.parametrize('b, err, msg', [
    (np.r_[np.nan, np.ones(31)], ValueError, 'krylov_solve: expected finite b, got NaN or Inf'),
    (np.r_[np.inf, np.ones(31)], ValueError, 'expected finite b'),
    (np.ones(32) + 1j, TypeError, 'expected a real floating \\(or integer\\) b, got dtype complex128'),
    (np.ones(31), ValueError, 'expected b of shape \\(32,\\), got \\(31,\\)'),
    (np.ones((32, 1)), ValueError, 'expected b of shape \\(32,\\), got \\(32, 1\\)'),
    (np.array(['a'] * 32), TypeError, 'got dtype <U1')])
def test_krylov_bad_b(b, err, msg):
    with pytest.raises(err, match=msg): krylov_solve(ops.laplacian_1d(32, sparse=True), b)

def test_krylov_bad_A_and_M_and_args():
    A = ops.laplacian_1d(32, sparse=True).tocsr(); b = np.ones(32)
    An = A.copy(); An.data[0] = np.nan
    with pytest.raises(ValueError, match='krylov_solve: the sparse matrix contains NaN or Inf'): krylov_solve(An, b)
    with pytest.raises(TypeError, match='krylov_solve: expected a real matrix, got a sparse matrix of dtype complex128'): krylov_solve(A.astype(complex), b)
    with pytest.raises(ValueError, match='expected a preconditioner M \\(LinearOperator or matrix\\) of shape \\(32, 32\\)'):
        krylov_solve(A, b, np.eye(8))
    zero = LinearOperator((32, 32), matvec=lambda x: 0 * x, dtype=np.float64)
    with pytest.raises(ValueError, match='the preconditioner M maps b to 0'): krylov_solve(A, b, zero)
    for kw, msg in ((dict(rtol=-1e-8), 'expected rtol a number in \\(0, 1\\)'), (dict(rtol=math.nan), 'expected rtol'),
                    (dict(maxiter=0), 'expected maxiter a positive int'), (dict(restart=2.5), 'expected restart a positive int')):
        with pytest.raises(ValueError, match=msg): krylov_solve(A, b, **kw)

def test_krylov_zero_rhs_and_integer_rhs():
    A = ops.laplacian_1d(32, sparse=True)
    z = krylov_solve(A, np.zeros(32))
    assert z['converged'] and z['residual'] == 0 and not np.any(z['x'])
    r = krylov_solve(A, np.arange(32))
    assert r['converged'] and np.linalg.norm(A @ r['x'] - np.arange(32)) / np.linalg.norm(np.arange(32)) < 1e-8

def test_krylov_learned_preconditioner_nan_rhs_reaches_solve(net):
    pre = net.as_preconditioner()
    with pytest.raises(ValueError, match='LUNet.as_preconditioner: b contains NaN or Inf entries; expected finite b'): pre @ np.full(32, np.nan)

def test_jacobi_subnormal_diagonal():
    with pytest.raises(ValueError, match='expected diagonal entries whose inverse is finite'): jacobi_preconditioner(sp.diags([1., 1e-310]))

@pytest.mark.parametrize('bad, err, msg', [
    (lambda: torch.ones(32, dtype=torch.complex128), TypeError, "expected b of dtype torch.float64 \\(the factors' dtype\\), got torch.complex128"),
    (lambda: np.ones(32) + 1j, TypeError, 'expected a real floating \\(or integer\\) array b, got dtype complex128'),
    (lambda: np.ones(32, dtype=bool), TypeError, 'got dtype bool'),
    (lambda: torch.ones(32, dtype=torch.int64), TypeError, 'got torch.int64'),
    (lambda: torch.tensor(1., dtype=f64), ValueError, 'expected b of shape \\(32,\\) or \\(32, k\\), got \\(\\)'),
    (lambda: np.ones((1, 32)), ValueError, 'got \\(1, 32\\)'),
    (lambda: np.ones((32, 2, 1)), ValueError, 'got \\(32, 2, 1\\)'),
    (lambda: np.ones(0), ValueError, 'got \\(0,\\)'),
    (lambda: [1.] * 32, TypeError, 'expected b as a torch.Tensor or numpy.ndarray, got list'),
    (lambda: torch.ones(32, dtype=f64, requires_grad=True), ValueError, 'the solve is not differentiable'),
    (lambda: torch.full((32,), math.nan, dtype=f64), ValueError, 'b contains NaN or Inf')])
def test_solve_bad_b(net, bad, err, msg):
    with pytest.raises(err, match=msg): net.solve(bad())

def test_solve_integer_and_empty_b(net):
    x = net.solve(np.arange(32))
    assert x.dtype == np.float64 and rel(torch.from_numpy(x), dense_solve(net, torch.arange(32, dtype=f64))) < 1e-12
    assert net.solve(torch.zeros(32, 0, dtype=f64)).shape == (32, 0)

def test_linear_operator_bad_x(net):
    op = net.as_linear_operator()
    with pytest.raises(TypeError, match='LUNet.as_linear_operator: expected a real floating \\(or integer\\) x, got dtype complex128'):
        op @ (np.ones(32) + 1j)
    with pytest.raises(ValueError, match='LUNet.as_linear_operator: expected finite x'): op @ np.full(32, np.nan)
    with torch.enable_grad(): A = net.to_dense().detach().numpy()
    x = np.random.default_rng(0).standard_normal(32)
    assert np.linalg.norm((op @ (x * 1e300)) / 1e300 - A @ x) / np.linalg.norm(A @ x) < 1e-13

def test_non_finite_weights_are_named(net):
    with torch.no_grad(): net.U.bridge[net.U.offsets.index(0), 7 + 1, 2, 2] = math.nan
    with pytest.raises(SingularBlockError, match='diagonal block 1 \\(rows 4..7\\) of U has NaN or Inf entries'): net.solve(torch.ones(32, dtype=f64))
    with pytest.raises(SingularBlockError, match='of T has NaN or Inf'): triangular_solve(net.U, torch.ones(32, dtype=f64), lower=False)

def test_evaluate_lu_complex_linear_operator():
    net = well_conditioned_lunet(4, 8)
    A = ops.laplacian_1d(32).numpy()
    op = LinearOperator((32, 32), matvec=lambda v: A @ v, matmat=lambda V: (A @ V) * (1 + 1j), dtype=np.float64)
    with pytest.raises(TypeError, match='expected a real matrix A, got complex products'): evaluate_lu(net, op, n_samples=2)


def test_large_blocks_survive_set_num_threads():
    """PyTorch's batched LU on the CPU runs several LAPACK factorisations at once, which MKL does not survive once
    `torch.set_num_threads(n > 1)` has been called (it hangs or returns wrong pivots; pytorch/pytorch#141358). The fit's final
    check, the solve and slogdet factor blocks of 199 here: in a fresh process, after set_num_threads(2), they must finish and be right."""
    import subprocess, sys, textwrap
    code = textwrap.dedent('''
        import numpy as np, scipy.sparse as sp, torch
        torch.set_num_threads(2)
        from lufmm_nb import fit_lu
        n = 199; T = sp.diags([-1., 2., -1.], [-1, 0, 1], shape=(n, n)); A = (sp.kron(T, sp.identity(n)) + sp.kron(sp.identity(n), T)).tocsr()
        net, h = fit_lu(A, block_size=199, progress=False)
        b = np.random.default_rng(0).standard_normal(n * n); x = net.solve(b)
        s, ld = net.slogdet()
        print(net.block_size, net.n_blocks, np.linalg.norm(A @ x - b) / np.linalg.norm(b), s)
    ''')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=180, env={**__import__('os').environ, 'OMP_NUM_THREADS': '2'})
    assert r.returncode == 0, r.stderr[-2000:]
    P, M, res, s = r.stdout.split()
    assert (int(P), int(M)) == (199, 256) and float(res) < 1e-10 and float(s) == 1.0, r.stdout
    assert 'DLASWP' not in r.stderr, r.stderr[-2000:]
