"""Checkpoints are data, never code: a file crafted so that unpickling it runs a command is refused by every path that
reads a user's checkpoint (`LUNet.load`, `fit_lu(resume=...)`, `lufmm evaluate`), and the command never runs."""
import os, pickle, re, subprocess, sys
from pathlib import Path
import pytest, torch
from lufmm_nb import LUNet, fit_lu, operators
from lufmm_nb.lunet import UnsafeCheckpointError, plain_checkpoint

class Payload:
    "Unpickling this object runs `touch <path>`."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (os.system, (f'touch {self.path}',))

def crafted(kind, d, marker):
    "A checkpoint whose unpickling would create `marker`, in one of three shapes."
    p = Path(d) / f'{kind}.pt'
    if kind == 'raw-pickle':                                  # a plain pickle file (torch's legacy format)
        p.write_bytes(pickle.dumps({'format': 'lufmm_nb.LUNet/1', 'x': Payload(marker)}))
    else:
        net, _ = fit_lu(operators.laplacian_1d(32), block_size=8, preset='quick', progress=False, checkpoint=p)
        ck = torch.load(p, weights_only=True)
        if kind == 'poisoned-state': ck['training_state']['history'] = Payload(marker)   # a valid checkpoint, one entry poisoned
        else: ck = Payload(marker)                                                       # the whole file is the payload
        torch.save(ck, p)
    return p

KINDS = ['raw-pickle', 'poisoned-state', 'whole-file']
# torch's safe unpickler refuses a torch file naming a foreign object as unsafe, and cannot even parse a raw protocol-4
# pickle (so that one is reported as not a checkpoint): either way nothing is unpickled.
REFUSED = r"was refused: it holds objects other than tensors and plain data|is not a readable LUNet checkpoint"

@pytest.mark.parametrize('kind', KINDS)
def test_load_refuses(tmp_path, kind):
    marker = tmp_path / 'ran'
    p = crafted(kind, tmp_path, marker)
    if kind != 'raw-pickle':
        with pytest.raises(UnsafeCheckpointError, match=r'GLOBAL posix\.system'): LUNet.load(p)
    with pytest.raises(ValueError, match=REFUSED): LUNet.load(p)
    assert not marker.exists()

@pytest.mark.parametrize('kind', KINDS)
def test_resume_refuses(tmp_path, kind):
    marker = tmp_path / 'ran'
    p = crafted(kind, tmp_path, marker)
    with pytest.raises(ValueError, match=REFUSED):
        fit_lu(operators.laplacian_1d(32), block_size=8, resume=p, progress=False)
    assert not marker.exists()

@pytest.mark.parametrize('kind', KINDS)
def test_cli_evaluate_refuses(tmp_path, kind):
    marker = tmp_path / 'ran'
    p = crafted(kind, tmp_path, marker)
    out = subprocess.run([sys.executable, '-c', 'from lufmm_nb.cli import main; main()', 'evaluate', '--checkpoint', str(p),
                          '--n', '32'], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert re.search(REFUSED, out.stderr) and 'Traceback' not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not marker.exists()

def test_unsafe_loader_would_have_run_it(tmp_path):
    "The payload is real: the unsafe loader these tests guard against does run it."
    marker = tmp_path / 'ran'
    p = crafted('raw-pickle', tmp_path, marker)
    pickle.loads(p.read_bytes())
    assert marker.exists()

def test_converted_trusted_checkpoint_loads(tmp_path):
    "An old checkpoint holding NumPy objects is refused, and the documented conversion makes it loadable."
    import numpy as np
    p = tmp_path / 'old.pt'
    net = LUNet(4, 3, dtype=torch.float64)
    net.save(p, training_state={'history': {'loss': [1.0]}})
    ck = torch.load(p, weights_only=True); ck['training_state']['history']['loss'] = np.array([1.0, 0.5]); torch.save(ck, p)
    with pytest.raises(UnsafeCheckpointError, match='plain_checkpoint'): LUNet.load(p)
    torch.save(plain_checkpoint(torch.load(p, weights_only=False)), p)   # what the error message tells a user to do
    net2 = LUNet.load(p)
    assert torch.equal(net2.training_state['history']['loss'], torch.tensor([1.0, 0.5], dtype=torch.float64))
    x = torch.randn(2, 12, dtype=torch.float64)
    assert torch.equal(net2(x), net(x))

def test_no_unsafe_load_in_library():
    "No path of the library unpickles arbitrary objects."
    src = Path(__file__).resolve().parent.parent / 'lufmm_nb'
    for f in src.glob('*.py'):
        code = [l for l in f.read_text().splitlines() if '`' not in l]   # lines with backticks are messages and docs
        for bad in ('weights_only=False', 'pickle.load(', 'pickle.loads(', 'allow_pickle=True', 'torch.load('):
            hits = [l for l in code if bad in l and not (bad == 'torch.load(' and 'weights_only=True' in l)]
            assert not hits, f"{f.name}: {hits}"


def test_a_loaded_network_keeps_its_unwritten_edges_out_of_memory(tmp_path):
    "Edges a checkpoint stores as zeros are not written on loading: the loaded network holds its live blocks only, bit for bit."
    import gc, os
    import torch
    from lufmm_nb import LUNet
    if not os.path.exists('/proc/self/statm'): return
    res = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    net = LUNet(64, 256, dtype=torch.float64, init_scale=0.)             # 400+ MiB of edges allocated, none written
    with torch.no_grad():
        for B in (net.L, net.U): B.bridge[B.offsets.index(0), 63:] = torch.eye(256, dtype=torch.float64)
    path = net.save(tmp_path / 'net.pt'); del net; gc.collect()
    r0 = res()
    net = LUNet.load(path); gc.collect()
    allocated = sum(p.numel() * p.element_size() for p in net.parameters())
    assert net.stored_nbytes == 2 * 64 * 256 * 256 * 8
    assert res() - r0 < 0.5 * allocated, (res() - r0, allocated)       # writing every edge would take all of it
    for B in (net.L, net.U): assert torch.equal(B.bridge[B.offsets.index(0), 63:], torch.eye(256, dtype=torch.float64).expand(64, 256, 256))
