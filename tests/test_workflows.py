"""The GitHub workflows and the Quarto config are wired to what exists in the repository.

Workflows (.github/workflows/*.yaml): they parse, have the expected triggers, jobs and steps, every
`make TARGET` in a `run:` step (or in a script of the repository that a step runs, such as .ci/run) is a
target of the Makefile, every script path they name exists, and every `.venv/bin/X` they call is a console
script of an installed package.

Quarto: the top-level _quarto.yml is the config and nbs/_quarto.yml a symlink to it, because nbdev 2.4.14
reads only `nbs_path/_quarto.yml`: `proc_nbs` copies it (following the link) with the rest of nbs/ into
_proc/, where `nbdev_docs`/`nbdev_preview` run Quarto, so the paths it names are relative to nbs/.
`refresh_quarto_yml` (run by `nbdev_docs`) keeps the link unless settings.ini sets `custom_quarto_yml = False`;
both behaviours are checked against nbdev itself in a scratch copy. No network, no builds."""
import configparser, os, re, shlex, shutil
from importlib.metadata import entry_points
from pathlib import Path
import pytest, yaml

root = Path(__file__).resolve().parent.parent
wf_dir = root/'.github'/'workflows'
cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(root/'settings.ini'); cfg = cfg['DEFAULT']

# ------------------------------------------------------------------------------------------ helpers
def load_workflow(path):
    "A workflow as a dict; YAML 1.1 reads the key `on` as True, so it is put back under 'on'."
    wf = yaml.safe_load(Path(path).read_text())
    if True in wf: wf['on'] = wf.pop(True)
    return wf

def triggers(wf):
    "Trigger events of a workflow as a dict (`on: push`, `on: [push, pull_request]` or a mapping)."
    on = wf['on']
    if isinstance(on, str): return {on: None}
    if isinstance(on, list): return dict.fromkeys(on)
    return dict(on)

def steps(wf): return [s for job in wf['jobs'].values() for s in job.get('steps', [])]
def run_scripts(wf): return [s['run'] for s in steps(wf) if 'run' in s]
def uses(wf): return [s['uses'] for s in steps(wf) if 'uses' in s]

def makefile_targets(text):
    "Explicit targets of a Makefile (rules `a b: deps`), without special targets like .PHONY."
    out = set()
    for line in text.splitlines():
        if not line or line[0] in ' \t#': continue          # recipe lines, comments
        m = re.match(r'^([^=:#]+?)\s*::?(?!=)', line)      # `x := y` / `x ?= y` are variables
        if m: out.update(t for t in m[1].split() if not t.startswith('.'))
    return out

def _commands(script):
    "Shell commands of a script as lists of words (split at newlines, ;, &&, ||, |); comments dropped."
    cmds = []
    for line in script.splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True); lex.whitespace_split = True
        cmd = []
        for tok in lex:
            if tok and set(tok) <= set(';&|()'):
                if cmd: cmds.append(cmd)
                cmd = []
            else: cmd.append(tok)
        if cmd: cmds.append(cmd)
    return cmds

def make_targets_called(script):
    "Targets of every `make ...` command in a shell script (options and VAR=value skipped)."
    out = []
    for cmd in _commands(script):
        if cmd[0] not in ('make', '$(MAKE)', '${MAKE}'): continue
        here = []
        for a in cmd[1:]:
            if a in ('-C', '-f', '--directory', '--file'):
                raise AssertionError(f'`{" ".join(cmd)}`: this check assumes make runs the top-level Makefile')
            if a.startswith('-') or '=' in a: continue
            here.append(a)
        out += here or ['<default target>']   # a bare `make` is reported: name the target
    return out

def script_paths(script):
    "Repository paths a shell script names: words starting with ./ or .ci/, or ending in .py/.sh."
    out = []
    for cmd in _commands(script):
        for w in cmd:
            if '://' in w or w.startswith(('$', '-')) or '=' in w: continue
            if w.startswith(('./', '.ci/')) or re.search(r'\.(py|sh)$', w): out.append(w)
    return out

def venv_tools(script):
    "Names X of `.venv/bin/X` words in a script."
    return [w.split('/')[-1] for cmd in _commands(script) for w in cmd if w.startswith(('.venv/bin/', './.venv/bin/'))]

def workflow_problems(wf, repo=root):
    "Missing Makefile targets and script paths for one parsed workflow (empty when all is well)."
    targets, problems = makefile_targets((repo/'Makefile').read_text()), []
    scripts = [(f'run step {i}', s) for i, s in enumerate(run_scripts(wf))]
    for where, s in list(scripts):
        for p in script_paths(s):
            f = repo/p
            if not f.is_file(): problems.append(f'{where}: {p} does not exist'); continue
            if not os.access(f, os.X_OK) and _commands(s) and p in [c[0] for c in _commands(s)]:
                problems.append(f'{where}: {p} is run directly but is not executable')
            if f.suffix in ('', '.sh') and f.read_text(errors='replace').startswith('#!'):
                scripts.append((p, f.read_text()))                 # follow shell scripts (.ci/run)
    for where, s in scripts:
        problems += [f'{where}: `make {t}` but the Makefile has no target {t}'
                     for t in make_targets_called(s) if t not in targets]
    return problems

