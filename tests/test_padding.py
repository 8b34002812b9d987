"""Any N >= 1 at any block size: `fit_lu` pads `A` to `[[A, 0], [0, c I]]` with a power-of-two number of blocks, and every
user-facing operation (solve, its transpose, the scipy operators, the log-determinant, the metrics, checkpoints) works in
the user's size N, checked here against dense float64 references."""
import numpy as np, pytest, torch, scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator
from lufmm_nb import fit_lu, LUNet, evaluate_lu, probe_error, operators as ops

f64 = torch.float64
QUICK = dict(preset='quick', progress=False)

def grid_poisson(k):                                   # 2D 5-point Laplacian on a k x k grid: N = k^2, not a power of two
    T = sp.diags([-1., 2., -1.], [-1, 0, 1], shape=(k, k)); I = sp.identity(k)
    return (sp.kron(T, I) + sp.kron(I, T)).tocsr()

def as_kind(A, kind):
    D = A.toarray() if sp.issparse(A) else np.asarray(A)
    if kind == 'dense': return torch.tensor(D)
    if kind == 'sparse': return sp.csr_matrix(D)
    return LinearOperator(D.shape, matvec=lambda x: D @ x, rmatvec=lambda x: D.T @ x, matmat=lambda X: D @ X, rmatmat=lambda X: D.T @ X, dtype=np.float64)

CASES = [('laplacian_1d', lambda: ops.laplacian_1d(100), 32, 'quick'), ('grid_poisson', lambda: grid_poisson(7), 8, 'quick'),
         ('rbf', lambda: ops.rbf_kernel(150, nugget=1e-2), 16, 'best'),     # dense: the compressed exact block LU ('best')
         ('convdiff', lambda: ops.convection_diffusion_1d(37), 4, 'quick')]

@pytest.mark.parametrize('kind', ['dense', 'sparse', 'linop'])
@pytest.mark.parametrize('name, make, P, preset', CASES, ids=[c[0] for c in CASES])
def test_padded_factors_against_dense(name, make, P, preset, kind):
    A = make(); D = A.toarray() if sp.issparse(A) else np.asarray(A); n = D.shape[0]
    net, h = fit_lu(as_kind(A, kind), P, dtype=f64, preset=preset, progress=False)
    assert net.n == n and net.N > n and net.N == net.n_blocks * P and h.choices and f'N = {n}' in h.choices[0]
    tol = 1e-13 * np.linalg.cond(D)
    rng = np.random.default_rng(n)
    b = rng.standard_normal((n, 3))
    for t in (False, True):
        ref = np.linalg.solve(D.T if t else D, b)
        assert np.linalg.norm(net.solve(b, transpose=t) - ref) / np.linalg.norm(ref) < tol
    M, Lop = net.as_preconditioner(), net.as_linear_operator()
    assert M.shape == Lop.shape == (n, n)
    np.testing.assert_allclose(Lop @ np.eye(n), D, atol=1e-12 * np.abs(D).max())
    np.testing.assert_allclose(Lop.T @ b, D.T @ b, atol=1e-12 * np.abs(D).max() * np.abs(b).max() * n)
    ref = np.linalg.solve(D, b[:, 0])
    assert np.linalg.norm(M @ b[:, 0] - ref) / np.linalg.norm(ref) < tol
    sign, la = net.slogdet(); s0, l0 = np.linalg.slogdet(D)
    assert sign == s0 and abs(la - l0) < 1e-10 * max(1., abs(l0))
    e = evaluate_lu(net, torch.tensor(D), n_samples=8)
    assert e['N'] == n and e['op_err_rel'] < 1e-12
    assert probe_error(net, torch.tensor(D)) < 1e-12

def test_padded_float32():
    A = ops.laplacian_1d(45)
    net, h = fit_lu(A, 8, dtype=torch.float32, **QUICK)
    b = torch.randn(45, generator=torch.Generator().manual_seed(0))
    ref = torch.linalg.solve(A, b.double())
    assert (net.N, net.n) == (64, 45) and float((net.solve(b).double() - ref).norm() / ref.norm()) < 1e-4

