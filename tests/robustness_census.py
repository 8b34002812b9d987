"""Robustness census: hundreds of careless or adversarial inputs across the public API and the `lufmm` CLI.

A report, not a test (pytest does not collect it). Every case is one line of Python source, run in a fresh copy of the
fixture namespace PREAMBLE, with an EXPECTATION decided as a careful numerical-library user would: 'ok' (a correct
result: the case's `check` expression, against a dense float64 reference), 'error' (a clear error: ValueError, TypeError,
OSError, TrainingDiverged or their subclasses such as SingularBlockError and UnsafeCheckpointError, whose first line starts
with the called function's name: 'fit_lu: ...', 'LUNet.load: ...', Python's 'fit_lu() got an unexpected keyword ...'),
'either' (a correct result, e.g. a sensible coercion, or a clear error) or 'warn' (a questionable result: a UserWarning).
Each actual outcome is one of OUTCOMES:
  correct         a result that passes `check`            clear-error  an expected error type naming the called function
  warned          a result with a UserWarning             hang         past the case's timeout (signal.alarm / the CLI's)
  internal-error  a raw torch/numpy/scipy error, KeyError, AttributeError, IndexError, RuntimeError, an assertion, a
                  message naming another function than the one called ('[names X]'), a CLI traceback or raw CLI message
  silent-wrong    a result with no error and no UserWarning that fails `check` (or where only an error is right): NaN/Inf
                  returned, a wrong answer, 'converged' reported for a factorisation that cannot exist

Usage:  .venv/bin/python tests/robustness_census.py [--out /tmp/census.md] [--only REGEX] [--no-cli] [--cli-exact]
Always exits 0. To extend it, add `add(src, expect, check)` lines to a section; `r` is the value of `src` (an expression)
or the variable `r` it assigns (statements separated by ';').
"""
import os
os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ.setdefault('MKL_NUM_THREADS', '1'); os.environ.setdefault('MPLBACKEND', 'Agg')
import argparse, contextlib, io, re, signal, sys, tempfile, time, traceback, warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

# ------------------------------------------------------------------------------------------------ fixtures
# Everything a case (or its reproducer) needs. Printed at the top of the report, so that every row is reproducible
# as PREAMBLE + its source line.
PREAMBLE = r'''
import os, sys, subprocess, numpy as np, torch, scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator
from lufmm_nb import *
from lufmm_nb import operators
from lufmm_nb.lunet import MatVecOperator
from lufmm_nb.testing import well_conditioned_lunet
torch.set_num_threads(1)
f64 = torch.float64
Q = dict(preset='quick', progress=False)                  # every training case: tiny N, the quick preset
def lap(n=32): return operators.laplacian_1d(n)           # block tridiagonal: the quick warm start is exact
def lap_sp(n=64): return operators.laplacian_1d(n, sparse=True)
def ek(n=16): return operators.exponential_kernel(n)      # off-diagonal blocks of rank 1: compresses exactly
def rnd(n=32, seed=0):                                    # dense, well conditioned, has a block LU, not compressible
    g = torch.Generator().manual_seed(seed); return 4 * torch.eye(n, dtype=f64) + 0.3 * torch.randn(n, n, generator=g, dtype=f64)
def swap(n=32):                                           # [[0, I], [I, 0]]: invertible, no block LU without pivoting
    A = torch.zeros(n, n, dtype=f64); h = n // 2; A[:h, h:] = torch.eye(h); A[h:, :h] = torch.eye(h); return A
def perm2(n=32): return torch.kron(torch.eye(n // 2, dtype=f64), torch.tensor([[0., 1.], [1., 0.]], dtype=f64))  # no LU at P = 1
def nan_at(A, v=float('nan')): A = A.clone(); A[2, 3] = v; return A
def rhs(n=8, k=None, seed=0): return torch.randn(n, *([k] if k else []), generator=torch.Generator().manual_seed(seed), dtype=f64)
def wnet(): return well_conditioned_lunet(4, 2)           # N = 8, float64, invertible factors
def zero_diag(net, which='L', leaf=-1):                   # zero one diagonal block of L^ (or U^): singular factor
    B = getattr(net, which); B.bridge.data[B.offsets.index(0), leaf] = 0; return net
# ---- reference checks: each returns (ok, detail)
def to_np(x):
    if isinstance(x, torch.Tensor): return x.detach().cpu().to(torch.float64 if not x.is_complex() else torch.complex128).numpy()
    if sp.issparse(x): return x.toarray()
    if isinstance(x, LinearOperator): return x @ np.eye(x.shape[1])
    if hasattr(x, 'to_dense'): return to_np(x.to_dense())
    return np.asarray(x, dtype=float)
def D(net):                                               # dense float64 of an FMMMatrix / GFMMBlock / LUNet (a padded one:
    d = to_np(net.to_dense()); n = getattr(net, 'n', d.shape[0]); return d[:n, :n]   # its leading n x n block, the user's)
def close(x, ref, tol=1e-10):
    x, ref = to_np(x), to_np(ref)
    if x.shape != ref.shape: return False, f'shape {x.shape}, expected {ref.shape}'
    if np.iscomplexobj(x) or not np.isfinite(x).all(): return False, 'NaN/Inf or complex entries in the result'
    s = max(float(np.abs(ref).max(initial=0)), float(np.abs(x).max(initial=0)), np.finfo(float).tiny)
    nr = np.linalg.norm(ref / s); e = np.linalg.norm((x - ref) / s) / nr if nr > 0 else float(np.abs(x).max(initial=0) > 0)
    return bool(e <= tol), f'rel err {e:.1e} (tol {tol:g})'
def colclose(x, ref, tol=1e-10):
    out = [close(to_np(x)[:, j], to_np(ref)[:, j], tol) for j in range(to_np(ref).shape[1])]
    return all(o for o, _ in out), '; '.join(d for _, d in out)
def all_(*cs): return all(c[0] for c in cs), '; '.join(c[1] for c in cs)
def is_(cond, what): return bool(cond), what
def finite(x): n = int((~np.isfinite(to_np(x))).sum()); return n == 0, f'{n} NaN/Inf entries' if n else 'finite entries'
def block_tri(T, P, side):
    d = to_np(T); M = d.shape[0] // P; bad = [(i, j) for i in range(M) for j in range(M) if (j > i if side == 'lower' else j < i)
                                            and np.abs(d[i*P:(i+1)*P, j*P:(j+1)*P]).max() > 0]
    return not bad, f'block-{side}' if not bad else f'not block-{side}: blocks {bad[:3]}'
def fits(res, A, tol=1e-10):                              # (net, history|info): L^ U^ equals A
    net, h = res if isinstance(res, tuple) else (res, None)
    ok, d = close(D(net), A, tol)
    more = f', stopped={h.stopped!r}' if isinstance(h, TrainHistory) else (f", info={ {k: v for k, v in h.items() if 'err' in k} }" if isinstance(h, dict) else '')
    return ok, 'L^U^ vs A: ' + d + more
def honest(res, A, tol=1e-6):                             # a budget-limited fit: 'converged' must mean it fits
    net, h = res; ok, d = close(D(net), A, tol)
    if not all(bool(torch.isfinite(p).all()) for p in net.parameters()): return False, 'NaN/Inf weights returned'
    return (ok or h.stopped != 'converged'), f'stopped={h.stopped!r}, L^U^ vs A: {d}'
def noLU(res, A):                                         # A has no block LU: no result is right
    net, h = res
    return False, f'returned factors of a matrix with no block LU: stopped={h.stopped!r}, init={h.init!r}, {close(D(net), A, 1e-6)[1]}'
def cd1_ref(n, eps, beta):                                # -eps u'' + beta u' on n nodes, upwind, identity end rows
    h = 1 / (n - 1); I = np.eye(n); T = eps / h**2 * (2 * I - np.eye(n, k=1) - np.eye(n, k=-1))
    T = T + abs(beta) / h * ((I - np.eye(n, k=-1)) if beta >= 0 else (I - np.eye(n, k=1))); T[0], T[-1] = I[0], I[-1]; return T
def kry_ok(r, A, b, tol=1e-6):
    ok, d = close(r['x'], np.linalg.solve(to_np(A), to_np(b)), tol); return ok and r['converged'], f"converged={r['converged']}, x {d}"
def kry_honest(r, A, b, rtol=1e-8):
    A, b = to_np(A), to_np(b); res = np.linalg.norm(b - A @ r['x']) / np.linalg.norm(b)
    return not (r['converged'] and res > 10 * rtol), f"converged={r['converged']}, true residual {res:.1e}"
# ---- the CLI, as a user runs it
class CLIError(ValueError): pass                          # non-zero exit with a one-line message: its last line
class CLITraceback(RuntimeError): pass                    # non-zero exit with a Python traceback
CLI_CACHE = {}                                            # args -> (exit code, stdout, stderr), filled by the census' batch run
def cli(*args, timeout=90):                               # `lufmm *args` in the folder T
    if args in CLI_CACHE: rc, out, err = CLI_CACHE[args]
    else:
        p = subprocess.run([sys.executable, '-c', 'from lufmm_nb.cli import main; main()', *args], capture_output=True, text=True,
                           timeout=timeout, cwd=T, env={**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'})
        rc, out, err = p.returncode, p.stdout, p.stderr
    if rc is None: raise subprocess.TimeoutExpired(args, timeout)
    err = [l for l in err.strip().splitlines() if l.strip()]
    if any(l.startswith('Traceback') for l in err): raise CLITraceback(f'exit {rc}, traceback: ' + err[-1])
    if rc: raise CLIError(err[-1] if err else f'exit {rc} with nothing on stderr')
    return out
def make_files(T):                                        # checkpoints and matrix files for the load / resume / CLI cases
    torch.optim.LBFGS([torch.zeros(1, requires_grad=True)])   # its first use imports torch._dynamo (seconds): not a case's time
    fit_lu(lap(64), 16, checkpoint=f'{T}/good.pt', **Q)   # a finished quick run, N = 64, P = 16
    LUNet(4, 2).save(f'{T}/fresh.pt')                     # no training state
    P = lambda f: __import__('pathlib').Path(T, f)
    P('garbage.pt').write_bytes(bytes(range(256)) * 4); P('empty.pt').write_bytes(b''); P('text.pt').write_text('hello')
    class Evil:
        def __reduce__(self): return (os.getcwd, ())      # harmless, but a global no weights-only loader may call
    torch.save({'format': 'lufmm_nb.LUNet/1', 'payload': Evil()}, f'{T}/unsafe.pt')
    torch.save({'a': torch.ones(2)}, f'{T}/foreign.pt')
    ck = torch.load(f'{T}/good.pt', weights_only=True); sd = dict(ck['state_dict']); k = next(iter(sd))
    torch.save({**ck, 'config': {**ck['config'], 'n_blocks': 3}}, f'{T}/tampered.pt')
    torch.save({**ck, 'config': {**ck['config'], 'dtype': 'float128'}}, f'{T}/badcfg.pt')
    torch.save({**ck, 'state_dict': {**sd, k: torch.full_like(sd[k], float('nan'))}}, f'{T}/nanw.pt')
    torch.save({**ck, 'state_dict': {**sd, k: sd[k][:1].clone()}}, f'{T}/shape.pt')
    np.save(f'{T}/nonsq.npy', np.ones((4, 3))); P('garbage.npy').write_bytes(b'not a numpy file'); P('garbage.mtx').write_text('%%MatrixMarket nonsense\n')
'''