def quarto_problems(repo=root):
    "Why the _quarto.yml arrangement of a repository is broken (empty when all is well)."
    top, link = repo/'_quarto.yml', repo/'nbs'/'_quarto.yml'
    if not top.is_file() or top.is_symlink(): return [f'{top} must be a regular file (the config to edit)']
    if not link.is_symlink(): return [f'{link} must be a symlink to ../_quarto.yml (nbdev reads only this path)']
    if os.readlink(link) != '../_quarto.yml': return [f'{link} -> {os.readlink(link)}, not ../_quarto.yml']
    if link.read_bytes() != top.read_bytes(): return [f'{link} does not resolve to {top}']
    return []

def config_paths(q):
    "Files a Quarto config names: its css and metadata-files (relative to the project folder)."
    css = q.get('format', {}).get('html', {}).get('css', [])
    return [*([css] if isinstance(css, str) else css), *q.get('metadata-files', [])]

# ------------------------------------------------------------------------------------------ workflows
@pytest.fixture(scope='module')
def test_wf(): return load_workflow(wf_dir/'test.yaml')

@pytest.fixture(scope='module')
def deploy_wf(): return load_workflow(wf_dir/'deploy.yaml')

def test_on_is_read_back():
    assert load_workflow(wf_dir/'test.yaml')['on'] is not None
    assert triggers({'on': 'push'}) == {'push': None} and set(triggers({'on': ['push', 'pull_request']})) == {'push', 'pull_request'}

def _setup_python(wf):
    s = [s for s in steps(wf) if s.get('uses', '').startswith('actions/setup-python@')]
    assert len(s) == 1, 'one actions/setup-python step'
    return str(s[0].get('with', {}).get('python-version'))

def test_test_workflow(test_wf):
    assert {'push', 'pull_request'} <= set(triggers(test_wf))
    assert len(test_wf['jobs']) == 1
    job, = test_wf['jobs'].values()
    assert 'ubuntu' in str(job['runs-on'])
    assert uses(test_wf)[0].startswith('actions/checkout@'), 'the checkout comes first'
    assert _setup_python(test_wf) == '3.11'
    runs = run_scripts(test_wf)
    # the same checks as `make test`: the last step is `make test` or .ci/run (which is `make test`)
    assert runs[-1].strip() in ('make test', '.ci/run', './.ci/run')
    assert make_targets_called((root/'.ci'/'run').read_text()) == ['test']

def test_deploy_workflow(deploy_wf):
    on = triggers(deploy_wf)
    assert cfg['branch'] in on['push']['branches'] and 'workflow_dispatch' in on
    assert 'pull_request' not in on, 'docs are published from the default branch only'
    perms = deploy_wf['permissions']
    assert perms.get('pages') == 'write' and perms.get('id-token') == 'write'
    build, deploy = deploy_wf['jobs']['build'], deploy_wf['jobs']['deploy']
    assert 'ubuntu' in str(build['runs-on']) and _setup_python(deploy_wf) == '3.11'
    names = [s.get('uses', s.get('run', '')).strip() for s in build['steps']]
    at = lambda pred: next(i for i, n in enumerate(names) if pred(n))
    i_checkout, i_quarto = at(lambda n: n.startswith('actions/checkout@')), at(lambda n: n.startswith('quarto-dev/quarto-actions/setup@'))
    i_install, i_docs = at(lambda n: 'make install-dev' in n), at(lambda n: re.search(r'(^|/)nbdev_docs\b', n))
    i_upload = at(lambda n: n.startswith('actions/upload-pages-artifact@'))
    assert i_checkout < i_install < i_docs < i_upload and i_quarto < i_docs
    upload = build['steps'][i_upload]
    assert upload['with']['path'] == cfg['doc_path'], 'the artifact is what nbdev_docs writes (doc_path)'
    assert deploy['needs'] == 'build' and deploy['environment']['name'] == 'github-pages'
    assert [s['uses'].split('@')[0] for s in deploy['steps']] == ['actions/deploy-pages']

@pytest.mark.parametrize('name', ['test.yaml', 'deploy.yaml'])
def test_workflow_names_what_exists(name):
    wf = load_workflow(wf_dir/name)
    assert workflow_problems(wf) == []
    assert any(make_targets_called(s) for s in run_scripts(wf)) or any(script_paths(s) for s in run_scripts(wf))

@pytest.mark.parametrize('name', ['test.yaml', 'deploy.yaml'])
def test_workflow_venv_tools_are_installed(name):
    "`.venv/bin/X` is the Makefile's venv, and X a console script of an installed package (e.g. nbdev)."
    assert re.search(r'^VENV\s*:?=\s*\.venv\s*$', (root/'Makefile').read_text(), re.M)
    scripts = {e.name for e in entry_points(group='console_scripts')}
    for s in run_scripts(load_workflow(wf_dir/name)):
        assert set(venv_tools(s)) <= scripts

