"""Property-based tests of GFMMBlock against its slow dense reference (hypothesis)."""
import pytest, torch
from hypothesis import given, settings, strategies as st, HealthCheck
from lufmm_nb import GFMMBlock, gfmm_reference_dense, lower_block, upper_block, check_operator
from lufmm_nb.gfmm import BRIDGE_PATTERNS

patterns = st.sampled_from(sorted(p for p in BRIDGE_PATTERNS if p != 'none'))
cfg = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

@cfg
@given(K=st.integers(1, 5), P=st.integers(1, 4), pat=patterns, periodic=st.booleans(), toeplitz=st.booleans(),
       root=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_forward_transpose_dense(K, P, pat, periodic, toeplitz, root, dtype, seed):
    torch.manual_seed(seed)
    blk = GFMMBlock(2**K, P, bridge=pat, periodic=periodic, toeplitz=toeplitz, root_bridge=root, dtype=dtype)
    ref = gfmm_reference_dense(blk)
    check_operator(blk, ref, rtol=1e-12 if dtype == torch.float64 else 1e-5)

@cfg
@given(K=st.integers(1, 4), P=st.integers(1, 3), pat=patterns, seed=st.integers(0, 2**16))
def test_block_sparsity_and_gradients(K, P, pat, seed):
    torch.manual_seed(seed)
    blk = GFMMBlock(2**K, P, bridge=pat, dtype=torch.float64)
    M = 2**K
    nz = blk.to_dense().detach().reshape(M, P, M, P).abs().amax((1, 3)) > 0
    assert torch.equal(nz, blk.block_sparsity())
    check_operator(blk, rtol=1e-12, check_grad=True)
    x = torch.randn(3, blk.N, dtype=torch.float64)
    blk(x).square().sum().backward()
    for p, mask in ((blk.enc, blk.edge_mask), (blk.dec, blk.edge_mask), (blk.bridge, blk.bridge_mask)):
        dead = ~mask
        assert float(p.grad[dead].abs().sum()) == 0.0     # structurally absent edges never learn

@cfg
@given(K=st.integers(1, 6), P=st.integers(1, 3), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_triangular_blocks(K, P, dtype):
    M = 2**K
    L, U = lower_block(M, P, dtype=dtype).to_dense().detach(), upper_block(M, P, dtype=dtype).to_dense().detach()
    assert float(torch.triu(L.reshape(M, P, M, P).abs().amax((1, 3)), 1).max()) == 0.0
    assert float(torch.tril(U.reshape(M, P, M, P).abs().amax((1, 3)), -1).max()) == 0.0

@pytest.mark.parametrize('bad, msg', [((6, 4), 'power of two'), ((4, 0), 'block_size'), ((4.0, 2), 'must be an int')])
def test_bad_sizes(bad, msg):
    with pytest.raises((ValueError, TypeError), match=msg): GFMMBlock(*bad)

def _random_hss(blk, seed):
    "Random weights with every bridge between non-siblings zeroed (leaf level included): a random HSS matrix of rank P."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (blk.enc, blk.dec, blk.bridge): p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
        node = torch.arange(blk.n_nodes)
        for o in range(len(blk.offsets)):
            src = blk.bridge_src[o]
            sib = ((node - 1) // 2 == (src - 1) // 2) & (src != node)
            blk.bridge[o] *= ((sib | (blk.node_level == blk.n_levels) & (src == node)) & blk.bridge_mask[o])[:, None, None]
        blk.enc.mul_(blk.edge_mask[:, None, None]); blk.dec.mul_(blk.edge_mask[:, None, None])
    return blk.to_dense().detach()

@cfg
@given(K=st.integers(1, 5), P=st.integers(1, 4), kind=st.sampled_from(['lower', 'upper', 'tridiagonal']), seed=st.integers(0, 2**16))
def test_compress_reproduces_hss(K, P, kind, seed):
    "compress_gfmm writes any matrix in HSS form (ranks <= P) into a fresh block of the same structure, to rounding error."
    from lufmm_nb import compress_gfmm
    make = {'lower': lower_block, 'upper': upper_block,
            'tridiagonal': lambda M, P, **kw: GFMMBlock(M, P, root_bridge=False, **kw)}[kind]
    T = _random_hss(make(2**K, P, dtype=torch.float64), seed)
    fresh = make(2**K, P, dtype=torch.float64)
    info = compress_gfmm(fresh, T)
    assert info['rel_err'] < 1e-11, info
    check_operator(fresh, T, rtol=1e-10)
    assert torch.allclose(gfmm_reference_dense(fresh), T, atol=1e-10 * float(T.abs().max()))