# ------------------------------------------------------------------------------------------------ the registry
OUTCOMES = ('correct', 'clear-error', 'warned', 'internal-error', 'silent-wrong', 'hang')
EXPECT_TEXT = {'ok': 'correct', 'error': 'clear error', 'either': 'correct or clear error', 'warn': 'warning (or correct)'}

@dataclass
class Case:
    id: str; area: str; src: str; expect: str; check: str; names: tuple; timeout: int
    outcome: str = ''; detail: str = ''; seconds: float = 0.
    raw: tuple = field(default=None, repr=False)      # (exception, result, warnings) from the run

CASES, _area = [], {}
def section(area, *names):
    "Start a group of cases; `names` are the function names an error message may start with (default: the area)."
    _area.update(area=area, names=names or (area,))
def add(src, expect='error', check=None, names=None, timeout=30):
    n = sum(c.area == _area['area'] for c in CASES) + 1
    CASES.append(Case(f"{_area['area']}-{n:02d}", _area['area'], src, expect, check, tuple(names or _area['names']), timeout))
E, OK, EO, W = 'error', 'ok', 'either', 'warn'

# ------------------------------------------------------------------------------------------------ the cases
section('FMMMatrix', 'FMMMatrix.from_dense')
add("FMMMatrix.from_dense(ek(16).tolist(), 2)"); add("FMMMatrix.from_dense(torch.ones(16, 8, dtype=f64), 2)")
add("FMMMatrix.from_dense(torch.ones(2, 16, 16, dtype=f64), 2)"); add("FMMMatrix.from_dense(torch.zeros(0, 0, dtype=f64), 1)")
add("FMMMatrix.from_dense(torch.ones(1, 1, dtype=f64), 1)"); add("FMMMatrix.from_dense(nan_at(ek(16)), 2)")
add("FMMMatrix.from_dense(nan_at(ek(16), float('inf')), 2)"); add("FMMMatrix.from_dense(ek(16).to(torch.complex128), 2)")
add("FMMMatrix.from_dense(torch.eye(16, dtype=torch.int64), 2)", EO, "close(r.to_dense(), torch.eye(16))")
add("FMMMatrix.from_dense(torch.eye(16, dtype=torch.bool), 2)", EO, "close(r.to_dense(), torch.eye(16))")
add("FMMMatrix.from_dense(ek(16).half(), 2)"); add("FMMMatrix.from_dense(ek(16), 0)"); add("FMMMatrix.from_dense(ek(16), True)")
add("FMMMatrix.from_dense(ek(16), 2.0)"); add("FMMMatrix.from_dense(ek(16), 5)")
add("FMMMatrix.from_dense(ek(16), 4).to_dense()", OK, "close(r, ek(16), 1e-12)"); add("FMMMatrix.from_dense(ek(16), 2, rank=0)")
add("FMMMatrix.from_dense(ek(16), 2, rank=1.5)"); add("FMMMatrix.from_dense(ek(16), 2, tol=-1)")
add("FMMMatrix.from_dense(ek(16), 2, tol=float('nan'))")
add("FMMMatrix.from_dense(rnd(16), 2, tol=float('inf')).to_dense()", EO, "close(r, rnd(16), 1e-6)")
add("FMMMatrix.from_dense(ek(16), 2, rank=100).to_dense()", OK, "close(r, ek(16), 1e-12)")
add("FMMMatrix.from_dense(rnd(16), 2).to_dense()", OK, "close(r, rnd(16), 1e-12)")
add("A = 1e-300 * ek(16); x = torch.ones(16, dtype=f64); r = FMMMatrix.from_dense(A, 2) @ x", OK, "close(r, A @ x)")
add("A = 1e300 * ek(16); x = torch.ones(16, dtype=f64); r = FMMMatrix.from_dense(A, 2) @ x", OK, "close(r, A @ x)")
add("A = rnd(16); x = rhs(16); r = FMMMatrix.from_dense(A, 2).T @ x", OK, "close(r, A.T @ x)")
add("A = ek(16).float(); r = FMMMatrix.from_dense(A, 2) @ torch.ones(16)", OK, "close(r, A @ torch.ones(16), 1e-5)")
section('FMMMatrix @ x')
add("FMMMatrix.from_dense(ek(16), 2) @ ([1.0] * 16)"); add("FMMMatrix.from_dense(ek(16), 2) @ torch.ones(15, dtype=f64)")
add("FMMMatrix.from_dense(ek(16), 2) @ torch.full((16,), float('nan'), dtype=f64)")
add("FMMMatrix.from_dense(ek(16), 2) @ torch.ones(16, dtype=torch.complex128)")
add("FMMMatrix.from_dense(ek(16), 2) @ torch.ones(16)", OK, "close(r, ek(16) @ torch.ones(16, dtype=f64))")
add("FMMMatrix.from_dense(ek(16), 2) @ np.arange(16)", OK, "close(r, ek(16).numpy() @ np.arange(16))")
add("FMMMatrix.from_dense(ek(16), 2) @ torch.ones(16, 0, dtype=f64)", OK, "close(r, np.zeros((16, 0)))")
add("FMMMatrix.from_dense(1e10 * ek(16), 2) @ torch.full((16,), 1e300, dtype=f64)")
section('fmm1')
add("fmm1_compress(ek(15))", names=('fmm1_compress',)); add("fmm1_compress(ek(16), rank=0)", names=('fmm1_compress',))
add("fmm1_matvec(fmm1_compress(ek(16)), torch.ones(16, dtype=f64))", OK, "close(r, ek(16) @ torch.ones(16, dtype=f64))")
add("fmm1_matvec(fmm1_compress(ek(16)), np.ones(16))", names=('fmm1_matvec',))
add("fmm1_matvec(fmm1_compress(ek(16)), torch.ones(16))", EO, "close(r, ek(16) @ torch.ones(16, dtype=f64), 1e-6)", names=('fmm1_matvec',))

section('GFMMBlock')
add("GFMMBlock(3, 2)"); add("GFMMBlock(0, 2)"); add("GFMMBlock(4, 0)"); add("GFMMBlock(4, 2.0)"); add("GFMMBlock(True, 2)")
add("GFMMBlock(4, 2, bridge='penta')"); add("GFMMBlock(4, 2, bridge=(0.5,))"); add("GFMMBlock(4, 2, bridge=['diagonal'])")
add("GFMMBlock(4, 2, bridge=42)"); add("GFMMBlock(4, 2, bridge=None)")
add("GFMMBlock(4, 2, dtype=torch.int32)"); add("GFMMBlock(4, 2, dtype='float32')"); add("GFMMBlock(4, 2, dtype=torch.complex64)")
add("GFMMBlock(4, 2, init_scale=-1)"); add("GFMMBlock(4, 2, init_scale=float('nan'))")
add("GFMMBlock(4, 2, device='gpu')"); add("GFMMBlock(4, 2, device='cuda:99')")
add("GFMMBlock(4, 2)(torch.ones(3, 8, dtype=f64))", names=('GFMMBlock.forward',))
add("GFMMBlock(4, 2)(torch.ones(3, 7))", names=('GFMMBlock.forward',))
add("g = GFMMBlock(4, 2, dtype=f64); x = rhs(8); r = g(x)", OK, "close(r, D(g) @ to_np(x))")
add("g = GFMMBlock(4, 2, dtype=f64); r = g(torch.ones(0, 8, dtype=f64))", OK, "close(r, np.zeros((0, 8)))")
add("g = GFMMBlock(4, 2, dtype=f64); x = rhs(8, 3); r = g(x.T, transpose=True)", OK, "close(r, (D(g).T @ to_np(x)).T)")
add("g = GFMMBlock(2, 2, periodic=True, dtype=f64); r = g.to_dense()", OK, "close(r, gfmm_reference_dense(g))")
add("g = GFMMBlock(4, 2, bridge=(5,), dtype=f64); r = g.to_dense()", OK, "close(r, gfmm_reference_dense(g))")
add("g = GFMMBlock(8, 2, toeplitz=True, periodic=True, dtype=f64); r = g.to_dense()", OK, "close(r, gfmm_reference_dense(g))")
add("gfmm_from_fmm(ek(16))", names=('gfmm_from_fmm',))
add("gfmm_from_fmm(FMMMatrix.from_dense(ek(16), 2)).to_dense()", OK, "close(r, ek(16), 1e-12)")
add("bridge_offsets('x')", names=('bridge_offsets',)); add("bridge_offsets((0, 1.5))", names=('bridge_offsets',))
section('lower_block'); add("lower_block(4, 2, outer='upper-bidiagonal')"); add("lower_block(4, 2, interior='diagonal')")
add("lower_block(4, 2, bridge='diagonal')"); add("lower_block(3, 2)"); add("lower_block(4, 2, outer='nope')")
add("lower_block(4, 2, dtype=f64).to_dense()", OK, "block_tri(r, 2, 'lower')")
section('upper_block'); add("upper_block(4, 2, periodic=True)"); add("upper_block(4, 2, interior='strictly-lower')"); add("upper_block(6, 2)")
add("upper_block(4, 2, toeplitz=True, dtype=f64).to_dense()", OK, "block_tri(r, 2, 'upper')")

section('LUNet')
add("LUNet(3, 2)"); add("LUNet(4, 2, dtype=torch.int64)"); add("LUNet(4, 2, init_scale=-1)"); add("LUNet(4, 2, far_init_scale=-1)")
add("LUNet(4, 2, far_init_scale=float('nan')).to_dense()", E, "finite(r)")
add("LUNet(4, 2, far_init_scale=float('inf')).to_dense()", E, "finite(r)")
add("net = LUNet(4, 2, dtype=torch.float16); r = net.solve(torch.ones(8, dtype=torch.float16))", E,
    "close(r, np.linalg.solve(D(net), np.ones(8)), 1e-2)", names=('LUNet', 'lu_solve'))
add("wnet()(torch.ones(2, 9, dtype=f64))", names=('LUNet.forward',)); add("wnet()(torch.ones(8))", names=('LUNet.forward',))
add("LUNet(4, 2, leaf_bridges=(1, 4))"); add("LUNet(4, 2, leaf_bridges=(2,))"); add("LUNet(4, 2, leaf_bridges='1')")
add("torch.manual_seed(5); net = LUNet(8, 2, dtype=f64, leaf_bridges=[3, 1], far_init_scale=0.1); [B.bridge.data[B.offsets.index(0), 7:].add_(2 * torch.eye(2, dtype=f64)) for B in (net.L, net.U)]; b = rhs(16); r = net.solve(b)", OK,
    "close(r, np.linalg.solve(D(net), to_np(b)), 1e-10)")
