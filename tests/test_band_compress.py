"The block LU inside the band and its windowed compression against their dense references: block counts that are not powers of two, float32, orderings and padding through fit_lu, and bad input."
import numpy as np, pytest, torch, scipy.sparse as sp
from lufmm_nb.band_compress import block_banded_lu, compress_banded, banded_compress_lu
from lufmm_nb.gallery import block_bandwidth
from lufmm_nb.compress import block_lu, compress_gfmm, rel_error
from lufmm_nb.lunet import LUNet
from lufmm_nb.core import SingularBlockError
from lufmm_nb import fit_lu


def mesh_like(n, seed):
    "A nonsymmetric, diagonally dominant sparse matrix with a random band profile (not a grid): rows reach up to n columns away."
    rng = np.random.default_rng(seed)
    N = n * n
    rows, cols = [], []
    for d in (1, 2, n - 1, n, n + 3):
        keep = rng.random(N - d) < 0.7
        i = np.arange(N - d)[keep]; rows += [i, i + d]; cols += [i + d, i]
    r, c = np.concatenate(rows), np.concatenate(cols)
    A = sp.csr_matrix((rng.standard_normal(len(r)), (r, c)), shape=(N, N))
    return (A + sp.diags(np.abs(A).sum(1).A1 + 1.)).tocsr()


@pytest.mark.parametrize('n, P', [(24, 48), (20, 25), (18, 12)])
def test_banded_lu_matches_dense_for_any_block_count(n, P):
    A = mesh_like(n, n)
    N = A.shape[0]
    Lb, Ub, cond = block_banded_lu(A, P)
    L, U = block_lu(torch.from_numpy(A.toarray()), P)
    M, w = N // P, Lb.shape[1] - 1
    assert w == block_bandwidth(A, P) and bool(torch.isfinite(cond).all())
    for m in range(M):
        for i in range(w + 1):
            if m - i >= 0: torch.testing.assert_close(Lb[m, i], L[m * P:(m + 1) * P, (m - i) * P:(m - i + 1) * P], rtol=0, atol=1e-13)
            if m + i < M: torch.testing.assert_close(Ub[m, i], U[m * P:(m + 1) * P, (m + i) * P:(m + i + 1) * P], rtol=0, atol=1e-13)


@pytest.mark.parametrize('n, P, dtype', [(16, 8, torch.float64), (16, 4, torch.float64), (32, 8, torch.float32), (16, 32, torch.float64)])
def test_windowed_compression_equals_dense_compression(n, P, dtype):
    A = mesh_like(n, 3)
    N = A.shape[0]; M = N // P
    Lb, Ub, _ = block_banded_lu(A, P)
    L, U = block_lu(torch.from_numpy(A.toarray()), P)
    for lower, Bb, F in ((True, Lb, L), (False, Ub, U)):
        a, b = LUNet(M, P, dtype=dtype), LUNet(M, P, dtype=dtype)
        x, y = (a.L, b.L) if lower else (a.U, b.U)
        compress_gfmm(x, F, warn=False); compress_banded(y, Bb, lower)
        with torch.no_grad(): Dx, Dy = x.to_dense().double(), y.to_dense().double()
        tol = 1e-12 if dtype == torch.float64 else 1e-4
        assert rel_error(Dy, Dx) < tol
        if Lb.shape[1] <= 2: assert rel_error(Dy, F) < tol          # band within a block: exact


def test_banded_compress_lu_reports_and_refuses():
    A = mesh_like(16, 5)
    net, info = banded_compress_lu(A, 16, leaf_bridges=(1,))   # band 19: block bandwidth 2, the tree truncates
    assert info['block_bandwidth'] == 2 and 0 <= info['rel_err'] < 0.5 and info['lost'] > 0
    net, info = banded_compress_lu(A, 16, leaf_bridges=(1, 2))  # the leaves hold the whole band: exact, nothing dropped
    assert info['rel_err'] < 1e-12 and info['lost'] == 0
    net, info = banded_compress_lu(A, 128)                 # a block holds the band: exact
    assert info['rel_err'] < 1e-12 and info['lost'] < 1e-12
    with pytest.raises(ValueError, match='power of two'): banded_compress_lu(A[:192, :192], 16)   # 12 blocks
    with pytest.raises(TypeError, match='scipy sparse'): banded_compress_lu(A.toarray(), 16)
    with pytest.raises(ValueError, match='dividing N'): block_banded_lu(A, 7)
    with pytest.raises(SingularBlockError, match='pivot block 0'): block_banded_lu(sp.csr_matrix((64, 64)), 8)
    bad = A.copy(); bad.data[0] = np.nan
    with pytest.raises(ValueError, match='NaN'): block_banded_lu(bad, 16)
    with pytest.raises(ValueError, match='expected block diagonals'): compress_banded(LUNet(4, 8).L, torch.zeros(4, 2, 4, 4), True)
    with pytest.raises(ValueError, match='lower'): compress_banded(LUNet(4, 8, dtype=torch.float64).U, torch.zeros(4, 2, 8, 8), True)


def test_fit_lu_orders_pads_and_solves_in_the_users_numbering():
    A = mesh_like(23, 7)                                    # N = 529: padded to 32 x 32 = 1024 ... at block 32
    perm = np.random.default_rng(0).permutation(A.shape[0])
    S = A[perm][:, perm].tocsr()                            # scrambled: RCM brings the band back
    import warnings
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always'); net, h = fit_lu(S, block_size=16, progress=False)
    assert h.init.startswith('compress (truncated') or h.init == 'compress'
    assert any(c.startswith('order: reverse Cuthill-McKee') for c in h.choices) and any(c.startswith('padded') for c in h.choices)
    b = np.random.default_rng(1).standard_normal(S.shape[0])
    from lufmm_nb import krylov_solve
    r = krylov_solve(S, b, M=net.as_preconditioner(S, check='raise'), rtol=1e-10, restart=50, maxiter=500)
    assert r['converged'] and r['residual'] <= 1e-10 and r['iterations'] <= 20, r['iterations']


def test_fit_lu_refuses_nan_entries_of_a_wide_band():
    A = mesh_like(16, 9).tolil(); A[100, 120] = np.nan           # band 19, blocks of 8: the band's block LU would be computed
    with pytest.raises(ValueError, match='fit_lu: the sparse matrix contains NaN or Inf'): fit_lu(A.tocsr(), block_size=8, progress=False)
