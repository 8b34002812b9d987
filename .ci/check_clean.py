"""Fail if any notebook differs from what `nbdev_clean` makes of it (checked in a scratch copy)."""
import shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    shutil.copy(root/'settings.ini', tmp/'settings.ini')
    shutil.copytree(root/'nbs', tmp/'nbs', ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc'))
    (tmp/'lufmm_nb').mkdir()
    r = subprocess.run([sys.executable, '-c', 'from nbdev.clean import nbdev_clean; nbdev_clean()'],
                       cwd=tmp, capture_output=True, text=True)
    if r.returncode: sys.exit(f'check_clean: nbdev_clean failed:\n{r.stderr}')
    dirty = [str(p.relative_to(tmp)) for p in sorted((tmp/'nbs').rglob('*.ipynb'))
             if p.read_bytes() != (root/p.relative_to(tmp)).read_bytes()]
    if dirty: sys.exit('check_clean: these notebooks are not clean; run `nbdev_clean` and commit:\n  ' + '\n  '.join(dirty))
print('check_clean: all notebooks are clean')