add("wnet()(np.ones(8))", names=('LUNet.forward',))
add("net = wnet(); x = rhs(8, 3).T; r = net(x, transpose=True)", OK, "close(r, to_np(x) @ D(net))")
add("net = wnet(); L, U = net.factors(); r = L @ U", OK, "all_(close(r, D(net)), block_tri(L, 2, 'lower'), block_tri(U, 2, 'upper'))")
add("net = wnet(); r = net.to_dense()", OK, "close(r, to_np(net(torch.eye(8, dtype=f64))).T)")

section('lu_solve')
add("net = wnet(); b = rhs(8); r = net.solve(b)", OK, "close(r, np.linalg.solve(D(net), to_np(b)))")
add("net = wnet(); b = rhs(8, 3); r = net.solve(b, transpose=True)", OK, "close(r, np.linalg.solve(D(net).T, to_np(b)))")
add("lu_solve(GFMMBlock(4, 2, dtype=f64), rhs(8))"); add("lu_solve(None, rhs(8))"); add("wnet().solve([1.0] * 8)")
add("wnet().solve(torch.full((8,), float('nan'), dtype=f64))"); add("wnet().solve(torch.ones(7, dtype=f64))")
add("wnet().solve(torch.ones(8, 1, 1, dtype=f64))"); add("wnet().solve(torch.tensor(1., dtype=f64))")
add("wnet().solve(np.ones(8, dtype=complex))"); add("wnet().solve(np.ones(8, dtype=bool))"); add("wnet().solve(np.array(['a'] * 8))")
add("net = wnet(); r = net.solve(np.arange(8))", OK, "close(r, np.linalg.solve(D(net), np.arange(8.)))")
add("net = wnet(); r = net.solve(np.ones(8, dtype=np.float32))", OK, "close(r, np.linalg.solve(D(net), np.ones(8)), 1e-5)")
add("net = wnet(); r = net.solve(torch.ones(8))", EO, "close(r, np.linalg.solve(D(net), np.ones(8)), 1e-5)")
add("wnet().solve(torch.ones(8, 0, dtype=f64))", OK, "close(r, np.zeros((8, 0)))")
add("wnet().solve(torch.zeros(8, dtype=f64))", OK, "close(r, np.zeros(8))")
add("net = wnet(); b = 1e300 * rhs(8); r = net.solve(b)", EO, "close(r, np.linalg.solve(D(net), to_np(b)))")
add("net = wnet(); b = 1e-300 * rhs(8); r = net.solve(b)", OK, "close(r, np.linalg.solve(D(net), to_np(b)))")
add("net = wnet(); b = rhs(8, 3) * torch.tensor([1e300, 1e-300, 1.], dtype=f64); r = net.solve(b)", OK,
    "colclose(r, np.linalg.solve(D(net), to_np(b)))")
add("net = wnet(); r = net.solve(rhs(8).requires_grad_())", EO, "close(r, np.linalg.solve(D(net), to_np(rhs(8))))")
add("net = wnet(); net.U.bridge.data[0, -1, 0, 0] = float('nan'); r = net.solve(rhs(8))"); add("zero_diag(wnet()).solve(rhs(8))")
add("zero_diag(wnet(), 'U', 3).solve(rhs(8), transpose=True)")
add("net = wnet(); s = torch.diag(torch.tensor([1., 1e-8], dtype=f64)); net.L.bridge.data[net.L.offsets.index(0), 3] = s; "
    "net.U.bridge.data[net.U.offsets.index(0), 3] = s; r = net.solve(rhs(8))")                       # pivot cond 1e16
add("net = wnet(); b = rhs(8); net.solve(b); net.U.bridge.data.mul_(1.5); r = net.solve(b)", OK,
    "close(r, np.linalg.solve(D(net), to_np(b)))")                                                     # stale cache?
add("net = wnet().float(); r = net.solve(rhs(8).float())", OK, "close(r, np.linalg.solve(D(net), to_np(rhs(8))), 1e-4)")
add("wnet().solve(rhs(8), max_cond=-1)"); add("wnet().solve(rhs(8), max_cond='1e10')"); add("wnet().solve(rhs(8), max_cond=float('nan'))")
add("wnet().solve(rhs(8), max_cond=1.0)"); add("zero_diag(wnet()).solve(rhs(8), max_cond=float('inf'))")
add("torch.manual_seed(3); net = LUNet(4, 2, dtype=f64); b = rhs(8); r = net.solve(b)", EO,
    "is_(np.linalg.norm(D(net) @ to_np(r) - to_np(b)) <= 1e-10 * (np.linalg.norm(D(net), 2) * np.linalg.norm(to_np(r)) + np.linalg.norm(to_np(b))), 'backward error <= 1e-10')")
section('LUNet.as_preconditioner', 'LUNet.as_preconditioner', 'lu_solve', 'preconditioner_deviation')
add("net = wnet(); b = rhs(8).numpy(); r = net.as_preconditioner() @ b", OK, "close(r, np.linalg.solve(D(net), b))")
add("net = wnet(); b = rhs(8).numpy(); r = net.as_preconditioner().rmatvec(b)", OK, "close(r, np.linalg.solve(D(net).T, b))")
add("net = wnet(); r = net.as_preconditioner() @ np.ones((8, 2))", OK, "close(r, np.linalg.solve(D(net), np.ones((8, 2))))")
add("wnet().as_preconditioner().matvec(np.full(8, np.nan))"); add("wnet().as_preconditioner() @ np.ones(7)")
add("wnet().as_preconditioner(max_cond=-1) @ np.ones(8)")
add("net = wnet(); r = net.as_preconditioner(D(net)).deviation", OK, "is_(r < 1e-10, 'deviation of exact factors ~ 0')")
add("net = wnet(); r = net.as_preconditioner(sp.csr_matrix(D(net)), check='raise').deviation", OK, "is_(r < 1e-10, 'sparse A accepted')")
add("wnet().as_preconditioner(np.eye(7))"); add("wnet().as_preconditioner(np.eye(8), check='x')")
add("wnet().as_preconditioner(np.full((8, 8), np.nan))"); add("net = wnet(); net.as_preconditioner(100 * D(net), check='raise')")
add("wnet().as_preconditioner(np.eye(8), max_deviation=float('nan'))"); add("preconditioner_deviation(wnet(), 'x')")
add("preconditioner_deviation(np.eye(8), np.eye(8))")
section('KernelMatrix', 'KernelMatrix', 'tree_order', 'fit_lu')
kx = "lambda X, Y: np.exp(-np.abs(X[:, None, 0] - Y[None, :, 0]))"
add(f"K = KernelMatrix(np.linspace(0, 1, 20), {kx}, nugget=0.1); r = K @ np.ones(20)", OK,
    f"close(r, (({kx})(np.linspace(0, 1, 20)[:, None], np.linspace(0, 1, 20)[:, None]) + 0.1 * np.eye(20)) @ np.ones(20))")
add(f"KernelMatrix(np.linspace(0, 1, 20), 'exp')"); add(f"KernelMatrix(np.ones((2, 2, 2)), {kx})")
add(f"KernelMatrix(np.linspace(0, 1, 20), lambda X, Y: np.ones((2, 2)))"); add(f"KernelMatrix([], {kx})")
add(f"KernelMatrix(np.linspace(0, 1, 20), {kx}).entries([0, 25], [1])"); add(f"KernelMatrix(np.linspace(0, 1, 20), {kx}, nugget=float('nan'))")
add("tree_order(np.ones((3, 2)), leaf_size=-1)"); add("tree_order(np.array([1., np.inf]))")
add(f"K = KernelMatrix(np.random.default_rng(0).random(40), {kx}, nugget=0.1); net, h = fit_lu(K, **Q); r = net.solve(np.ones(40))", OK,
    "close(r, np.linalg.solve(KernelMatrix(np.random.default_rng(0).random(40), lambda X, Y: np.exp(-np.abs(X[:, None, 0] - Y[None, :, 0])), nugget=0.1).entries(np.arange(40), np.arange(40)), np.ones(40)), 1e-8)")
section('block_tridiagonal_lu', 'block_tridiagonal_lu')
add("I3 = torch.eye(2, dtype=f64).repeat(3, 1, 1); r = block_tridiagonal_lu(I3, 4 * I3, I3)[0]", OK, "is_(torch.isfinite(r).all(), 'finite factors')")
add("block_tridiagonal_lu(torch.zeros(3, 2, 2), torch.zeros(3, 2, 2), torch.zeros(3, 2, 2))")
add("block_tridiagonal_lu(torch.full((3, 2, 2), float('nan')), torch.full((3, 2, 2), float('nan')), torch.eye(2).repeat(3, 1, 1))")
add("block_tridiagonal_lu(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2))")
section('LUNet.as_linear_operator')
add("net = wnet(); x = rhs(8).numpy(); r = net.as_linear_operator() @ x", OK, "close(r, D(net) @ x)")
add("net = wnet(); x = rhs(8).numpy(); r = net.as_linear_operator().T @ x", OK, "close(r, D(net).T @ x)")
add("wnet().as_linear_operator() @ np.ones(8, dtype=complex)")
add("net = wnet(); r = net.as_linear_operator() @ np.arange(8)", OK, "close(r, D(net) @ np.arange(8.))")
add("wnet().as_linear_operator() @ np.full(8, np.inf)")
add("net = wnet(); r = net.as_linear_operator().matmat(np.ones((8, 3), dtype=np.float32))", OK, "close(r, D(net) @ np.ones((8, 3)), 1e-6)")
add("wnet().as_linear_operator() @ np.ones(9)")

section('LUNet.save')
add("net = wnet(); r = LUNet.load(net.save(T + '/rt.pt'))(torch.eye(8, dtype=f64))", OK, "close(r, wnet()(torch.eye(8, dtype=f64)))")
add("wnet().save(T)"); add("wnet().save('/proc/lufmm_census/x.pt')"); add("wnet().save(T + '/ts.pt', training_state={'f': lambda: 0})")
add("wnet().save(T + '/ts2.pt', training_state={'a': np.ones(3), 'b': np.float32(2)}); r = LUNet.load(T + '/ts2.pt').training_state['a']",
    OK, "close(r, np.ones(3))")
section('LUNet.load')
for f in ('missing.pt', '', 'garbage.pt', 'empty.pt', 'text.pt', 'unsafe.pt', 'foreign.pt', 'tampered.pt', 'badcfg.pt', 'nanw.pt', 'shape.pt'):
    add(f"LUNet.load(T + '/{f}')")
add("LUNet.load(T + '/good.pt', expect_config={'n_blocks': 8})"); add("LUNet.load(T + '/good.pt', expect_config=['n_blocks'])")
add("LUNet.load(T + '/good.pt', map_location='gpu')"); add("LUNet.load(42)")

