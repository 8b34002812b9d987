"Networks whose leaves bridge block diagonals beyond the first (`LUNet(leaf_bridges=...)`): every structured operation against its dense equivalent, and the compressed construction on a grid, a padded grid and a matrix it was not shaped for."
import numpy as np, pytest, torch, scipy.sparse as sp
from lufmm_nb import LUNet, fit_lu, krylov_solve
from lufmm_nb.testing import well_conditioned_lunet
from lufmm_nb.triangular import is_block_triangular
from lufmm_nb.band_compress import banded_compress_lu, leaf_bridge_distances
from lufmm_nb.gallery import convection_diffusion_2d, laplacian_2d

CASES = [(8, 4, (1, 3)), (16, 3, (1, 2, 5)), (4, 5, (1, 2, 3)), (32, 2, (1, 7, 8, 9))]


@pytest.mark.parametrize('M, P, lb', CASES)
@pytest.mark.parametrize('dtype, tol', [(torch.float64, 1e-11), (torch.float32, 2e-4)])
@pytest.mark.parametrize('toeplitz', [False, True])
def test_structured_operations_against_dense(M, P, lb, dtype, tol, toeplitz):
    net = well_conditioned_lunet(M, P, shift=3.0, dtype=dtype, seed=M + P, leaf_bridges=lb, far_init_scale=0.1, toeplitz=toeplitz)
    assert is_block_triangular(net.L, 'lower') and is_block_triangular(net.U, 'upper')
    with torch.no_grad(): L, U = (B.to_dense().double() for B in (net.L, net.U))
    D = (L @ U).numpy(); N = M * P
    for d in lb:                                                    # the leaf bridges are live: the factors reach that far
        Lb = L.reshape(M, P, M, P).transpose(1, 2)
        assert float(Lb[torch.arange(d, M), torch.arange(0, M - d)].abs().max()) > 0
    rng = np.random.default_rng(0); X = rng.standard_normal((N, 3))
    with torch.no_grad():
        Y = net(torch.from_numpy(X.T).to(dtype)).T.double().numpy()
        Yt = net(torch.from_numpy(X.T).to(dtype), transpose=True).T.double().numpy()
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
    assert rel(Y, D @ X) < tol and rel(Yt, D.T @ X) < tol
    for t in (False, True):
        x = net.solve(X, transpose=t); x = x.double().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)
        assert rel(x, np.linalg.solve(D.T if t else D, X)) < tol * np.linalg.cond(D)
    s, ld = net.slogdet(); s0, ld0 = np.linalg.slogdet(D)
    assert float(s) == s0 and abs(float(ld) - ld0) < tol * N


def test_compressed_grid_factors_a_thousand_times_closer_with_the_line_at_the_leaves():
    for n, P in ((32, 8), (48, 16)):                                # 48 = 3 blocks of 16 per line
        A = sp.csr_matrix(convection_diffusion_2d(n, sparse=True)); N = A.shape[0]
        M = 1 << (-(-N // P) - 1).bit_length()
        if M * P > N: A = sp.block_diag([A, sp.eye(M * P - N)]).tocsr()
        lb = leaf_bridge_distances(A, P)
        assert lb == (1, n // P)
        net, info = banded_compress_lu(A, P)
        assert info['leaf_bridges'] == lb
        net1, info1 = banded_compress_lu(A, P, leaf_bridges=(1,))
        assert info['rel_err'] < 1e-3 and info['rel_err'] < 1e-3 * info1['rel_err'], (info['rel_err'], info1['rel_err'])


def test_fit_on_a_scrambled_grid_keeps_its_default_and_the_users_order():
    "A grid whose unknowns arrive shuffled: RCM finds a band whose blocks do not line up with the grid lines; the rule then decides, and solves stay in the user's numbering."
    A = sp.csr_matrix(laplacian_2d(40, sparse=True)) + 0.05 * sp.identity(1600)
    p = np.random.default_rng(3).permutation(1600); As = A[p][:, p].tocsr()
    net, h = fit_lu(As, block_size=16, progress=False)
    b = np.random.default_rng(4).standard_normal(1600)
    r = krylov_solve(As, b, net.as_preconditioner(As, check=None), rtol=1e-8, restart=50, maxiter=2000)
    assert r['converged'] and r['residual'] <= 1e-8
    assert net.config['leaf_bridges'][0] == 1 and all(isinstance(d, int) for d in net.config['leaf_bridges'])


def test_grid_factors_in_half_the_band_memory_beat_spilu():
    "The 256 x 256 target at a quarter of the size: blocks of an eighth of a grid line hold less than the exact band and precondition far better than ILU."
    from lufmm_nb import ilu_preconditioner
    A = sp.csr_matrix(convection_diffusion_2d(128, sparse=True)); N = A.shape[0]
    net, h = fit_lu(A, block_size=8, polish_steps=0, progress=False)
    assert net.config['leaf_bridges'] == [1, 16]
    band = 2 * N * 128                                              # the exact banded factors' numbers
    assert net.num_params <= 0.55 * band and sum(p.numel() for p in net.parameters()) <= 0.7 * band
    b = np.random.default_rng(0).standard_normal(N)
    lu = krylov_solve(A, b, net.as_preconditioner(A), rtol=1e-8, restart=50, maxiter=1500)
    ilu = krylov_solve(A, b, ilu_preconditioner(A), rtol=1e-8, restart=50, maxiter=1500)
    assert lu['converged'] and lu['residual'] <= 1e-8 and lu['iterations'] <= 25 and 4 * lu['iterations'] <= ilu['iterations'], (lu['iterations'], ilu['iterations'])


def test_auto_order_keeps_a_grids_lines_only_where_rcms_band_would_be_compressed():
    "A 300 x 280 grid numbered line by line: RCM narrows the band from 300 only to about 280. At blocks of 64 the whole band fits the leaves (exact factors), and the narrower the better: RCM is taken. At blocks of 20 the band would be compressed, and RCM would spread the line coupling: 'auto' keeps A's order. Scrambled, there is no such structure."
    from lufmm_nb import MatVecOperator
    from lufmm_nb.prepare import operator_ordering
    T = lambda n: sp.diags([-1., 2., -1.], [-1, 0, 1], (n, n))
    A = (sp.kron(sp.eye(280), T(300)) + sp.kron(T(280), sp.eye(300))).tocsr()
    p, note = operator_ordering(MatVecOperator(A), 'auto')
    assert p is not None and note.startswith('order: reverse Cuthill-McKee'), note
    q = np.random.default_rng(0).permutation(A.shape[0]); As = A[q][:, q].tocsr()
    p, note = operator_ordering(MatVecOperator(As), 'auto')
    assert p is not None and note.startswith('order: reverse Cuthill-McKee')
    p, note = operator_ordering(MatVecOperator(A), 'auto', block_size=20)   # line of 15 blocks: distance 15
    assert p is None and note.startswith("order: A's own order kept") and '(15,)' in note, note