def test_checks_can_fail(tmp_path):
    "A renamed Makefile target, a missing script and a non-executable script are all reported."
    wf = {'on': {'push': None}, 'jobs': {'j': {'steps': [{'run': 'make install-dev\nmake docs PY=x -j2 && .ci/run'},
                                                          {'run': 'python .ci/nope.py'}]}}}
    (tmp_path/'.ci').mkdir()
    (tmp_path/'Makefile').write_text('VENV := .venv\n.PHONY: doc\ninstall-dev: $(VENV)/x\n\tmake docs\ndoc:\n\techo\n')
    (tmp_path/'.ci'/'run').write_text('#!/usr/bin/env bash\nset -e\n# make comment\nmake test\n')
    problems = '\n'.join(workflow_problems(wf, tmp_path))
    for msg in ['no target docs', '.ci/nope.py does not exist', '.ci/run is run directly but is not executable',
                'no target test']:
        assert msg in problems
    assert 'install-dev' not in problems and 'comment' not in problems
    assert makefile_targets((root/'Makefile').read_text()) >= {'install-dev', 'test', 'docs', '$(VENV)/.installed'}
    assert 'VENV' not in makefile_targets((root/'Makefile').read_text())

# ------------------------------------------------------------------------------------------ quarto
def test_top_level_quarto_yml():
    assert quarto_problems() == []
    q = yaml.safe_load((root/'_quarto.yml').read_text())
    assert q['project']['type'] == 'website'
    # the paths are relative to nbs/ (copied to _proc/, where nbdev runs Quarto)
    paths = config_paths(q)
    assert 'nbdev.yml' in paths and 'sidebar.yml' in paths and 'styles.css' in paths
    for p in paths: assert (root/'nbs'/p).is_file(), f'_quarto.yml names {p}, missing in nbs/'
    nbdev_yml = yaml.safe_load((root/'nbs'/'nbdev.yml').read_text())
    assert nbdev_yml['project']['output-dir'] == cfg['doc_path'], 'nbdev_docs moves _proc/<doc_path> to the root'

def test_settings_keep_the_link():
    "`custom_quarto_yml = False` would make refresh_quarto_yml replace nbs/_quarto.yml by nbdev's default."
    v = cfg.get('custom_quarto_yml')
    assert v is None or v.strip().lower() in ('true', 'yes', 'on', '1', 'y', 't')

def test_quarto_check_can_fail(tmp_path):
    (tmp_path/'nbs').mkdir(); (tmp_path/'_quarto.yml').write_text('project:\n  type: website\n')
    (tmp_path/'nbs'/'_quarto.yml').write_text('project:\n  type: website\n')
    assert 'must be a symlink' in quarto_problems(tmp_path)[0]
    (tmp_path/'nbs'/'_quarto.yml').unlink(); (tmp_path/'nbs'/'_quarto.yml').symlink_to('../other.yml')
    assert quarto_problems(tmp_path)

@pytest.fixture
def scratch(tmp_path, monkeypatch):
    "A scratch copy of the repository's settings, _quarto.yml and nbs/ config files, as cwd for nbdev."
    from nbdev.config import get_config
    shutil.copy(root/'settings.ini', tmp_path); shutil.copy(root/'_quarto.yml', tmp_path)
    (tmp_path/'nbs').mkdir(); (tmp_path/cfg['lib_path']).mkdir()
    os.symlink(os.readlink(root/'nbs'/'_quarto.yml'), tmp_path/'nbs'/'_quarto.yml')
    for p in config_paths(yaml.safe_load((root/'_quarto.yml').read_text())): shutil.copy(root/'nbs'/p, tmp_path/'nbs'/p)
    monkeypatch.chdir(tmp_path); get_config.cache_clear()
    yield tmp_path
    get_config.cache_clear()

def test_nbdev_keeps_the_link_and_renders_a_copy(scratch):
    "What nbdev_docs does before `quarto render`: refresh_quarto_yml, then proc_nbs into _proc/."
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import proc_nbs
    nbdev_yml = (scratch/'nbs'/'nbdev.yml').read_text()
    refresh_quarto_yml()
    assert quarto_problems(scratch) == [] and (scratch/'_quarto.yml').read_bytes() == (root/'_quarto.yml').read_bytes()
    assert (scratch/'nbs'/'nbdev.yml').read_text() == nbdev_yml, 'nbs/nbdev.yml is what nbdev writes from settings.ini'
    cache = proc_nbs(scratch/'nbs', n_workers=0)
    q = cache/'_quarto.yml'
    assert cache == scratch/'_proc' and q.is_file() and not q.is_symlink()
    assert q.read_bytes() == (root/'_quarto.yml').read_bytes()
    for p in config_paths(yaml.safe_load(q.read_text())): assert (cache/p).is_file(), f'{p} is not next to _proc/_quarto.yml'

def test_custom_quarto_yml_false_breaks_the_link(scratch):
    "Why settings.ini must not set custom_quarto_yml = False (and the check notices)."
    from nbdev.quarto import refresh_quarto_yml
    (scratch/'settings.ini').write_text((scratch/'settings.ini').read_text() + 'custom_quarto_yml = False\n')
    refresh_quarto_yml()
    assert 'must be a symlink' in quarto_problems(scratch)[0]