section('fit_lu')                                          # A in every form, then every argument
add("fit_lu(lap(32), 8, **Q)", OK, "fits(r, lap(32))"); add("fit_lu(lap(32).numpy(), 8, **Q)", OK, "fits(r, lap(32))")
add("fit_lu(sp.csr_matrix(lap(32).numpy()), 8, **Q)", OK, "fits(r, lap(32))"); add("fit_lu(sp.coo_matrix(lap(32).numpy()), 8, **Q)", OK, "fits(r, lap(32))")
add("fit_lu(aslinearoperator(lap(32).numpy()), 8, **Q)", OK, "fits(r, lap(32))")
add("fit_lu(sp.csr_matrix(lap(32).numpy()), 8, leaf_bridges=(3,), **Q)"); add("fit_lu(sp.csr_matrix(lap(32).numpy()), 8, leaf_bridges=(1, 9), **Q)")
add("fit_lu(sp.csr_matrix(lap(32).numpy()), 8, leaf_bridges='none', **Q)")
add("A = gallery.laplacian_2d(8, sparse=True); r = fit_lu(A, 4, leaf_bridges=(1, 2), **Q)", OK, "fits(r, A.toarray())")
add("A = lap(32); r = fit_lu(lambda X: A @ X, 8, n=32, rmatvec=lambda X: A.T @ X, **Q)", OK, "fits(r, A)")
add("fit_lu(lambda X: X, 8, **Q)"); add("A = lap(32); r = fit_lu(lambda X: A @ X, 8, n=32, **Q)")
add("A = lap(32); r = fit_lu(lambda X: A @ X, 8, n=32, blockwise=False, transpose_loss=False, max_steps=5, **Q)", OK, "honest(r, A)")
add("fit_lu(torch.ones(32, 16, dtype=f64), 8, **Q)"); add("fit_lu(torch.ones(2, 32, 32, dtype=f64), 8, **Q)")
add("fit_lu(torch.zeros(0, 0, dtype=f64), 8, **Q)"); add("fit_lu(torch.ones(1, 1, dtype=f64), 1, **Q)", OK, "fits(r, torch.ones(1, 1, dtype=f64))")
add("fit_lu(nan_at(lap(32)), 8, **Q)"); add("fit_lu(nan_at(lap(32), float('inf')).numpy(), 8, **Q)")
add("fit_lu(sp.csr_matrix(nan_at(lap(32)).numpy()), 8, **Q)")
add("fit_lu(lap(32).to(torch.complex128), 8, **Q)"); add("fit_lu(lap(32).numpy() * (1 + 1j), 8, **Q)")
add("fit_lu(sp.csr_matrix(lap(32).numpy() * (1 + 1j)), 8, **Q)"); add("fit_lu(aslinearoperator(lap(32).numpy().astype(complex)), 8, **Q)")
add("fit_lu(lap(32).long(), 8, **Q)", EO, "fits(r, lap(32))"); add("fit_lu(torch.eye(32, dtype=torch.bool), 8, **Q)", EO, "fits(r, torch.eye(32))")
add("fit_lu(np.full((32, 32), 'a'), 8, **Q)"); add("fit_lu(lap(32).tolist(), 8, **Q)")
add("fit_lu(1e-300 * lap(32), 8, **Q)", OK, "fits(r, 1e-300 * lap(32), 1e-8)"); add("fit_lu(1e300 * lap(32), 8, **Q)", OK, "fits(r, 1e300 * lap(32), 1e-8)")
add("fit_lu(1e-300 * lap(32), 8, normalize=False, **Q)", EO, "fits(r, 1e-300 * lap(32), 1e-8)")
add("fit_lu(1e300 * lap(32), 8, normalize=False, **Q)", EO, "fits(r, 1e300 * lap(32), 1e-8)")
add("fit_lu(torch.zeros(32, 32, dtype=f64), 8, **Q)")
add("D_A = swap(32); r = fit_lu(D_A, 8, **Q)", E, "noLU(r, D_A)", names=('fit_lu', 'lu_solve'))
add("D_A = swap(32); r = fit_lu(D_A, 8, preset='best', max_steps=20, progress=False)", E, "noLU(r, D_A)")
add("D_A = swap(32); r = fit_lu(D_A, 16, blockwise=False, max_steps=20, **Q)", E, "noLU(r, D_A)")
add("D_A = perm2(8); r = fit_lu(D_A, 1, max_steps_per_block=3, **Q)", E, "noLU(r, D_A)"); add("fit_lu(perm2(16), 2, **Q)", OK, "fits(r, perm2(16))")
add("A = torch.eye(32, dtype=f64); A[8:16, 8:16] = 0; net, h = fit_lu(A, 8, **Q); r = net.solve(torch.ones(32, dtype=f64))",
    names=('fit_lu', 'lu_solve'))                          # singular A: an exact L U exists, its solve must refuse
for bs in ('0', '-8', '8.0', "'8'", 'True', 'None'): add(f"fit_lu(lap(32), {bs}, **Q)")
for bs in ('5', '32'): add(f"fit_lu(lap(32), {bs}, **Q)", OK, "fits(r, lap(32))")           # padded to 8 x 5 = 40, 2 x 32 = 64
add("fit_lu(lap(48), 12, **Q)", OK, "fits(r, lap(48))"); add("fit_lu(lap(48), 8, **Q)", OK, "fits(r, lap(48))")
add("fit_lu(lap(32), 8, n_blocks=4, **Q)", OK, "fits(r, lap(32))")
for nb in ('3', '4.0', "'4'", 'True'): add(f"fit_lu(lap(32), 8, n_blocks={nb}, **Q)", E, "fits(r, lap(32))")
for p in ("'fast'", "'QUICK'", "['quick']", '1'): add(f"fit_lu(lap(32), 8, preset={p}, progress=False)")
add("fit_lu(lap(32), 8, optimizer='sgd', **Q)"); add("fit_lu(lap(32), 8, optimizer='Adam', **Q)")
add("fit_lu(rnd(32), 8, optimizer='adam', max_steps=20, **Q)", OK, "honest(r, rnd(32))")
for ms in ('-1', "'10'", "float('nan')"): add(f"fit_lu(lap(32), 8, max_steps={ms}, **Q)")
add("fit_lu(rnd(32), 8, max_steps=0, **Q)", OK, "honest(r, rnd(32))"); add("fit_lu(rnd(32), 8, max_steps=2.5, **Q)", EO, "honest(r, rnd(32))")
add("fit_lu(lap(32), 8, time_limit=-1, **Q)"); add("fit_lu(lap(32), 8, time_limit=float('nan'), **Q)")
add("fit_lu(rnd(32), 8, time_limit=0, **Q)", OK, "honest(r, rnd(32))")
for pr in ('0', "'random'", 'True', '2.5'): add(f"fit_lu(lap(32), 8, blockwise=False, probes={pr}, **Q)")
add("fit_lu(lap(32), 8, blockwise=False, probes=16, **Q)", OK, "fits(r, lap(32), 1e-8)")
for dt in ('torch.float16', "'float64'", 'np.float64', 'torch.complex128', 'torch.int64'): add(f"fit_lu(lap(32), 8, dtype={dt}, **Q)")
add("fit_lu(lap(32), 8, dtype=torch.float32, max_steps_per_block=2, **Q)", OK, "fits(r, lap(32), 1e-5)")
for dev in ("'gpu'", "'cuda:7'", '7', "'meta'"): add(f"fit_lu(lap(32), 8, device={dev}, **Q)")
add("fit_lu(lap(32), 8, seed='a', **Q)"); add("fit_lu(lap(32), 8, seed=None, **Q)", EO, "fits(r, lap(32))")
add("fit_lu(lap(32), 8, seed=-1, **Q)", EO, "fits(r, lap(32))"); add("fit_lu(lap(32), 8, seed=1.5, **Q)", EO, "fits(r, lap(32))")
add("fit_lu(lap(32), 8, checkpoint=T, **Q)"); add("fit_lu(lap(32), 8, checkpoint='/proc/lufmm_census/x.pt', **Q)")
add("r = fit_lu(lap(32), 8, checkpoint=T + '/deep/new/ck.pt', **Q)", OK, "all_(fits(r, lap(32)), is_(os.path.isfile(T + '/deep/new/ck.pt'), 'written'))")
add("fit_lu(lap(32), 8, checkpoint_every=0, **Q)"); add("fit_lu(lap(32), 8, checkpoint_every=2.0, **Q)")
section('fit_lu resume', 'fit_lu', 'LUNet.load')
for f in ('missing.pt', 'fresh.pt', 'garbage.pt', 'unsafe.pt'): add(f"fit_lu(lap(64), 16, resume=T + '/{f}', **Q)")
add("fit_lu(lap(32), 8, resume=T + '/good.pt', **Q)"); add("fit_lu(lap(64), 16, resume=T + '/good.pt', preset='best', progress=False)")
add("fit_lu(rnd(64), 16, resume=T + '/good.pt', **Q)"); add("fit_lu(lap(64), 16, resume=T + '/good.pt', dtype=torch.float32, **Q)")
add("fit_lu(lap(64), 8, resume=T + '/good.pt', **Q)"); add("fit_lu(lap(64), 16, resume=T + '/good.pt', transpose_loss=False, **Q)")
add("fit_lu(lap(64), 16, resume=T + '/good.pt', progress=False)", OK, "fits(r, lap(64))")
section('fit_lu overrides', 'fit_lu')
for o in ('lr=-1', 'foo=1', 'window=0', 'betas=(1.5, 0.9)', "init='foo'", 'loss_floor=-1', "transpose_loss='yes'", 'blockwise=1'):
    add(f"fit_lu(lap(32), 8, {o}, **Q)")
add("fit_lu(lap(32), 8, max_steps_per_block=0, **Q)", OK, "fits(r, lap(32))")
add("fit_lu(ek(64), 16, init='compress', **Q)", OK, "fits(r, ek(64), 1e-8)")
add("fit_lu(lap(32), 8, normalize='no', **Q)", EO, "fits(r, lap(32))")
add("fit_lu(ek(64), 16, preset='best', progress=False)", OK, "fits(r, ek(64), 1e-8)")
add("fit_lu(lap(32), 8, preset='seed', max_steps=3, progress=False)", OK, "honest(r, lap(32))")
section('fit_lu operator', 'fit_lu')                     # operators that misbehave
add("A = lap(32).numpy(); L = LinearOperator((32, 32), dtype=np.float64, matvec=lambda x: (A @ x)[:-1], rmatvec=lambda x: A.T @ x); r = fit_lu(L, 8, **Q)")
add("A = lap(32); r = fit_lu(lambda X: (A @ X).to(torch.complex128), 8, n=32, rmatvec=lambda X: A.T @ X, **Q)")
add("A = lap(32); r = fit_lu(lambda X: A @ X * np.nan, 8, n=32, rmatvec=lambda X: A.T @ X * np.nan, **Q)")
add("A = lap(32); r = fit_lu(lambda X: None, 8, n=32, rmatvec=lambda X: A.T @ X, **Q)")
add("A = lap(32); r = fit_lu(lambda X: A @ X, 8, n=32.0, rmatvec=lambda X: A.T @ X, **Q)")
add("A = lap(32); r = fit_lu(lambda X: A @ X, 8, n=np.int64(32), rmatvec=lambda X: A.T @ X, **Q)", OK, "fits(r, A)")
add("fit_lu(lap(32), 8, n=64, **Q)"); add("A = lap(32); r = fit_lu(lambda X: A @ X, 8, n=32, rmatvec='A.T', **Q)")
add("fit_lu(rnd(32).requires_grad_(), 8, max_steps=5, **Q)", EO, "honest(r, rnd(32))")
add("fit_lu(lap(32).to_sparse(), 8, **Q)", EO, "fits(r, lap(32))")
add("fit_lu(np.matrix(lap(32).numpy()), 8, **Q)", OK, "fits(r, lap(32))"); add("fit_lu(lap(32).float(), 8, **Q)", OK, "fits(r, lap(32))")

