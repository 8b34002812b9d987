"""Fail if `lufmm_nb/` differs from what `nbdev_export` makes of the notebooks.

The export runs in a scratch copy of the tree, so the working tree is never touched."""
import filecmp, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
lib = root/'lufmm_nb'

def _diff(a: Path, b: Path, rel=''):
    "Files that differ between two directory trees (ignoring caches)."
    out, cmp = [], filecmp.dircmp(a, b, ignore=['__pycache__'])
    out += [f'{rel}{n} (only in notebooks export)' for n in cmp.left_only]
    out += [f'{rel}{n} (only in lufmm_nb/)' for n in cmp.right_only]
    out += [f'{rel}{n}' for n in cmp.diff_files]
    for d in cmp.common_dirs: out += _diff(a/d, b/d, f'{rel}{d}/')
    return out

with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    for name in ('settings.ini', 'nbs', 'lufmm_nb'):
        src = root/name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp/name)
    shutil.rmtree(tmp/'lufmm_nb'); (tmp/'lufmm_nb').mkdir()
    shutil.copy(lib/'__init__.py', tmp/'lufmm_nb'/'__init__.py')
    r = subprocess.run([sys.executable, '-c', 'from nbdev.doclinks import nbdev_export; nbdev_export()'],
                       cwd=tmp, capture_output=True, text=True)
    if r.returncode: sys.exit(f'check_sync: nbdev_export failed:\n{r.stderr}')
    bad = _diff(tmp/'lufmm_nb', lib)
    if bad:
        sys.exit('check_sync: lufmm_nb/ is out of sync with the notebooks; run `nbdev_export` and commit.\n  '
                 + '\n  '.join(bad))
print('check_sync: lufmm_nb/ matches the notebooks')
