"""Reproducibility: the same seed gives bitwise the same training run, forward passes do not drift between calls,
and a run interrupted at a checkpoint and resumed ends where the uninterrupted run ends.

The matrix is a random dense one (4 I + 0.3 G): no LUNet represents it exactly, so the optimiser really takes
steps (the 1D Laplacian is solved by the least-squares warm start alone, which would make these tests vacuous)."""
import pytest, torch
from lufmm_nb import GFMMBlock, LUNet, fit_lu, lower_block
from lufmm_nb.testing import well_conditioned_lunet

f64 = torch.float64
devices = ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device'))]

def rand_A(N=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 4 * torch.eye(N, dtype=f64) + 0.3 * torch.randn(N, N, dtype=f64, generator=g)

def weights(net): return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

def max_diff(a, b): return max(float((a[k] - b[k]).abs().max()) for k in a)

def fit(**kw):
    return fit_lu(rand_A(), 8, **{'preset': 'quick', 'progress': False, 'dtype': f64, **kw})

# ------------------------------------------------------------------------------------------- seeds
@pytest.mark.parametrize('optimizer', ['lbfgs', 'adam'])
def test_same_seed_bitwise_identical(optimizer):
    (n1, h1), (n2, h2) = fit(seed=3, optimizer=optimizer, max_steps=4), fit(seed=3, optimizer=optimizer, max_steps=4)
    assert len(h1) == 4 and h1.loss == h2.loss and h1.block == h2.block
    w1, w2 = weights(n1), weights(n2)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)

def test_seed_sets_initial_weights():
    "max_steps=0: only the initialisation (and block 0's warm start) has run."
    w0, w0b, w1 = [weights(fit(seed=s, max_steps=0)[0]) for s in (0, 0, 1)]
    assert all(torch.equal(w0[k], w0b[k]) for k in w0)
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)
    assert max_diff(w0, w1) > 1e-3

def test_different_seed_different_result():
    w0, w1 = weights(fit(seed=0, max_steps=4, optimizer='adam')[0]), weights(fit(seed=1, max_steps=4, optimizer='adam')[0])
    assert max_diff(w0, w1) > 1e-6

def test_fit_lu_does_not_depend_on_global_rng():
    "The seed argument, not whatever the global RNG held before, decides the result."
    torch.manual_seed(123); w_a = weights(fit(seed=5, max_steps=3, optimizer='adam')[0])
    torch.rand(1000); w_b = weights(fit(seed=5, max_steps=3, optimizer='adam')[0])
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)

# -------------------------------------------------------------------------------- forward passes
@pytest.mark.parametrize('device', devices)
@pytest.mark.parametrize('dtype', [torch.float32, f64])
@pytest.mark.parametrize('bridge', ['tridiagonal', 'pentadiagonal'])
def test_gfmm_forward_repeatable(device, dtype, bridge):
    torch.manual_seed(0)
    blk = GFMMBlock(8, 4, bridge=bridge, periodic=True, dtype=dtype, device=device)
    x = torch.randn(5, blk.N, dtype=dtype, device=device)
    for transpose in (False, True):
        ref = blk(x, transpose=transpose)
        for _ in range(5): assert torch.equal(blk(x, transpose=transpose), ref)

@pytest.mark.parametrize('device', devices)
def test_lunet_forward_and_solve_repeatable(device):
    net = well_conditioned_lunet(8, 4, device=device)
    b = torch.randn(net.N, 3, dtype=f64, generator=torch.Generator().manual_seed(0)).to(device)
    y, x = net(b.T), net.solve(b)
    for _ in range(3):
        assert torch.equal(net(b.T), y) and torch.equal(net.solve(b), x)

def test_gfmm_same_seed_same_weights():
    torch.manual_seed(7); a = lower_block(8, 4, dtype=f64)
    torch.manual_seed(7); b = lower_block(8, 4, dtype=f64)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))

# ------------------------------------------------------------------------------------------ resume
# k: where the first run stops. With the quick preset, 'adam' finishes a block in 4 steps, so k=3 and k=6 stop
# inside a block; k=8 and k=12 stop right after block 2 / 3 was warm-started, before its first step.
@pytest.mark.parametrize('optimizer, k', [
    ('lbfgs', 3), ('adam', 3), ('adam', 6),
    ('adam', 8), ('adam', 12),
])
def test_resume_equals_uninterrupted(tmp_path, optimizer, k):
    ck = tmp_path / 'ck.pt'
    ref, h_ref = fit(optimizer=optimizer, max_steps=2 * k)
    _, h1 = fit(optimizer=optimizer, max_steps=k, checkpoint=ck)
    assert len(h1) == k and LUNet.load(ck).training_state['step'] == k
    net, h2 = fit(optimizer=optimizer, max_steps=k, resume=ck)          # budgets count from the call
    assert len(h_ref) == len(h2) == 2 * k and h2.block == h_ref.block
    assert max(abs(a - b) for a, b in zip(h2.loss, h_ref.loss)) <= 1e-12 * max(h_ref.loss)
    assert max_diff(weights(net), weights(ref)) <= 1e-12
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ck.pt']      # no temporary files left behind

def test_resume_without_warm_start_is_bitwise(tmp_path):
    "The same interruption point with the warm start switched off: the resumed run is exact."
    ck = tmp_path / 'ck.pt'
    kw = dict(optimizer='adam', warm_start=False)
    ref, _ = fit(max_steps=16, **kw)
    fit(max_steps=8, checkpoint=ck, **kw)
    net, _ = fit(max_steps=8, resume=ck, **kw)
    w1, w2 = weights(net), weights(ref)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)

# ------------------------------------------------------------------------------ local warm start
@pytest.mark.parametrize('case', ['laplacian', 'random'])
def test_local_warm_start_matches_general_path(monkeypatch, case):
    """fit_lu with the local (far-field-free) warm start ends where the general warm start ends. On the random matrix
    only the warm start and the first L-BFGS step are compared: the two paths agree to rounding error, and L-BFGS with
    its line search amplifies rounding differences about a thousandfold per step (measured: 2e-14, 3e-12, 1e-8, 8e-5)."""
    import lufmm_nb.trainer as tr, lufmm_nb.fit as fit
    from lufmm_nb import operators
    A = operators.laplacian_1d(128) if case == 'laplacian' else rand_A()
    run = lambda: fit_lu(A, 8, preset='quick', progress=False, max_steps=None if case == 'laplacian' else 1)
    local, h_local = run()
    monkeypatch.setattr(tr, 'far_field_zero', lambda net: False)     # force the general path for every stage
    monkeypatch.setattr(fit, 'far_field_zero', lambda net: False)
    general, h_general = run()
    assert h_local.block == h_general.block and len(h_local) == len(h_general) == (0 if case == 'laplacian' else 1)
    assert max([abs(a - b) / b for a, b in zip(h_local.loss, h_general.loss)], default=0.) <= 1e-12
    if case == 'laplacian':   # the exact banded start splits each pivot through its LU, the general warm start through its SVD:
        with torch.no_grad():  # the same block LU, each diagonal block rotated differently, so the products are compared
            for net in (local, general): assert float((net.to_dense() - A).norm() / A.norm()) <= 1e-13
            assert float((local.to_dense() - general.to_dense()).norm() / A.norm()) <= 1e-13
    else: assert max_diff(weights(local), weights(general)) <= 1e-10