def test_padded_checkpoint_round_trip(tmp_path):
    A = ops.exponential_kernel(70)
    net, _ = fit_lu(A, 16, dtype=f64, **QUICK)
    p = net.save(tmp_path / 'n.pt'); net2 = LUNet.load(p)
    assert (net2.n, net2.N, net2.pad_value) == (net.n, net.N, net.pad_value)
    b = np.ones(70)
    np.testing.assert_array_equal(net2.solve(b), net.solve(b))
    assert net2.slogdet() == net.slogdet()

def test_padded_shape_errors_name_the_user_size():
    net, _ = fit_lu(ops.laplacian_1d(20), 8, dtype=f64, **QUICK)
    with pytest.raises(ValueError, match=r"lu_solve: expected b of shape \(20,\) or \(20, k\), got \(32,\)"): net.solve(np.ones(32))
    with pytest.raises(ValueError, match=r"LUNet\.as_preconditioner: expected x of shape \(20,\)"): net.as_preconditioner() @ np.ones(32)
    with pytest.raises(ValueError, match=r"evaluate_lu: the network is for N = 20 but A is 32 x 32"): evaluate_lu(net, ops.laplacian_1d(32))

@pytest.mark.parametrize('kw, msg', [(dict(n=0), r"expected n an int in 1\.\.N = 8"), (dict(n=9), r"expected n an int in 1\.\.N = 8"),
                                     (dict(pad_value=0.), r"expected pad_value a finite nonzero number")])
def test_lunet_padding_arguments(kw, msg):
    with pytest.raises(ValueError, match=r"LUNet: " + msg): LUNet(4, 2, **kw)

def test_padded_gmres_preconditioner():
    from lufmm_nb import krylov_solve
    S = grid_poisson(10)                               # N = 100, block size 16: 8 blocks of 16 = 128
    net, _ = fit_lu(S, 16, dtype=f64, **QUICK)
    r = krylov_solve(S, np.ones(100), net.as_preconditioner())
    assert r['converged'] and r['residual'] < 1e-8

# ------------------------------------------------------------------ block_size='auto' (the default)
@pytest.mark.parametrize('k, P, M', [(45, 64, 32), (20, 50, 8), (9, 41, 2)])
def test_auto_block_size_covers_the_band(k, P, M):
    S = grid_poisson(k)                                 # bandwidth k: any block size >= k makes it block tridiagonal
    net, h = fit_lu(S, dtype=f64, **QUICK)
    assert (net.block_size, net.n_blocks) == (P, M) and h.choices[0].startswith(f"block_size {P}: A's bandwidth is {k}")
    b = np.random.default_rng(k).standard_normal(k * k); D = S.toarray()
    ref = np.linalg.solve(D, b)
    assert np.linalg.norm(net.solve(b) - ref) / np.linalg.norm(ref) < 1e-11