section('evaluate_lu')
add("net = wnet(); r = evaluate_lu(net, D(net), n_samples=20)", OK, "all_(is_(r['op_err_rel'] < 1e-12, f\"op_err_rel {r['op_err_rel']:.1e}\"), is_(r['ex_lu'] < 1e-10, f\"ex_lu {r['ex_lu']:.1e}\"))")
add("evaluate_lu(wnet(), torch.eye(16, dtype=f64), n_samples=10)"); add("evaluate_lu(wnet(), D(wnet()).tolist())")
add("evaluate_lu(wnet(), nan_at(torch.eye(8, dtype=f64)))"); add("evaluate_lu(wnet(), torch.eye(8, dtype=torch.complex128))")
add("evaluate_lu(wnet(), torch.zeros(8, 8, dtype=f64))"); add("evaluate_lu(wnet(), lambda X: X)")
for a in ('n_samples=0', 'n_samples=1.5', 'batch=0', 'max_n=4, estimate=False', "seed='x'"): add(f"net = wnet(); r = evaluate_lu(net, D(net), {a})")
add("net = wnet(); r = evaluate_lu(net, D(net), max_n=4)", OK,            # above max_n: randomized estimates from products
    "is_(r['method'] == 'randomized' and r['op_err_rel'] < 1e-12 and r['op_err_fro_rel'] < 1e-12, f\"{r['op_err_rel']}\")")
add("net = wnet(); r = evaluate_lu(net, D(net), max_cond=-1)", E, "is_(r['solve_error'] is None, f\"ex_lu={r['ex_lu']}, solve_error={r['solve_error']!r}\")")
add("net = wnet(); r = evaluate_lu(net, D(net), n_samples=1)", OK, "is_(r['ex_lu'] < 1e-10, f\"ex_lu {r['ex_lu']:.1e}\")")
add("net = wnet(); r = evaluate_lu(net, aslinearoperator(D(net)), n_samples=5)", OK, "is_(r['op_err_rel'] < 1e-12, f\"op_err_rel {r['op_err_rel']:.1e}\")")
add("net = wnet(); r = evaluate_lu(net, sp.csr_matrix(D(net)), n_samples=5)", OK, "is_(r['op_err_rel'] < 1e-12, f\"op_err_rel {r['op_err_rel']:.1e}\")")
add("net = wnet(); r = evaluate_lu(net, torch.eye(8, dtype=torch.int64), n_samples=5)", EO,
    "is_(abs(r['op_err'] - np.linalg.norm(D(net) - np.eye(8), 2)) < 1e-10, f\"op_err {r['op_err']:.6g}\")")
add("evaluate_lu(GFMMBlock(4, 2), torch.eye(8))")
add("net = zero_diag(wnet()); r = evaluate_lu(net, D(net), n_samples=5)", OK, "is_(r['solve_error'] and r['ex_lu'] == float('inf'), f\"solve_error={r['solve_error']!r:.60}\")")
add("net = wnet().float(); r = evaluate_lu(net, D(net), n_samples=5)", OK, "is_(r['op_err_rel'] < 1e-6, f\"op_err_rel {r['op_err_rel']:.1e}\")")
add("format_metrics({})", names=('format_metrics',)); add("metrics_table({'N': 8})", names=('metrics_table',))
add("error_heatmap(wnet(), torch.eye(16, dtype=f64))", names=('error_heatmap',))

section('estimate_lu_error')
add("net = wnet(); r = estimate_lu_error(net, D(net))", OK, "is_(r['op_err_rel'] < 1e-12 and r['op_err_fro_rel'] < 1e-12, f\"{r}\")")
for a in ('k=0', 'power_steps=-1', "k='4'"): add(f"net = wnet(); r = estimate_lu_error(net, D(net), {a})")
add("net = wnet(); r = estimate_lu_error(net, np.eye(4))"); add("r = estimate_lu_error('net', np.eye(8))")
add("net = wnet(); r = estimate_lu_error(net, MatVecOperator(lambda X: X, n=8))")   # no A^T: the 2-norm needs it
section('triangular_solve')
add("net = wnet(); b = rhs(8); r = triangular_solve(net.L, b)", OK, "close(r, np.linalg.solve(D(net.L), to_np(b)))")
add("net = wnet(); b = rhs(8); r = triangular_solve(net.U, b, lower=False)", OK, "close(r, np.linalg.solve(D(net.U), to_np(b)))")
add("net = wnet(); b = rhs(8, 2); r = triangular_solve(net.L, b, transpose=True)", OK, "close(r, np.linalg.solve(D(net.L).T, to_np(b)))")
add("triangular_solve(wnet().L, rhs(8), lower=False)"); add("triangular_solve(GFMMBlock(4, 2, dtype=f64), rhs(8))")
add("triangular_solve(wnet(), rhs(8))"); add("triangular_solve(wnet().L, [1.0] * 8)")
add("triangular_solve(wnet().L, torch.full((8,), float('nan'), dtype=f64))")
add("l = lower_block(4, 2); r = triangular_solve(l, torch.ones(8))", EO,
    "is_(np.linalg.norm(D(l) @ to_np(r) - 1) <= 1e-4 * np.linalg.norm(D(l), 2) * np.linalg.norm(to_np(r)) + 1e-4, 'float32 backward error <= 1e-4')")
add("triangular_solve(lower_block(4, 2), torch.ones(8, dtype=f64))")
add("net = wnet(); b = rhs(8); r = triangular_solve(net.L, b, lower=1)", OK, "close(r, np.linalg.solve(D(net.L), to_np(b)))")
add("triangular_solve(wnet().U, rhs(8), lower='upper')"); add("triangular_solve(wnet().L, rhs(8), max_cond='big')")
add("l = lower_block(4, 2, toeplitz=True, dtype=f64); l.bridge.data[l.offsets.index(0), l.n_levels] += 2 * torch.eye(2, dtype=f64); b = rhs(8); r = triangular_solve(l, b)",
    OK, "close(r, np.linalg.solve(D(l), to_np(b)))")
add("triangular_solve(zero_diag(wnet()).L, rhs(8))")
add("net = wnet(); b = 1e300 * rhs(8); r = triangular_solve(net.L, b)", EO, "close(r, np.linalg.solve(D(net.L), to_np(b)))")
add("net = wnet(); r = triangular_solve(net.L, np.arange(8))", OK, "close(r, np.linalg.solve(D(net.L), np.arange(8.)))")
add("net = wnet(); r = triangular_solve(net.L, np.ones(8, dtype=np.float16))", OK, "close(r, np.linalg.solve(D(net.L), np.ones(8)), 1e-3)")
add("triangular_solve(wnet().L, np.ones(8, dtype=bool))"); add("triangular_solve(wnet().L, np.array([None] * 8))")
add("net = wnet(); r = triangular_solve(net.L, torch.ones(8, 1, dtype=f64))", OK, "close(r, np.linalg.solve(D(net.L), np.ones((8, 1))))")
add("triangular_solve(wnet().L, torch.tensor(1., dtype=f64))")
add("l = wnet().L; l.bridge.data += 0.3; b = rhs(8); r = triangular_solve(l, b)", EO, "close(r, np.linalg.solve(D(l), to_np(b)))")

section('dense_block_solve')
add("L, U = wnet().factors(); b = rhs(8); r = dense_block_solve(L, U, b, 2)", OK, "close(r, np.linalg.solve(to_np(L @ U), to_np(b)))")
add("L, U = wnet().factors(); r = dense_block_solve(rnd(8), U, rhs(8), 2)"); add("L, U = wnet().factors(); r = dense_block_solve(L[:6, :6], U, rhs(8), 2)")
add("L, U = wnet().factors(); r = dense_block_solve(L.float(), U, rhs(8), 2)"); add("L, U = wnet().factors(); r = dense_block_solve(L, U, rhs(8), 3)")
add("L, U = wnet().factors(); r = dense_block_solve(L.tolist(), U, rhs(8), 2)")
add("L, U = wnet().factors(); r = dense_block_solve(L, U, torch.full((8,), float('nan'), dtype=f64), 2)")
add("L, U = zero_diag(wnet()).factors(); r = dense_block_solve(L, U, rhs(8), 2)")
add("L, U = wnet().factors(); b = rhs(8); r = dense_block_solve(L, U, b, 8)", OK, "close(r, np.linalg.solve(to_np(L @ U), to_np(b)))")
add("r = dense_block_solve(torch.eye(8, dtype=torch.int64), torch.eye(8, dtype=torch.int64), rhs(8), 2)", EO, "close(r, rhs(8))")
add("L, U = wnet().factors(); b = rhs(8).numpy(); r = dense_block_solve(L.numpy(), U.numpy(), b, 2)", OK, "close(r, np.linalg.solve(to_np(L @ U), b))")
add("L, U = wnet().factors(); r = dense_block_solve(L, U, rhs(8), 2, max_cond=0)"); add("L, U = wnet().factors(); r = dense_block_solve(L, U, rhs(8), 2.0)")

section('compress_lu')
add("compress_lu(lap(32), 8)", OK, "fits(r, lap(32), 1e-12)"); add("compress_lu(ek(64), 16)", OK, "fits(r, ek(64), 1e-12)")
add("compress_lu(rnd(32), 8)", W, "fits(r, rnd(32), 1e-8)")
add("compress_lu(lap(32), 5)"); add("compress_lu(lap(48), 8)"); add("compress_lu(nan_at(lap(32)), 8)"); add("compress_lu(lap(32).to(torch.complex128), 8)")
add("compress_lu(sp.csr_matrix(lap(32).numpy()), 8)", OK, "fits(r, lap(32), 1e-12)")
add("compress_lu(aslinearoperator(lap(32).numpy()), 8)", OK, "fits(r, lap(32), 1e-12)")
add("A = lap(32); r = compress_lu(lambda X: A @ X, 8, n=32)", OK, "fits(r, A, 1e-12)"); add("compress_lu(lambda X: X, 8)")
add("compress_lu(lap(32), 8, max_n=16)"); add("compress_lu(lap(32), 8, dtype=torch.float32)", OK, "fits(r, lap(32), 1e-5)")
add("compress_lu(swap(32), 8)"); add("compress_lu(torch.zeros(32, 32, dtype=f64), 8)")
add("compress_lu(lap(32).long(), 8)", EO, "fits(r, lap(32), 1e-12)")
add("compress_lu(1e-300 * lap(32), 8)", OK, "all_(fits(r, 1e-300 * lap(32), 1e-10), is_(r[1]['rel_err'] < 1e-10, f\"info rel_err {r[1]['rel_err']}\"))")
add("compress_lu(1e300 * lap(32), 8)", OK, "all_(fits(r, 1e300 * lap(32), 1e-10), is_(r[1]['rel_err'] < 1e-10, f\"info rel_err {r[1]['rel_err']}\"))")
add("compress_lu(lap(32), 16)", OK, "fits(r, lap(32), 1e-12)"); add("compress_lu(lap(32), 8, dtype=torch.float16)"); add("compress_lu(lap(32), 8, device='gpu')")

