"""Open every page of the docs preview in Chromium and check what a reader would notice.

The preview (`.ci/build_docs.py`) is rebuilt first when it is missing or older than the notebooks, the
library or the build script. It is served on 127.0.0.1 under a sub-path, so relative links are tested
as they behave at any base URL, and every request that leaves 127.0.0.1 is blocked and reported: the
docs must work offline. Per page: HTTP 200, no console errors, no failed requests, every internal link
and anchor resolves, every image loaded, MathJax typeset the formulas (no TeX errors, no TeX left as
plain text), the sidebar links every notebook, no `#|` directive or ` -` heading leaks into the page.
Debian's Chromium (`apt-get install chromium`, done by `make install-dev`) is driven by Playwright;
without it the test is skipped, unless CI=true, where it fails."""
import fnmatch, functools, json, os, re, shutil, subprocess, sys, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit
import pytest, yaml

root = Path(__file__).resolve().parent.parent
nbs = root/'nbs'
CHROMIUM = '/usr/bin/chromium'
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync']
BASE = '/some/base/path/'       # pages must not assume they sit at the server root
SITE = 'https://lufmm-nb.github.io/lufmm_nb'   # links to it should have been made relative
TUTORIALS = ['gfmm.html', 'fmm1.html', 'fmm.html', 'lunet.html']   # first one that exists is screenshot

def notebooks():
    "Chapters: notebooks in nbs/ except those whose path has a part starting with `_` or `.`."
    return sorted(p.relative_to(nbs).as_posix() for p in nbs.rglob('*.ipynb')
                  if not any(s[0] in '_.' for s in p.relative_to(nbs).parts))

def page_of(nb):
    "Page name as nbdev/Quarto give it: number prefix dropped (`03_gfmm.ipynb` -> `gfmm.html`)."
    d, name = os.path.split(nb)
    return os.path.join(d, re.sub(r'^\d+[a-zA-Z0-9]*_', '', name.lower())[:-len('.ipynb')] + '.html')

PAGES = sorted({page_of(nb) for nb in notebooks()} | {'index.html'})

def has_math(nb):
    "Does the notebook's prose (markdown cells, notebook-only ` -` sections excepted) contain `$...$`?"
    if not (nbs/nb).exists(): return False
    cells = json.loads((nbs/nb).read_text())['cells']
    return any(re.search(r'\$[^$]+\$', ''.join(c['source'])) for c in cells if c['cell_type'] == 'markdown'
               and not re.match(r'#+\s.*\s-\s*$', ''.join(c['source']).strip().split('\n')[0]))

def test_sidebar_yml_lists_every_notebook():
    "nbs/sidebar.yml (read by Quarto and the preview) must cover every chapter, or Quarto would omit it."
    pats = []
    def walk(items):
        for it in [items] if isinstance(items, (str, dict)) else items:
            if isinstance(it, str): pats.append(it)
            elif 'section' in it: walk(it.get('contents', []))
            elif 'href' in it: pats.append(it['href'])
    walk(yaml.safe_load((nbs/'sidebar.yml').read_text())['website']['sidebar']['contents'])
    missing = [nb for nb in notebooks() if not any(fnmatch.fnmatchcase(nb, p) for p in pats)]
    assert not missing, f'add these notebooks to a section of nbs/sidebar.yml: {missing}'
    assert 'index.ipynb' in pats

