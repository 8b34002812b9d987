"Budgets that hold and starts that are kept only when they help: convection-diffusion grids with a block size below their band (64 x 64, and 128 x 128 beyond the size A can be formed), time limits, and the polish guard."
import time, warnings
import numpy as np, pytest, torch, scipy.sparse.linalg as spla
from lufmm_nb import fit_lu, ilu_preconditioner, krylov_solve
from lufmm_nb.gallery import convection_diffusion_2d


def _fit_below_the_band(A, P, **kw):
    "fit_lu(A, block_size=P, **kw) with defaults otherwise: `(net, history, seconds, warnings)`."
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); net, h = fit_lu(A, block_size=P, progress=False, **kw)
    return net, h, time.perf_counter() - t0, w


@pytest.mark.parametrize('P, leaf', [(32, None), (16, None), (32, (1,)), (16, (1,))])
def test_wide_band_grid_default_fit_beats_ilu0_within_a_minute(P, leaf):
    A = convection_diffusion_2d(64, sparse=True)             # bandwidth 64: two or four blocks
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    net, h, t, w = _fit_below_the_band(A, P, **({} if leaf is None else dict(leaf_bridges=leaf)))
    assert t < 60, t
    if leaf is None:                                          # the whole band (2 or 4 block diagonals) costs less than a tree: held exactly
        w = 64 // P
        assert net.config['leaf_bridges'] == list(range(1, w + 1)) and any(c.startswith(f'leaf_bridges=1..{w}:') for c in h.choices)
        assert h.init == 'compress' and h.rel_err < 1e-12 and net.stored_nbytes <= 2 * (w + 1) * net.N * P * 8
    else:                                                     # the first neighbour alone: truncated, and said so
        assert net.config['leaf_bridges'] == [1] and h.init.startswith('compress (truncated') and 0.05 < h.rel_err < 0.5
        assert any('reproduce A only to' in str(x.message) for x in w)
    lu = krylov_solve(A, b, M=net.as_preconditioner(A, check=None), rtol=1e-8, restart=50, maxiter=4000)
    ilu0 = krylov_solve(A, b, M=ilu_preconditioner(A, drop_tol=0., fill_factor=1), rtol=1e-8, restart=50, maxiter=4000)
    assert lu['converged'] and lu['residual'] <= 1e-8 and lu['iterations'] < ilu0['iterations'] / 4, (lu['iterations'], ilu0['iterations'])
    if leaf is None: assert lu['iterations'] <= 2, lu['iterations']


@pytest.mark.parametrize('limit', [3., 6.])
def test_time_limit_holds_within_ten_percent(limit):
    A = convection_diffusion_2d(72, sparse=True)             # no compressed start allowed: trained, so the limit is what stops it
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); net, h = fit_lu(A, block_size=32, time_limit=limit, progress=False, compress_max_numbers=0)
    t = time.perf_counter() - t0
    assert h.stopped in ('time_limit', 'stalled', 'converged')
    assert t <= 1.1 * limit + 1.5, (t, limit)                  # 10%, plus the closed-form steps around training (fingerprint, verdict)


def test_polish_that_hurts_the_preconditioner_is_undone():
    A = convection_diffusion_2d(16)
    net0, h0 = fit_lu(A, block_size=8, preset='best', max_steps=0, progress=False)   # the truncated start alone
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); net, h = fit_lu(A, block_size=8, preset='best', max_steps=5, progress=False)
    assert h.init.startswith('compress (truncated')
    note = [c for c in h.choices if c.startswith('polish:')]
    assert len(note) == 1
    if 'were kept' in note[0]:                                  # undone: the factors are the start's, bit for bit
        assert all(torch.equal(p, q) for p, q in zip(net.parameters(), net0.parameters()))
    else: assert 'held-out' in note[0]
    An = A.numpy(); its = []
    x, info = spla.gmres(An, np.ones(256), M=net.as_preconditioner(An), rtol=1e-10, callback=its.append, callback_type='pr_norm')
    assert info == 0 and np.linalg.norm(An @ x - 1) / 16 < 1e-8 and len(its) <= 25


@pytest.mark.parametrize('leaf', [None, (1,)])
def test_wide_band_beyond_dense_sizes_is_factored_inside_the_band(monkeypatch, leaf):
    from lufmm_nb.linop import MatVecOperator
    def refuse(*a, **k): raise AssertionError('an N x N matrix was formed')
    monkeypatch.setattr(MatVecOperator, 'to_dense', refuse)     # the sparse path never densifies A
    A = convection_diffusion_2d(128, sparse=True)            # N = 16,384 > compress_max_n; band 128, four blocks of 32
    b = np.random.default_rng(1).standard_normal(A.shape[0])
    net, h, t, w = _fit_below_the_band(A, 32, **({} if leaf is None else dict(leaf_bridges=leaf)))
    assert t < 60, t
    if leaf is None: assert net.config['leaf_bridges'] == [1, 2, 3, 4] and h.init == 'compress'   # the whole band at the leaves: exact
    else:                                                       # the first neighbour alone: truncated, and said so
        assert h.init.startswith('compress (truncated') and 'computed inside the band, block bandwidth 4' in h.init
        assert any('reproduce A only to' in str(x.message) for x in w)
    lu = krylov_solve(A, b, M=net.as_preconditioner(A, check=None), rtol=1e-8, restart=50, maxiter=2000)   # true residual checked below
    spilu = krylov_solve(A, b, M=ilu_preconditioner(A), rtol=1e-8, restart=50, maxiter=2000)
    assert lu['converged'] and lu['residual'] <= 1e-8 and lu['iterations'] <= (3 if leaf is None else 35), lu['iterations']
    assert lu['iterations'] < spilu['iterations'] or not spilu['converged'], (lu['iterations'], spilu['iterations'])


def test_exact_banded_path_stores_only_its_leaves():
    "The exact banded start writes the leaves' blocks and nothing else: the tree's edges stay unwritten zeros, which take no memory."
    from lufmm_nb.gallery import laplacian_2d
    net, hist = fit_lu(laplacian_2d(32, sparse=True), progress=False)
    M, P = net.n_blocks, net.block_size
    assert hist.init == 'banded' and (M, P) == (32, 32)
    assert net.stored_nbytes == 2 * (2 * M - 1) * P * P * 8            # L_ii, L_{i+1,i}, U_ii, U_{i,i+1}
    assert net.stored_nbytes < 0.35 * net.num_params * 8


def test_a_band_over_budget_is_said_before_training():
    "When the band's block LU does not fit compress_max_numbers, the fit says so at the start, not only in its verdict."
    A = convection_diffusion_2d(64, sparse=True)
    net, h, t, w = _fit_below_the_band(A, 16, compress_max_numbers=10**4, time_limit=2.)
    msgs = [str(x.message) for x in w]
    assert msgs and msgs[0].startswith('fit_lu: no closed-form start for this band') and 'compress_max_numbers' in msgs[0], msgs
    assert h.init.startswith('random (') and any('reproduce A only to' in m for m in msgs[1:])
    assert t < 2 * 1.1 + 3, t