section('compress_gfmm')
add("compress_gfmm(lap(8), lap(8))"); add("compress_gfmm(GFMMBlock(4, 2, toeplitz=True, dtype=f64), ek(8))")
add("compress_gfmm(GFMMBlock(4, 2, dtype=f64), ek(16))"); add("compress_gfmm(GFMMBlock(4, 2, dtype=f64), torch.eye(8, dtype=torch.int64))")
add("compress_gfmm(GFMMBlock(4, 2, dtype=f64), nan_at(ek(8)))")
add("g = GFMMBlock(4, 2, dtype=f64); compress_gfmm(g, ek(8)); r = g", OK, "close(D(r), ek(8), 1e-12)")
add("g = GFMMBlock(4, 2, dtype=f64); compress_gfmm(g, ek(8).tolist()); r = g", EO, "close(D(r), ek(8), 1e-12)")
add("g = GFMMBlock(4, 2, dtype=f64); compress_gfmm(g, ek(8).numpy()); r = g", OK, "close(D(r), ek(8), 1e-12)")
add("g = GFMMBlock(4, 2); compress_gfmm(g, ek(8)); r = g", OK, "close(D(r), ek(8), 1e-6)")
add("g = lower_block(4, 2, dtype=f64); info = compress_gfmm(g, ek(8)); r = g", W, "close(D(r), ek(8), 1e-8)")
add("g = GFMMBlock(4, 2, dtype=f64); info = compress_gfmm(g, rnd(8)); r = g", W, "close(D(r), rnd(8), 1e-8)")
add("g = GFMMBlock(4, 2, periodic=True, dtype=f64); compress_gfmm(g, ek(8)); r = g", OK, "close(D(r), ek(8), 1e-10)")
add("g = GFMMBlock(4, 2, bridge='diagonal', dtype=f64); info = compress_gfmm(g, ek(8)); r = g", W, "close(D(r), ek(8), 1e-8)")

section('block_lu')
add("L, U = block_lu(rnd(32), 8); r = L @ U", OK, "all_(close(r, rnd(32), 1e-12), block_tri(L, 8, 'lower'), block_tri(U, 8, 'upper'))")
add("block_lu(swap(32), 8)"); add("block_lu(perm2(8), 1)"); add("block_lu(torch.ones(8, 4, dtype=f64), 4)")
add("L, U = block_lu(rnd(32).numpy(), 8); r = L @ U", OK, "close(r, rnd(32), 1e-12)")
add("L, U = block_lu(rnd(8).tolist(), 2); r = L @ U", EO, "close(r, rnd(8), 1e-6)")
add("L, U = block_lu(torch.eye(8, dtype=torch.int64), 2); r = L @ U", EO, "close(r, torch.eye(8))")
add("block_lu(rnd(32), 0)"); add("block_lu(rnd(32), 3)"); add("block_lu(nan_at(rnd(32)), 8)"); add("block_lu(rnd(32), 8.0)")
add("L, U = block_lu(rnd(32), 32); r = L @ U", OK, "close(r, rnd(32), 1e-12)")
add("L, U = block_lu(torch.zeros(0, 0, dtype=f64), 1); r = L @ U", EO, "close(r, np.zeros((0, 0)))")
add("L, U = block_lu(1e-300 * rnd(32), 8); r = L @ U", OK, "close(r, 1e-300 * rnd(32), 1e-12)")
add("L, U = block_lu(1e300 * rnd(32), 8); r = L @ U", OK, "close(r, 1e300 * rnd(32), 1e-12)")
add("block_lu(rnd(32).to(torch.complex128), 8)"); add("block_lu(torch.zeros(32, 32, dtype=f64), 8)")

section('krylov_solve')
add("krylov_solve(lap_sp(64), np.ones(64))", OK, "kry_ok(r, lap_sp(64), np.ones(64))")
for a in ("solver='gmress'", "solver='CG'", 'rtol=0', 'rtol=1', "rtol=float('nan')", "rtol='1e-8'", 'restart=0', 'maxiter=0', 'tol=1e-8'):
    add(f"krylov_solve(lap_sp(64), np.ones(64), {a})")
add("krylov_solve(lap_sp(64), np.ones(64), maxiter=1)", OK,
    "all_(kry_honest(r, lap_sp(64), np.ones(64)), is_(r['iterations'] <= 1, f\"{r['iterations']} iterations, {r['matvecs']} products with A under maxiter=1\"))")
add("krylov_solve(lap_sp(64), np.ones(63))"); add("krylov_solve(lap_sp(64), np.ones((64, 1)))", EO, "kry_ok(r, lap_sp(64), np.ones(64))")
add("krylov_solve(lap_sp(64), np.full(64, np.nan))"); add("krylov_solve(lap_sp(64), np.ones(64, dtype=complex))")
add("krylov_solve(lap_sp(64), np.arange(64))", OK, "kry_ok(r, lap_sp(64), np.arange(64.))")
add("krylov_solve(lap_sp(64), np.zeros(64))", OK, "close(r['x'], np.zeros(64))")
add("krylov_solve(lap_sp(64), [1.0] * 64)", OK, "kry_ok(r, lap_sp(64), np.ones(64))")
add("krylov_solve(sp.csr_matrix(np.ones((64, 32))), np.ones(64))"); add("krylov_solve(lap(16).tolist(), np.ones(16))")
add("A = lap_sp(64).tolil(); A[3, 3] = np.nan; r = krylov_solve(A.tocsr(), np.ones(64))")
add("krylov_solve(lap_sp(64) * (1 + 1j), np.ones(64))")
add("krylov_solve(sp.csr_matrix((64, 64)), np.ones(64))", OK, "kry_honest(r, np.zeros((64, 64)), np.ones(64))")
add("krylov_solve(lap(64), np.ones(64))", OK, "kry_ok(r, lap(64), np.ones(64))")
add("krylov_solve(aslinearoperator(lap_sp(64)), np.ones(64))", OK, "kry_ok(r, lap_sp(64), np.ones(64))")
add("krylov_solve(lap_sp(64), np.ones(64), M=sp.eye(32))"); add("krylov_solve(lap_sp(64), np.ones(64), M='jacobi')")
add("krylov_solve(lap_sp(64), np.ones(64), M=LinearOperator((64, 64), matvec=lambda x: x * np.nan))")
add("M = learned_preconditioner(lap_sp(64), 16); r = krylov_solve(lap_sp(64), np.ones(64), M)", OK,
    "all_(kry_ok(r, lap_sp(64), np.ones(64)), is_(r['iterations'] <= 3, f\"{r['iterations']} iterations\"))")
add("A = operators.convection_diffusion_1d(64, sparse=True); r = krylov_solve(A, np.ones(64), solver='cg', maxiter=200)", OK,
    "kry_honest(r, operators.convection_diffusion_1d(64), np.ones(64))")
add("d = np.ones(64); d[32:] = 0; M = LinearOperator((64, 64), matvec=lambda x: d * x); r = krylov_solve(lap_sp(64), np.ones(64), M)", W,
    "kry_honest(r, lap_sp(64), np.ones(64))")
add("krylov_solve(1e300 * lap_sp(64), np.ones(64))", OK, "kry_ok(r, 1e300 * lap_sp(64), np.ones(64))")
add("krylov_solve(1e-300 * lap_sp(64), np.ones(64))", OK, "kry_ok(r, 1e-300 * lap_sp(64), np.ones(64))")
add("krylov_solve(lap_sp(64), np.full(64, 1e300))", OK, "kry_ok(r, lap_sp(64), np.full(64, 1e300))")
add("krylov_solve(lap_sp(64), np.ones(64), solver='bicgstab')", OK, "kry_ok(r, lap_sp(64), np.ones(64))")
section('krylov_compare')
add("krylov_compare(lap_sp(64), np.ones(64), {})"); add("krylov_compare(lap_sp(64), np.ones(64), [None])")
add("krylov_compare(lap_sp(64), np.ones(64), {'none': None, 'jacobi': jacobi_preconditioner(lap_sp(64))})", OK,
    "is_([x['name'] for x in r] == ['none', 'jacobi'] and all(x['converged'] for x in r), 'both rows converged')")
add("krylov_compare(lap_sp(64), np.ones(64), {'x': 'jacobi'})"); add("krylov_compare(lap_sp(64), np.ones(64), {'none': None}, solver='x')")

section('jacobi_preconditioner')
add("jacobi_preconditioner(sp.csr_matrix(np.ones((4, 4)) - np.eye(4)))"); add("jacobi_preconditioner(aslinearoperator(lap_sp(16)))")
add("jacobi_preconditioner(np.ones((4, 3)))"); add("jacobi_preconditioner(lap(16).numpy()) @ np.ones(16)", OK, "close(r, np.full(16, 0.5))")
add("jacobi_preconditioner(lap(16)) @ np.ones(16)", OK, "close(r, np.full(16, 0.5))")
add("jacobi_preconditioner(np.diag([np.nan] + [1.] * 15))"); add("jacobi_preconditioner(lap(16).tolist())")
add("jacobi_preconditioner(1e-320 * np.eye(4))")
section('ilu_preconditioner')
add("ilu_preconditioner(sp.csr_matrix(np.zeros((16, 16))))"); add("ilu_preconditioner(lap_sp(16), drop_tol='x')")
add("A = lap_sp(16).tolil(); A[0, 0] = np.nan; r = ilu_preconditioner(A.tocsr()) @ np.ones(16)", E, "finite(r)")
add("ilu_preconditioner(lap_sp(16)) @ np.ones(16)", OK, "close(r, np.linalg.solve(lap(16).numpy(), np.ones(16)), 1e-8)")
section('amg_preconditioner')
add("amg_preconditioner(np.ones((4, 3)))"); add("amg_preconditioner(aslinearoperator(lap_sp(16)))")
add("amg_preconditioner(lap_sp(64)) @ np.ones(64)", OK, "is_(np.isfinite(r).all() and r.shape == (64,), 'finite, shape (64,)')")
add("amg_preconditioner(lap_sp(64), foo=1)")
section('learned_preconditioner')
add("learned_preconditioner(lap_sp(64), 16, 'nope')"); add("learned_preconditioner(lap_sp(64), 16, 'matrix-free', max_steps=5)")
add("learned_preconditioner(lap_sp(64), 16, 'matrix-free') @ np.ones(64)", OK, "close(r, np.linalg.solve(lap(64).numpy(), np.ones(64)), 1e-10)")
add("learned_preconditioner(lap_sp(64), 5) @ np.ones(64)", OK, "close(r, np.linalg.solve(lap(64).numpy(), np.ones(64)))")
section('breakeven_rhs')
add("breakeven_rhs(-1, 1, 1)"); add("breakeven_rhs(float('nan'), 1, 0.5)"); add("breakeven_rhs(10, 1, 0.5)", OK, "is_(r == 20, f'{r}')")
add("breakeven_rhs(float('inf'), 1, 0.5)", EO, "is_(r == float('inf'), f'{r}')"); add("breakeven_rhs(10, 1, 1)", OK, "is_(r == float('inf'), f'{r}')")
add("breakeven_rhs('10', 1, 0.5)")

