"`LUNet.as_preconditioner(A)` checks `(L U)^{-1} A` against the identity before anyone relies on it."
import warnings
import numpy as np, pytest, scipy.sparse as sp, scipy.sparse.linalg as spla, torch
from lufmm_nb import fit_lu, learned_preconditioner, preconditioner_deviation, PoorPreconditionerError


def matern_2d(n, seed=0, ell=.3, nugget=1e-3):
    X = np.random.default_rng(seed).random((n, 2))
    d = np.linalg.norm(X[:, None] - X[None], axis=-1)
    return (1 + np.sqrt(3) * d / ell) * np.exp(-np.sqrt(3) * d / ell) + nugget * np.eye(n)


def scrambled_poisson(m, seed=1):
    T = sp.diags([-1, 2, -1], [-1, 0, 1], (m, m))
    A = (sp.kron(T, sp.identity(m)) + sp.kron(sp.identity(m), T)).tocsr()
    p = np.random.default_rng(seed).permutation(m * m)
    return A[p][:, p].tocsr()


def test_poor_fit_is_flagged():
    A = matern_2d(120)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')                  # the fit warns on its own; the check must too
        net, h = fit_lu(A, block_size=8, preset='quick', max_steps=10, progress=False)
    with pytest.warns(UserWarning, match='is far from the identity'): M = net.as_preconditioner(A)
    assert M.deviation > 1
    with pytest.raises(PoorPreconditionerError, match='above max_deviation = 10'): net.as_preconditioner(A, check='raise')
    # what the check warns about: left-preconditioned GMRES stops at a true residual far above its tolerance
    b = np.ones(120); x, info = spla.gmres(A, b, M=M, rtol=1e-8, maxiter=50)
    assert np.linalg.norm(A @ x - b) / np.linalg.norm(b) > 1e-4


def test_exact_factors_pass_in_the_users_numbering():
    A = scrambled_poisson(17)                            # N = 289: padded and renumbered by fit_lu
    net, h = fit_lu(A, progress=False)
    assert net.n == 289 and net.N > 289 and net.perm is not None
    with warnings.catch_warnings():
        warnings.simplefilter('error'); M = net.as_preconditioner(A)
    assert M.deviation < 1e-10
    d = preconditioner_deviation(net, A, power_steps=0)
    assert d < 1e-10
    B = np.column_stack([M @ A[:, j].toarray().ravel() for j in range(0, 289, 17)])
    assert np.abs(B - np.eye(289)[:, ::17]).max() < 1e-10


def test_estimate_is_a_lower_bound_close_to_the_norm():
    A = scrambled_poisson(9).toarray()
    net, _ = fit_lu(A, progress=False)
    rng = np.random.default_rng(3)
    for s in (1e-3, 1e-1):
        Ap = A + s * np.linalg.norm(A, 2) * rng.standard_normal(A.shape) / np.sqrt(len(A))
        B = np.column_stack([net.solve(torch.from_numpy(Ap[:, j])).numpy() for j in range(len(A))])
        true = np.linalg.norm(B - np.eye(len(A)), 2)
        est = preconditioner_deviation(net, Ap)
        assert true / 2 <= est <= true * (1 + 1e-10), (s, est, true)


def test_learned_preconditioner_checks():
    S = scrambled_poisson(8)
    with warnings.catch_warnings():
        warnings.simplefilter('error'); M = learned_preconditioner(S, 16)
    assert M.deviation is not None and M.deviation < 1e-8
    with pytest.raises(ValueError, match="learned_preconditioner: check must be 'warn', 'raise' or None"): learned_preconditioner(S, 16, check=1)
    assert learned_preconditioner(S, 16, check=None).deviation is None


def test_factors_whose_solve_overflows_are_refused_with_the_reason():
    "A structured solve that overflows on the check's probes is an infinite deviation, reported as such, not an error from inside the check."
    from lufmm_nb.testing import well_conditioned_lunet
    net = well_conditioned_lunet(8, 4, seed=0)
    with torch.no_grad():
        for B in (net.L, net.U): B.bridge[B.offsets.index(0), B.n_blocks - 1:] *= 1e-170   # tiny, well-conditioned pivots
    A = np.eye(32)
    assert preconditioner_deviation(net, A) == float('inf')
    with pytest.raises(PoorPreconditionerError, match='overflows or meets a singular pivot') as e: net.as_preconditioner(A, check='raise')
    assert e.value.deviation == float('inf')
    with pytest.warns(UserWarning, match='overflows or meets a singular pivot'): net.as_preconditioner(A)
    with pytest.raises(ValueError, match='the network is for N = 32 but A has N = 16'): preconditioner_deviation(net, np.eye(16))


@pytest.mark.parametrize('sparse', [True, False])
def test_float32_factors_are_checked_against_a_float64_matrix(sparse):
    "A float32 network preconditions a float64 A: the check solves in the factors' dtype and accepts good factors."
    A = scrambled_poisson(12)
    net, h = fit_lu(A if sparse else A.toarray(), dtype=torch.float32, progress=False)
    M = net.as_preconditioner(A, check='raise')
    assert M.deviation < 1e-3, M.deviation
    b = np.ones(A.shape[0]); x = M.matvec(A @ b)
    assert np.linalg.norm(x - b) / np.linalg.norm(b) < 1e-4