def test_import_cells_hold_only_imports():
    """nbdev re-runs every cell that contains an import when it makes the docs (to regenerate `show_doc`),
    without the cells before it: such a cell must hold nothing but imports (nbdev FAQ)."""
    import ast
    bad = []
    for nb in notebooks():
        cells = json.loads((nbs/nb).read_text())['cells']
        if not re.search(r'#\|\s*export|show_doc\(', ''.join(''.join(c['source']) for c in cells)): continue  # nbdev runs nothing
        for i, c in enumerate(cells):
            src = ''.join(c['source']) if c['cell_type'] == 'code' else ''
            if re.search(r'^\s*#\|\s*(export|exporti|exports|eval:\s*false)\b', src, re.M): continue
            try: body = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))).body
            except SyntaxError: continue
            if any(isinstance(t, (ast.Import, ast.ImportFrom)) for t in body) and \
               not all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in body):
                first = next(l for l in src.splitlines() if l.strip() and not l.lstrip().startswith('#|'))
                bad.append(f'{nb} cells[{i}]: {first[:70]!r}')
    assert not bad, ('move these imports into the import cell (docs processing re-runs such cells out of '
                     'context):\n  ' + '\n  '.join(bad))

def _stale(out):
    info = out/'build-info.json'
    if not info.exists(): return True
    srcs = [root/'settings.ini', *root.glob('.ci/build_docs.py'), *root.glob('.ci/docs_preview.css'),
            *root.glob('lufmm_nb/*.py'), *(p for p in nbs.rglob('*') if p.is_file() and '.ipynb_checkpoints' not in p.parts)]
    return max(p.stat().st_mtime for p in srcs) > info.stat().st_mtime

@pytest.fixture(scope='module')
def sync_pw():
    "Playwright's sync API, once Debian's Chromium is known to be there (skip, or fail under CI=true)."
    in_ci = os.environ.get('CI', '').lower() == 'true'
    try: from playwright.sync_api import sync_playwright
    except ImportError as e:
        if in_ci: pytest.fail(f'playwright is not installed: {e}')
        pytest.skip('playwright is not installed (make install-dev)')
    if not os.path.exists(CHROMIUM):
        if in_ci: pytest.fail(f'{CHROMIUM} is missing; `make install-dev` installs Debian chromium')
        pytest.skip(f'{CHROMIUM} is missing (apt-get install chromium chromium-driver, or make install-dev)')
    return sync_playwright

@pytest.fixture(scope='module')
def docs(sync_pw, tmp_path_factory):
    "Folder of an up-to-date preview: _docs/ (or a scratch folder where Quarto owns _docs/)."
    out = tmp_path_factory.mktemp('docs') if shutil.which('quarto') else root/'_docs'
    if _stale(out):
        r = subprocess.run([sys.executable, str(root/'.ci'/'build_docs.py'), '--preview', '--out', str(out)],
                           cwd=root, capture_output=True, text=True)
        assert r.returncode == 0, f'docs build failed (python .ci/build_docs.py):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}'
    return out

@pytest.fixture(scope='module')
def server(docs):
    "Serve the preview at http://127.0.0.1:<ephemeral port>/some/base/path/."
    class Handler(SimpleHTTPRequestHandler):
        def translate_path(self, path):
            p = urlsplit(path).path
            return super().translate_path('/' + p[len(BASE):]) if p.startswith(BASE) else '/nonexistent'
        def log_message(self, *a): pass
    srv = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Handler, directory=str(docs)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown(); srv.server_close()

@pytest.fixture(scope='module')
def chrome(sync_pw, server, tmp_path_factory):
    "A Chromium context with a fresh profile, in which only 127.0.0.1 can be reached."
    blocked = []
    def route(r):
        if r.request.url.startswith(server): r.continue_()
        else: blocked.append(r.request.url); r.abort()
    with sync_pw() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp('profile')), executable_path=CHROMIUM,
                                                   headless=True, args=ARGS, viewport={'width': 1400, 'height': 900})
        ctx.route('**/*', route); ctx.blocked = blocked
        yield ctx
        ctx.close()

def _ids(html): return set(re.findall(r'\b(?:id|name)="([^"]*)"', html))

