"`KernelMatrix`: products in blocks (never the N x N matrix), and `fit_lu` on it in the user's numbering."
import tracemalloc, warnings
import numpy as np, pytest, scipy.sparse.linalg as spla
from lufmm_nb import KernelMatrix, tree_order, fit_lu


def exp_kernel(ell):
    return lambda X, Y: np.exp(-np.sqrt(((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1)) / ell)


def test_products_never_form_the_matrix():
    N, block = 6000, 64
    K = KernelMatrix(np.random.default_rng(0).random((N, 2)), exp_kernel(.2), nugget=1e-2, block=block)
    V = np.random.default_rng(1).standard_normal((N, 2))
    tracemalloc.start()
    Y, Z = K @ V, K.T @ V
    peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    assert peak < N * N * 8 / 20, peak                     # a dense K would be 288 MB; blocks of 64 rows need a few MB
    rows = np.arange(0, N, 997)
    ref = K.entries(rows, np.arange(N)) @ V                # a few rows of the dense product, from entries
    assert np.abs(Y[rows] - ref).max() < 1e-10 * np.abs(ref).max()
    assert np.abs(Z[rows] - ref).max() < 1e-10 * np.abs(ref).max()   # symmetric kernel: K^T = K


def test_fit_lu_on_a_kernel_matrix_in_the_users_numbering():
    pts = np.random.default_rng(5).random((300, 2))
    K = KernelMatrix(pts, exp_kernel(.2), nugget=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        net, h = fit_lu(K, preset='best', time_limit=5, progress=False)
    assert np.array_equal(net.perm, tree_order(pts)) and h.choices[0].startswith("order: the kernel's points")
    D = K.entries(np.arange(300), np.arange(300))
    x = np.random.default_rng(6).standard_normal(300)
    Mx = net.as_linear_operator() @ x                      # L U x in the user's numbering: close to K x
    assert np.linalg.norm(Mx - D @ x) / np.linalg.norm(D @ x) < 1e-2
    r = spla.cg(K, D @ x, M=net.as_preconditioner(K), rtol=1e-10, maxiter=60)[0]
    assert np.linalg.norm(r - x) / np.linalg.norm(x) < 1e-6


def test_natural_order_and_a_given_permutation():
    pts = np.random.default_rng(7).random(200)             # 1D: tree_order sorts
    K = KernelMatrix(pts, exp_kernel(.3), nugget=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        net, h = fit_lu(K, order='natural', preset='quick', max_steps=2, progress=False)
        assert net.perm is None
        p = np.random.default_rng(8).permutation(200)
        net, h = fit_lu(K, order=p, preset='best', time_limit=5, progress=False)
    assert np.array_equal(net.perm, p)
    with pytest.raises(ValueError, match="order='rcm' needs a scipy sparse A"): fit_lu(K, order='rcm', progress=False)


def _kernels_1d():
    "The three 1D kernels of the large-N targets (RBF l = 0.2 + 1e-4, exponential l = 0.1, Matern-3/2 l = 0.1 + 1e-3)."
    d = lambda X, Y: np.abs(X[:, None, 0] - Y[None, :, 0])
    return {'rbf': (lambda X, Y: np.exp(-d(X, Y) ** 2 / (2 * .2 ** 2)), 1e-4), 'exponential': (lambda X, Y: np.exp(-d(X, Y) / .1), 0.),
            'matern32': (lambda X, Y: (1 + np.sqrt(3) * d(X, Y) / .1) * np.exp(-np.sqrt(3) * d(X, Y) / .1), 1e-3)}


def _check_solve_and_logdet(N, seed=0):
    x = np.random.default_rng(seed).random(N)              # unsorted: fit_lu renumbers the points
    for name, (k, nugget) in _kernels_1d().items():
        K = KernelMatrix(x, k, nugget=nugget)
        net, h = fit_lu(K, progress=False)
        assert h.warnings == [] and h.rel_err < 1e-12, (name, h.rel_err)
        D = K.entries(np.arange(N), np.arange(N))
        b = np.random.default_rng(seed + 1).standard_normal(N); xs = net.solve(b)
        backward = np.linalg.norm(D @ xs - b) / (np.linalg.norm(D, 2) * np.linalg.norm(xs) + np.linalg.norm(b))
        sign, ld = np.linalg.slogdet(D)
        assert backward <= 1e-12, (name, backward)
        assert net.slogdet()[0] == sign and abs(net.logdet() - ld) <= 1e-10 * abs(ld), (name, net.logdet(), ld)


def test_kernel_solve_and_logdet_against_dense():
    "1D kernels through KernelMatrix: the solve's backward error and logdet against dense LAPACK (N = 1,024 here, 4,096 in the slow test)."
    _check_solve_and_logdet(1024)


@pytest.mark.slow
def test_kernel_solve_and_logdet_against_dense_4096():
    "Measured: backward errors 2e-17 to 3e-17 and logdet within 2e-14 (relative) of slogdet, about 25 s per kernel on 2 cores."
    _check_solve_and_logdet(4096)



def _norm2(D, steps=30):
    "||D||_2 of a symmetric-ish dense matrix by power iteration on D^T D (an SVD of N = 5,000 would take most of a minute)."
    v = np.random.default_rng(0).standard_normal(D.shape[1])
    for _ in range(steps): v = D.T @ (D @ v); v /= np.linalg.norm(v)
    return np.linalg.norm(D @ v)


def _check_semiseparable(N, **kw):
    "Above compress_max_n, 1D kernels get their block LU from entries alone (the semiseparable construction): no N x N array anywhere."
    import torch
    from lufmm_nb.testing import no_large_tensors
    x = np.random.default_rng(3).random(N)
    with no_large_tensors(2**62): torch.zeros(2) + 1       # torch's dispatch machinery imported outside the trace
    for name, (k, nugget) in _kernels_1d().items():
        K = KernelMatrix(x, k, nugget=nugget, block=256)  # products by blocks of 256 rows: a few temporaries of 256 x N
        tracemalloc.start()
        try:
            with no_large_tensors(N * N * 8 // 2) as g: net, h = fit_lu(K, progress=False, **kw)
            peak = tracemalloc.get_traced_memory()[1]
        finally: tracemalloc.stop()
        assert g.largest < N * N * 8 // 2 and peak < N * N * 8 // 2, (name, g.largest, peak)   # a dense K: twice that
        assert h.init == 'semiseparable' and h.warnings == [] and h.rel_err < 1e-11, (name, h.init, h.rel_err, h.choices)
        assert any(c.startswith('init: semiseparable block LU') for c in h.choices)
        assert max(net.training_state['ranks']['lower']) <= 16
        D = K.entries(np.arange(N), np.arange(N))
        b = np.random.default_rng(4).standard_normal(N); xs = net.solve(b)
        backward = np.linalg.norm(D @ xs - b) / (_norm2(D) * np.linalg.norm(xs) + np.linalg.norm(b))
        sign, ld = np.linalg.slogdet(D)
        assert backward <= 1e-12, (name, backward)
        assert net.slogdet()[0] == sign and abs(net.logdet() - ld) <= 1e-10 * abs(ld), (name, net.logdet(), ld)


def test_semiseparable_path_above_the_dense_limit():
    "N = 2,000 (padded to 64 blocks of 32) with the dense limit lowered to 1,024, so that the path is the one large N takes."
    _check_semiseparable(2000, compress_max_n=1024)


@pytest.mark.slow
def test_semiseparable_path_at_5000():
    "The default limits: N = 5,000 > compress_max_n = 4,096."
    _check_semiseparable(5000)


def test_products_only_kernel_gets_peeled_factors():
    "A kernel matrix seen only through products (ProductsOnly refuses densification): peeling, then the semiseparable LU, in few products."
    from lufmm_nb.testing import ProductsOnly
    N = 2000
    x = np.sort(np.random.default_rng(7).random(N))
    for name, (k, nugget) in _kernels_1d().items():
        D = k(x[:, None], x[:, None]) + nugget * np.eye(N)
        A = ProductsOnly(D)
        net, h = fit_lu(A, progress=False, compress_max_n=1024)
        assert h.init == 'semiseparable' and h.warnings == [], (name, h.init, h.choices)
        assert any('HODLR form of A peeled from' in c for c in h.choices), h.choices
        used = h.products['A'] + h.products['A^T']
        assert used == A.products and used <= 800, (name, used)   # peeling 4 x 20 x 5 levels + 32, banded probe 100, checks 10
        Z = np.random.default_rng(8).standard_normal((N, 4))
        assert np.linalg.norm(net.as_linear_operator() @ Z - D @ Z) / np.linalg.norm(D @ Z) < 1e-9, name


def test_planar_points_get_a_larger_block_and_precondition_cg():
    "Points in the plane: the block grows with sqrt(N) (rank across a cut), the capped construction is kept and said to be approximate, and it preconditions CG well."
    N = 4500                                                   # above compress_max_n: the construction from entries
    pts = np.random.default_rng(3).random((N, 2))
    K = KernelMatrix(pts, exp_kernel(.2), nugget=1e-2)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); net, h = fit_lu(K, progress=False, compress_max_n=4096)
    assert net.block_size == 64 and 'points in 2D' in ' '.join(h.choices)
    assert h.init == 'semiseparable' and 1e-12 < h.rel_err < 1e-2
    assert any('reproduce A only to' in str(x.message) for x in w)       # capped: approximate, and said so
    b = np.random.default_rng(4).standard_normal(N); its = [0]
    x, info = spla.cg(K, b, M=net.as_preconditioner(), rtol=1e-8, maxiter=200, callback=lambda xk: its.__setitem__(0, its[0] + 1))
    assert info == 0 and np.linalg.norm(K @ x - b) / np.linalg.norm(b) < 1e-7 and its[0] <= 30, its[0]


def test_kernel_fit_reads_entries_and_never_multiplies():
    "A kernel's product costs N^2 kernel values: the fingerprint and the final check read rows as entries, so the fit uses no product at all."
    from lufmm_nb.fit import matrix_fingerprint, fingerprint_mismatch
    from lufmm_nb.linop import MatVecOperator
    x = np.random.default_rng(8).random(3000)
    K = KernelMatrix(x, exp_kernel(.1), nugget=1e-3)
    net, h = fit_lu(K, progress=False, compress_max_n=1024)
    assert h.init == 'semiseparable' and h.products == {'A': 0, 'A^T': 0} and h.rel_err < 1e-12
    op = MatVecOperator.checked(K, 'test')
    fp = matrix_fingerprint(op)
    assert fp['how'] == 'entries' and op.products == {'A': 0, 'A^T': 0}
    assert fingerprint_mismatch(MatVecOperator(K.entries(np.arange(3000), np.arange(3000))), fp) < 1e-13   # the same matrix, dense
    assert fingerprint_mismatch(MatVecOperator.checked(KernelMatrix(x, exp_kernel(.1), nugget=2e-3), 'test'), fp) > 1e-6