def test_auto_block_size_dense_banded_and_wide():
    net, h = fit_lu(ops.laplacian_1d(100), dtype=f64, **QUICK)       # bandwidth 1: no blocks below 32 (or N / 2)
    assert (net.block_size, net.n_blocks) == (50, 2)
    perm = np.random.default_rng(0).permutation(900)                 # a scrambled mesh: its band is nearly N wide
    S = grid_poisson(30)[perm][:, perm]
    from lufmm_nb.prepare import auto_block_size as _auto_block_size
    from lufmm_nb import MatVecOperator
    P, why = _auto_block_size(MatVecOperator(S), None)             # sparse: the band's block LU, compressed (memory grows with P)
    assert P == 57 and 'above 256' in why and "order='rcm'" in why and 'computed inside the band' in why   # 16 blocks of 57: 12 rows padded
    for N in (4096, 6859, 33025, 90000, 262144):                      # blocks of about 64, little padding
        W = (sp.identity(N) + sp.diags([1.], [299], (N, N))).tocsr()     # band 299 > 256
        P, why = _auto_block_size(MatVecOperator(W), None); M = 1 << (-(-N // P) - 1).bit_length()
        assert 45 <= P <= 91 and M * P - N < M * P // 4 and f'{M} of {P}' in why, (N, P, M)   # under a quarter padded
    P, why = _auto_block_size(MatVecOperator(torch.from_numpy(S.toarray())), None)   # dense: no ordering to suggest
    assert P == 32 and 'above 256' in why and 'A is dense' in why and 'rcm' not in why

def test_auto_block_size_operator_and_n_blocks():
    A = ops.laplacian_1d(64).numpy()
    L = LinearOperator((64, 64), matvec=lambda x: A @ x, rmatvec=lambda x: A.T @ x, dtype=np.float64)
    net, h = fit_lu(L, dtype=f64, **QUICK)
    assert net.block_size == 32 and 'known only by its products' in h.choices[0]
    net, h = fit_lu(ops.laplacian_1d(100), n_blocks=4, dtype=f64, **QUICK)
    assert (net.block_size, net.n_blocks, net.n) == (25, 4, 100) and 'n_blocks = 4 given' in h.choices[0]

# ------------------------------------------------------------------ order='auto' (the default): reverse Cuthill-McKee for sparse A
@pytest.mark.parametrize('k', [12, 17])
def test_scrambled_mesh_reordered_and_exact(tmp_path, k):
    rng = np.random.default_rng(k); n = k * k; q = rng.permutation(n)
    S = grid_poisson(k)[q][:, q].tocsr(); S = (S + 0.3 * sp.triu(S, 1)).tocsr()     # a mesh in a scrambled order, nonsymmetric
    D = S.toarray()
    net, h = fit_lu(S, dtype=f64, **QUICK)
    assert h.choices[0].startswith("order: reverse Cuthill-McKee narrows A's bandwidth from") and net.config['perm'] is not None
    tol = 1e-13 * np.linalg.cond(D); b = rng.standard_normal((n, 2))
    for t in (False, True):
        ref = np.linalg.solve(D.T if t else D, b)
        assert np.linalg.norm(net.solve(b, transpose=t) - ref) / np.linalg.norm(ref) < tol
    np.testing.assert_allclose(net.as_linear_operator() @ np.eye(n), D, atol=1e-12)
    ref = np.linalg.solve(D, b[:, 0]); assert np.linalg.norm(net.as_preconditioner() @ b[:, 0] - ref) / np.linalg.norm(ref) < tol
    assert evaluate_lu(net, S, n_samples=4)['op_err_rel'] < 1e-12 and probe_error(net, S) < 1e-12
    assert abs(net.slogdet()[1] - np.linalg.slogdet(D)[1]) < 1e-9
    net2 = LUNet.load(net.save(tmp_path / 'n.pt')); np.testing.assert_array_equal(net2.solve(b), net.solve(b))

def test_order_arguments():
    S = grid_poisson(6)
    net, h = fit_lu(S, order='natural', dtype=f64, **QUICK); assert net.config['perm'] is None
    p = np.arange(36)[::-1].copy()
    net, h = fit_lu(S, order=p, dtype=f64, **QUICK); assert net.config['perm'] == list(p) and h.choices[0] == 'order: the permutation given'
    b = np.ones(36); ref = np.linalg.solve(S.toarray(), b)
    assert np.linalg.norm(net.solve(b) - ref) / np.linalg.norm(ref) < 1e-12
    with pytest.raises(ValueError, match=r"fit_lu: order must be 'auto', 'natural', 'rcm' or a permutation, got 'amd'"): fit_lu(S, order='amd', **QUICK)
    with pytest.raises(ValueError, match=r"fit_lu: expected order a permutation of 0\.\.35"): fit_lu(S, order=[0, 0, 1], **QUICK)
    with pytest.raises(ValueError, match=r"fit_lu: order='rcm' needs a scipy sparse A"): fit_lu(torch.tensor(S.toarray()), order='rcm', **QUICK)
    with pytest.raises(ValueError, match=r"LUNet: expected perm a permutation of 0\.\.7"): LUNet(4, 2, perm=[1, 1, 2, 3, 4, 5, 6, 7])