@pytest.mark.parametrize('name', PAGES)
def test_page(name, server, chrome):
    url, errors, failed = server + BASE + name, [], []
    page = chrome.new_page()
    page.on('console', lambda m: m.type == 'error' and errors.append(m.text))
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('requestfailed', lambda r: failed.append(f'{r.url[:120]} ({r.failure})'))
    page.on('response', lambda r: r.status >= 400 and failed.append(f'{r.url[:120]} (HTTP {r.status})'))
    n_blocked = len(chrome.blocked)
    resp = page.goto(url, wait_until='load')
    assert resp and resp.status == 200, f'{name}: HTTP {resp and resp.status}'
    mj = page.evaluate("""async () => { if (window.MathJax?.startup?.promise) await MathJax.startup.promise;
        return [document.querySelectorAll('mjx-container').length,
                [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error'))]; }""")
    page.wait_for_load_state('networkidle')   # MathJax fonts load after typesetting
    problems = [f'console error: {e}' for e in errors] + [f'failed request: {f}' for f in failed]
    problems += [f'request left 127.0.0.1: {u}' for u in chrome.blocked[n_blocked:]]
    bad_imgs = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 100))")
    problems += [f'image not loaded: {s}' for s in bad_imgs]
    nb = next((nb for nb in notebooks() if page_of(nb) == name), None)
    if nb and has_math(nb) and mj[0] == 0: problems.append('the notebook has $...$ math but MathJax typeset nothing')
    problems += [f'TeX error: {e}' for e in mj[1]]
    raw = page.evaluate(r"""() => { const out = [], w = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
        while (w.nextNode()) { const n = w.currentNode;
            if (!n.parentElement.closest('pre, code, mjx-container, script, style') && /\\[a-zA-Z]+|\$[^$]*[\\^_{}]/.test(n.textContent))
                out.push(n.textContent.trim().slice(0, 80)); }
        return out; }""")
    problems += [f'TeX left as plain text (unbalanced $ or braces?): {t!r}' for t in raw]
    text = page.inner_text('main')
    if '#|' in text: problems.append('a `#|` directive is visible')
    problems += [f'notebook-only heading shown: {h!r}' for h in page.eval_on_selector_all('main h1, main h2, main h3, main h4',
                 'hs => hs.map(h => h.textContent.replace("¶", "").trim())') if h.endswith(' -')]
    # the sidebar links every chapter, with links that resolve from this page's folder
    side = {h[len(server + BASE):] for h in page.eval_on_selector_all('#sidebar a', 'as => as.map(a => a.href)')}
    problems += [f'sidebar does not link {p}' for p in PAGES if p not in side]
    # every internal link resolves, anchors included
    own_ids = set(page.eval_on_selector_all('[id], a[name]', 'es => es.map(e => e.id || e.name)'))
    for href in sorted(set(page.eval_on_selector_all('a[href]', 'as => as.map(a => a.href)'))):
        if href.startswith(SITE): problems.append(f'link to the published site, not relative: {href}'); continue
        if not href.startswith(server): continue
        target, _, anchor = href.partition('#')
        if target == url.partition('#')[0]:
            if anchor and anchor not in own_ids: problems.append(f'missing anchor #{anchor} (link {href})')
            continue
        r = chrome.request.get(target)
        if r.status != 200: problems.append(f'broken link {href} (HTTP {r.status})')
        elif anchor and anchor not in _ids(r.text()): problems.append(f'missing anchor in {href}')
    page.close()
    assert not problems, f'{name}:\n  ' + '\n  '.join(problems)

def test_screenshots(docs, server, chrome):
    "Screenshots of the front page and of one tutorial chapter, for a human to glance at."
    shots = docs/'screenshots'; shots.mkdir(exist_ok=True)
    tut = next((t for t in TUTORIALS if t in PAGES), next((p for p in PAGES if p != 'index.html'), None))
    for name in ['index.html'] + ([tut] if tut else []):
        page = chrome.new_page()
        page.goto(server + BASE + name, wait_until='load')
        page.evaluate("async () => { if (window.MathJax?.startup?.promise) await MathJax.startup.promise; }")
        page.screenshot(path=str(shots/(Path(name).stem + '.png')), full_page=True)
        page.close()
        assert (shots/(Path(name).stem + '.png')).stat().st_size > 1000