section('fit_matrix_free')
add("fit_matrix_free(lap_sp(64), 16)", OK, "fits(r, lap(64))"); add("fit_matrix_free(lap_sp(64), 16, bandwidth=0)")
add("fit_matrix_free(lap_sp(64), 16, bandwidth=1.5)"); add("fit_matrix_free(lap_sp(64), 16, bandwidth=True)")
add("fit_matrix_free(lap_sp(64), 16, bandwidth=2)", OK, "fits(r, lap(64))"); add("fit_matrix_free(lap_sp(64), 5)")
add("fit_matrix_free(operators.exponential_kernel(64, rho=0.95), 16)", W, "fits(r, operators.exponential_kernel(64, rho=0.95), 1e-6)")
add("A = lap(64); r = fit_matrix_free(lambda X: A @ X, 16, n=64)", OK, "fits(r, lap(64))"); add("fit_matrix_free(lambda X: X, 16)")
add("fit_matrix_free(swap(64), 16)"); add("fit_matrix_free(perm2(16), 1)"); add("fit_matrix_free(nan_at(lap(64)), 16)"); add("fit_matrix_free(lap(64).to(torch.complex128), 16)")
add("fit_matrix_free(lap_sp(64), 16, n_check=0)", EO, "fits(r, lap(64))"); add("fit_matrix_free(lap_sp(64), 16, n_check=-1)")
add("fit_matrix_free(lap_sp(64), 16, seed='x')"); add("fit_matrix_free(lap_sp(64), 16, dtype=torch.float32)", OK, "fits(r, lap(64), 1e-5)")
add("fit_matrix_free(1e300 * lap_sp(64), 16)", OK, "fits(r, 1e300 * lap(64))"); add("fit_matrix_free(1e-300 * lap_sp(64), 16)", OK, "fits(r, 1e-300 * lap(64))")
add("fit_matrix_free(lap_sp(64), 32)", OK, "fits(r, lap(64))"); add("A = lap(64); r = fit_matrix_free(lambda X: (A @ X)[:-1], 16, n=64)")

section('operators', 'laplacian_1d')
for n in ('0', '-5', '2.5', "'8'", 'True'): add(f"operators.laplacian_1d({n})")
add("operators.laplacian_1d(np.int64(8))", OK, "close(r, 2 * np.eye(8) - np.eye(8, k=1) - np.eye(8, k=-1))")
add("operators.laplacian_1d(1)", OK, "close(r, [[2.]])"); add("operators.laplacian_1d(8, dtype=torch.int64)")
add("operators.laplacian_1d(8, dtype=torch.float16)", EO, "close(r, 2 * np.eye(8) - np.eye(8, k=1) - np.eye(8, k=-1))")
add("operators.laplacian_1d(8, sparse=True, dtype=torch.float16)")
add("operators.laplacian_1d(8, normalize='no')", EO, "is_(float(r.abs().max()) == 2, f'max |A_ij| = {float(r.abs().max())} (2 unnormalised)')")
add("operators.laplacian_1d(8, sparse='no')", EO, "is_(isinstance(r, torch.Tensor), f'returned {type(r).__name__}')")
add("operators.laplacian_1d(8, device='gpu')")
section('operators 2d/cd', 'laplacian_2d', 'convection_diffusion_1d', 'convection_diffusion_2d', 'biharmonic_1d', 'biharmonic_2d')
add("operators.laplacian_2d(1)"); add("operators.laplacian_2d(3)", OK, "close(r, np.kron(to_np(lap(3)), np.eye(3)) + np.kron(np.eye(3), to_np(lap(3))))")
for a in ('2', '5, eps=0', '5, eps=-1', "5, eps=float('nan')", "5, eps=float('inf')", "5, beta=float('nan')"): add(f"operators.convection_diffusion_1d({a})")
add("operators.convection_diffusion_1d(5, beta=-1.0)", OK,
    "close(r, cd1_ref(5, 0.1, -1.0))")
add("operators.convection_diffusion_1d(5, eps=1e307)", EO, "finite(r)")
add("operators.convection_diffusion_1d(5, beta=1e308)", EO, "finite(r)")
add("operators.convection_diffusion_2d(1)"); add("operators.convection_diffusion_2d(3, eps=1e307)", EO, "finite(r)")
add("operators.biharmonic_1d(2)"); add("operators.biharmonic_2d(3, shift=-1)"); add("operators.biharmonic_2d(3, shift=float('nan'))")
add("operators.biharmonic_1d(5)", OK, "close(r, (lambda L: L.T @ L * 4**4)(np.vstack([np.eye(5)[0], -np.diff(np.eye(5), 2, axis=0), np.eye(5)[4]])))")
section('rbf/exp kernels', 'rbf_kernel', 'exponential_kernel')
for a in ('length_scale=0', 'length_scale=-1', "length_scale=float('nan')", "length_scale=float('inf')", 'nugget=-1', "nugget=float('nan')", 'sparse=True'):
    add(f"operators.rbf_kernel(8, {a})")
add("operators.rbf_kernel(8, length_scale=1e-200)", EO, "close(r, np.eye(8) * (1 + 1e-4))")
add("operators.rbf_kernel(1)", OK, "close(r, [[1 + 1e-4]])")
for a in ('rho=0', 'rho=1', 'rho=-0.5'): add(f"operators.exponential_kernel(8, {a})")
add("operators.exponential_kernel(8, rho=0.5)", OK, "close(r, 0.5 ** np.abs(np.subtract.outer(np.arange(8), np.arange(8))))")
add("operators.exponential_kernel(8, rho=1e-300)", OK, "close(r, np.eye(8))")
section('make_operator', 'make_operator', 'laplacian_1d', 'convection_diffusion_1d', 'rbf_kernel')
add("operators.make_operator('nope')"); add("operators.make_operator('rbf_kernel', 16, sparse=True)")
add("operators.make_operator('laplacian_1d', 16, eps=0.1)"); add("operators.make_operator('convection_diffusion_1d', 16, eps=-1)")
add("operators.make_operator(5)"); add("operators.make_operator(['x'])"); add("operators.make_operator('laplacian_1d', 16, dtype=torch.int32)")
add("operators.make_operator('laplacian_1d', 16)", OK, "all_(is_(r.scale == 2, f'scale {r.scale}'), close(r.matrix, lap(16) / 2))")
add("operators.make_operator('laplacian_1d', 16, sparse=True, dtype=torch.float32)", OK,
    "all_(is_(sp.issparse(r.matrix) and r.matrix.dtype == np.float32, f'{type(r.matrix).__name__} {r.matrix.dtype}'), close(r.matrix, lap(16) / 2, 1e-7))")
add("operators.make_operator('laplacian_1d', 0)"); add("operators.make_operator('rbf_kernel', 16, length_scale=0)")
section('normalize'); add("operators.normalize(torch.zeros(4, 4))"); add("operators.normalize([[1.0]])")
add("operators.normalize(nan_at(lap(8)))"); add("operators.normalize(torch.zeros(0, 0))")
add("operators.normalize(np.array([[2., -4.]]))", OK, "all_(is_(r.scale == 4, f'scale {r.scale}'), close(r.matrix, [[0.5, -1.]]))")
section('block_bandwidth')
add("operators.block_bandwidth(lap(16), 0)"); add("operators.block_bandwidth(aslinearoperator(lap_sp(16)), 4)")
add("operators.block_bandwidth(lap(16), 4)", OK, "is_(r == 1, f'{r}')"); add("operators.block_bandwidth(lap(16), 4, tol=-1)")
add("operators.block_bandwidth(nan_at(lap(16)), 4)"); add("operators.block_bandwidth(torch.ones(16, 8), 4)")
add("operators.block_bandwidth(torch.zeros(16, 16), 4)", OK, "is_(r == 0, f'{r}')")

section('misc', 'plain_checkpoint')
add("plain_checkpoint({'a': object()})"); add("plain_checkpoint({(1, 2): 3})"); add("plain_checkpoint(np.float32(1.5))", OK, "is_(r == 1.5, f'{r!r}')")
add("TrainHistory.from_dict({'x': 1})", names=('TrainHistory.from_dict', 'TrainHistory'))
add("matrix_fingerprint(lap(8))", OK, "is_(r == matrix_fingerprint(MatVecOperator(lap(8))), f\"{r['N']}\")", names=('matrix_fingerprint',))
add("matrix_fingerprint(MatVecOperator(lap(8)))['N']", OK, "is_(r == 8, f'{r}')")
add("MatVecOperator(lap(8), dtype=torch.float16)", names=('MatVecOperator',)); add("MatVecOperator('A')", names=('MatVecOperator',))
add("MatVecOperator(lambda X: X, n=8).rmatmat(torch.eye(8, dtype=f64))", names=('MatVecOperator',))
add("MatVecOperator(lap(8)).matmat(torch.ones(7, 1, dtype=f64))", names=('MatVecOperator',))
add("MatVecOperator(lap(8)).block_count(3)", names=('MatVecOperator',)); add("check_operator(object())", names=('check_operator',))
add("F = FMMMatrix.from_dense(ek(16), 2); r = check_operator(F, dense=ek(16))", OK, "is_(r < 1e-12, f'{r:.1e}')")
add("run_benchmarks('nosuch')", names=('run_benchmarks',))

section('cli', 'lufmm')                                    # run as `lufmm ...` through subprocess; see cli() above
add("cli()", OK, "is_('usage' in r, r.strip()[:60])")
add("cli('trian')"); add("cli('train', '--blocksize', '16')"); add("cli('train', '--block_size', 'abc')")
add("cli('train', '--n', '64', '--block_size', '0', '--quiet', '--out', 'c.pt')"); add("cli('train', '--matrix', 'nosuch', '--quiet')")
add("cli('train', '--matrix', 'missing.npy', '--quiet')"); add("cli('train', '--matrix', 'garbage.npy', '--quiet')")
add("cli('train', '--matrix', 'nonsq.npy', '--block_size', '2', '--quiet')"); add("cli('train', '--matrix', 'garbage.mtx', '--quiet')")
add("cli('train', '--n', '64', '--block_size', '16', '--dtype', 'float65', '--quiet')")
add("cli('train', '--n', '64', '--block_size', '16', '--device', 'gpu', '--quiet')")
add("cli('train', '--n', '64', '--block_size', '16', '--preset', 'fast', '--quiet')")
add("cli('train', '--n', '64', '--block_size', '16', '--resume', '--out', 'missing.pt', '--quiet')")
add("cli('train', '--n', '64', '--block_size', '16', '--resume', '--out', 'unsafe.pt', '--quiet')")
add("cli('train', '--n', '64', '--block_size', '16', '--quiet', '--out', '/proc/lufmm_census/x.pt')")
add("cli('train', '--n', '0', '--quiet')"); add("cli('train', '--n', '64', '--block_size', '16', '--max_steps', '-1', '--quiet')")
add("cli('train', '--matrix', 'laplacian_2d', '--n', '5', '--block_size', '5', '--quiet')", OK, "is_('n=25 + 15 padding' in r, r[:80])")
add("cli('train', '--n', '64', '--block_size', '16', '--quiet', '--out', 'cl_ok.pt')", OK, "is_('saved to' in r, r.strip().splitlines()[-1][:60])")
add("cli('evaluate', '--checkpoint', 'missing.pt')"); add("cli('evaluate', '--checkpoint', 'garbage.pt')")
add("cli('evaluate', '--checkpoint', 'good.pt', '--n', '32')")
add("cli('evaluate', '--checkpoint', 'good.pt', '--n', '64', '--n_samples', '10')", OK, "is_('e_x=' in r, r.strip()[:60])")
add("cli('demo', '--n', '100', '--levels', '3')"); add("cli('demo', '--n', '64', '--levels', '2', '--rho', 'nan')")
add("cli('evaluate', '--checkpoint', 'good.pt', '--n', '64', '--n_samples', '0')")
add("cli('reproduce', '--cases', 'nosuch')"); add("cli('bench', '--which', 'nosuch')")

# ------------------------------------------------------------------------------------------------ running and judging
class Hang(BaseException): pass                           # BaseException: library `except Exception` cannot swallow it
def _alarm(signum, frame): raise Hang()
ALLOWED = (ValueError, TypeError, OSError, FloatingPointError, MemoryError)   # incl. SingularBlockError, TrainingDiverged, ...
NAMED = re.compile(r"^(lufmm\b[^:]*|[A-Za-z_][\w.]*(?: @ x)?)(?::|\(\))")      # 'fit_lu:', 'LUNet.load:', 'fit_lu()', 'lufmm train:'

def run_one(c, base, main_thread=True):
    "Execute a case in a copy of the fixture namespace; stores (exception, result, warnings, namespace) and the wall time."
    ns, exc, res, ws = dict(base), None, None, []
    def body():
        try: code = compile(c.src, c.id, 'eval')
        except SyntaxError: exec(compile(c.src, c.id, 'exec'), ns); return ns.get('r')
        return eval(code, ns)
    t0 = time.perf_counter()
    try:
        if main_thread:                                   # warnings, alarms and stdout are process-wide: main thread only
            import torch; torch.manual_seed(0)
            with warnings.catch_warnings(record=True) as ws, contextlib.redirect_stdout(io.StringIO()), \
                 contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter('always'); signal.alarm(c.timeout)
                try: res = body()
                finally: signal.alarm(0)
        else: res = body()                                # CLI cases: cli() captures the child's output itself
    except KeyboardInterrupt: raise
    except Hang: exc = Hang()
    except BaseException as e: exc = Hang() if type(e).__name__ == 'TimeoutExpired' else e
    c.seconds = time.perf_counter() - t0
    c.raw = (exc, res, list(ws), ns)

def judge(c):
    "Turn the raw outcome of a case into one of OUTCOMES and a one-line detail."
    exc, res, ws, ns = c.raw
    short = lambda s, n=170: ' '.join(str(s).split())[:n]
    if isinstance(exc, Hang): return 'hang', f'no answer within {c.timeout} s'
    if exc is not None:
        msg = next((l.strip() for l in str(exc).splitlines() if l.strip()), '')
        msg = re.sub(r'^\[Errno \d+\] ', '', msg)         # Python's own prefix of an OSError with an errno
        m, tname = NAMED.match(msg), type(exc).__name__
        head = m.group(1) if m else None
        if isinstance(exc, ns['CLIError']):              # one line on stderr: it must name a function, or be argparse's
            rest = re.sub(r'^(\[Errno \d+\] )', '', re.sub(r'^lufmm( \w+)?: (error: )?', '', msg))
            if rest.startswith(('argument ', 'unrecognized arguments', 'the following arguments', 'unknown command')) or NAMED.match(rest):
                return 'clear-error', short(msg)
            return 'internal-error', short(f'[raw message through the CLI] {msg}')
        if isinstance(exc, ALLOWED) and head and any(head == n or head.startswith(n) for n in c.names):
            return 'clear-error', short(f'{tname}: {msg}') + (' [a result was expected]' if c.expect == OK else '')
        first = (head or '').split(' ')[0].split('.')[0]
        if isinstance(exc, ALLOWED) and head and (first in ns or first in ns['operators'].__all__):
            return 'internal-error', short(f'[names {head}, not {"/".join(c.names)}] {tname}: {msg}')
        return 'internal-error', short(f'{tname}: {msg or repr(exc)}')
    uw = [w for w in ws if issubclass(w.category, UserWarning)]
    other = sorted({w.category.__name__ for w in ws if not issubclass(w.category, (UserWarning, DeprecationWarning, FutureWarning, ResourceWarning))})
    note = (f" [only {', '.join(other)}]" if other else '') + (f' [UserWarning: {short(uw[0].message, 80)}]' if uw else '')
    if c.check is None: ok, det = False, f'returned {short(repr(res), 110)} where an error was expected'
    else:
        try:
            out = eval(c.check, {**ns, 'r': res})
            ok, det = out if isinstance(out, tuple) else (bool(out), c.check)
        except Exception as e: ok, det = False, f'check failed on the result: {type(e).__name__}: {e}'
    if ok: return ('warned' if uw and c.expect == W else 'correct'), short(det) + note
    return ('warned' if uw else 'silent-wrong'), short(det) + note

# One Python process imports the CLI once and forks a child per command line: each child runs `main()` with that
# `sys.argv`, its own stdout/stderr files and exit status, an uncaught exception printed as a traceback (as the interpreter
# does) and SIGALRM as its timeout. The same behaviour as one `subprocess.run` per case (`--cli-exact`), in a tenth of the time.
_RUNNER = r'''
import json, os, signal, sys, traceback
from lufmm_nb.cli import main
jobs, timeout = json.loads(sys.stdin.read()), int(sys.argv[1]); codes = []
for i, argv in enumerate(jobs):
    pid = os.fork()
    if pid == 0:
        o, e = open(f'{i}.census.out', 'w'), open(f'{i}.census.err', 'w'); os.dup2(o.fileno(), 1); os.dup2(e.fileno(), 2)
        signal.alarm(timeout); sys.argv = ['lufmm', *argv]; code = 0
        try: main()
        except SystemExit as x: code = x.code if isinstance(x.code, int) else (0 if x.code is None else (print(x.code, file=sys.stderr) or 1))
        except BaseException: traceback.print_exc(); code = 1
        sys.stdout.flush(); sys.stderr.flush(); os._exit(code)
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(json.dumps(codes))
'''

def batch_cli(arglists, T, timeout=60):
    "{args: (exit code or None on timeout, stdout, stderr)} for every command line, from one forking Python process."
    import json, subprocess
    p = subprocess.run([sys.executable, '-c', _RUNNER, str(timeout)], input=json.dumps([list(a) for a in arglists]), capture_output=True,
                       text=True, cwd=T, env={**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'})
    codes = json.loads(p.stdout.strip().splitlines()[-1])
    read = lambda f: __import__('pathlib').Path(T, f).read_text()
    return {tuple(a): (None if c == -signal.SIGALRM else c, read(f'{i}.census.out'), read(f'{i}.census.err'))
            for i, (a, c) in enumerate(zip(arglists, codes))}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default='/tmp/census.md'); ap.add_argument('--only', default=None, help='regex on case id or source')
    ap.add_argument('--no-cli', action='store_true', help='skip the CLI cases'); ap.add_argument('--cli-exact', action='store_true',
                    help='one `subprocess.run` per CLI case instead of one forking process')
    a = ap.parse_args()
    t_start = time.perf_counter()
    cases = [c for c in CASES if (a.only is None or re.search(a.only, c.id + ' ' + c.src)) and not (a.no_cli and c.area == 'cli')]
    tmp = tempfile.TemporaryDirectory(prefix='lufmm_census_')
    base = {'__name__': 'census', 'T': tmp.name}
    exec(PREAMBLE, base)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore'); base['make_files'](tmp.name)
    signal.signal(signal.SIGALRM, _alarm)
    cli_cases = [c for c in cases if c.area == 'cli']
    with ThreadPoolExecutor(max_workers=2) as pool:       # the CLI cases run beside the in-process ones (own processes)
        if a.cli_exact: futs = [pool.submit(run_one, c, base, False) for c in cli_cases]
        else: batch = pool.submit(batch_cli, [eval(c.src, {**base, 'cli': lambda *x: x}) for c in cli_cases], tmp.name)
        for c in cases:
            if c.area != 'cli': run_one(c, base)
        if a.cli_exact: [f.result() for f in futs]
        else:
            try: base['CLI_CACHE'].update(batch.result())
            except Exception as e: print(f'batch CLI run failed ({e!r}); running each command on its own', file=sys.stderr)
            for c in cli_cases: run_one(c, base, False)
    for c in cases: c.outcome, c.detail = judge(c)
    total = time.perf_counter() - t_start
    esc = lambda s: str(s).replace('|', '\\|')
    lines = ['# lufmm_nb robustness census', '', f'{len(cases)} distinct inputs, {total:.0f} s wall. Fixtures (every row is reproducible as this preamble '
             'plus its input; `T` is a scratch folder holding the files of `make_files(T)`, and CLI cases run there):', '', '```python',
             PREAMBLE.strip(), '```', '', '| id | area | input | expectation | outcome | detail | s |', '|---|---|---|---|---|---|---|']
    for c in cases:
        exp = EXPECT_TEXT[c.expect] + (f': `{esc(c.check[:70])}`' if c.check else '')
        lines.append(f'| {c.id} | {c.area} | `{esc(c.src)}` | {exp} | **{c.outcome}** | {esc(c.detail)} | {c.seconds:.1f} |')
    counts = {o: sum(c.outcome == o for c in cases) for o in OUTCOMES}
    lines += ['', '## Summary', '', '| outcome | count |', '|---|---|'] + [f'| {o} | {n} |' for o, n in counts.items()] + [f'| total | {len(cases)} |']
    for o in ('internal-error', 'silent-wrong', 'hang'):
        bad = [c for c in cases if c.outcome == o]
        if bad: lines += ['', f'## {o} ({len(bad)})', ''] + [f'- **{c.id}** `{c.src}`  \n  {c.detail}' for c in bad]
    odd = [c for c in cases if c.outcome == 'clear-error' and c.expect == 'ok']
    if odd: lines += ['', f'## clear error where a correct result was expected ({len(odd)})', ''] + [f'- **{c.id}** `{c.src}`  \n  {c.detail}' for c in odd]
    lines += ['', f'Total runtime {total:.1f} s; slowest cases: ' + ', '.join(f'{c.id} {c.seconds:.1f} s' for c in sorted(cases, key=lambda c: -c.seconds)[:5])]
    md = '\n'.join(lines) + '\n'
    print(md)
    with open(a.out, 'w') as f: f.write(md)
    print(f'wrote {a.out}: ' + ', '.join(f'{o} {n}' for o, n in counts.items()), file=sys.stderr)
    tmp.cleanup()

if __name__ == '__main__':
    try: main()
    except BaseException: traceback.print_exc()           # a report, not a test: always exit 0
    sys.exit(0)
