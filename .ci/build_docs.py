"""Build the documentation site into `_docs/`.

With Quarto on PATH this is `nbdev_docs`. Without it, a static HTML preview that needs no network:

1. nbdev's notebook processing (what `nbdev_proc_nbs` does before Quarto; we call it directly because
   that command insists on installing Quarto) writes `_proc/`: `#| hide`/`#| export` cells are gone,
   exported names get `show_doc` cells whose markdown output is regenerated and marked
   `#| echo: false`/`#| output: asis`, the `# Title` + `> summary` cell becomes front matter, and
   cells holding only a heading that ends in ` -` are dropped (here also a markdown cell that starts
   with one: the heading and the notes under it are notebook-only, STYLE.md item 10).
2. Every processed notebook becomes one page, named as Quarto names it (`03_gfmm.ipynb` -> `gfmm.html`),
   with the sections of `nbs/sidebar.yml` in a left sidebar (only notebooks that exist), previous/next
   links and a table of contents. Links to notebooks and to the published site become relative links,
   figures are embedded, math is typeset by a local MathJax 3 (fetched once from npm into `.cache/npm`).

Usage: python .ci/build_docs.py [--preview] [--out DIR] [--keep-going]"""
import argparse, configparser, fnmatch, html, json, os, posixpath, re, shutil, subprocess, sys, time
from pathlib import Path
import nbformat, yaml
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

root = Path(__file__).resolve().parent.parent
nbs, proc = root/'nbs', root/'_proc'
MATHJAX, npm_dir = '3.2.2', root/'.cache'/'npm'
cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(root/'settings.ini'); cfg = cfg['DEFAULT']
site_url = cfg['doc_host'].rstrip('/') + cfg['doc_baseurl'].rstrip('/')
IMAGES = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp'}

def notebooks():
    "Notebooks under nbs/ (paths relative to it), skipping names that start with `_` or `.`, as nbdev does."
    return sorted(p.relative_to(nbs).as_posix() for p in nbs.rglob('*.ipynb')
                  if not any(part[0] in '_.' for part in p.relative_to(nbs).parts))

def page_of(nb):
    "Output page of a notebook, as nbdev/Quarto name it: number prefix dropped, lower case."
    d, name = posixpath.split(nb)
    return posixpath.join(d, re.sub(r'^\d+[a-zA-Z0-9]*_', '', name.lower())[:-len('.ipynb')] + '.html')

def sidebar(nb_list):
    "[(section title or None, [notebook, ...])] from nbs/sidebar.yml; unlisted notebooks go to 'Other'."
    spec = yaml.safe_load((nbs/'sidebar.yml').read_text())['website']['sidebar']['contents']
    seen, groups = set(), []
    def expand(items):
        res = []
        for it in [items] if isinstance(items, (str, dict)) else items:
            pat = it if isinstance(it, str) else it.get('href', '')
            res += [n for n in nb_list if n not in seen and fnmatch.fnmatchcase(n, pat)]
            seen.update(res)
        return res
    for e in spec:
        if isinstance(e, dict) and 'section' in e: groups.append((e['section'], expand(e.get('contents', []))))
        else: groups.append((None, expand(e)))
    rest = [n for n in nb_list if n not in seen]
    if rest: print(f'build_docs: WARNING not in nbs/sidebar.yml, listed under "Other": {", ".join(rest)}')
    return [(s, l) for s, l in groups + [('Other', rest)] if l]

def process(nb_list, keep_going):
    "Run nbdev's docs processing into _proc/. Returns the notebooks it failed on (only with --keep-going)."
    from nbdev.serve import proc_nbs
    try: proc_nbs(path=nbs, n_workers=min(2, os.cpu_count() or 1)); return []
    except Exception as e:
        cause = re.findall(r'^\w+(?:Error|Exception): .*$', str(e.__cause__ or ''), re.M)
        msg = f'build_docs: nbdev could not process the notebooks:\n{e}\n' + '\n'.join(cause[:1])
        msg += ('\nNote: to regenerate show_doc output nbdev re-runs only exported cells, show_doc cells and cells'
                ' with an import, so a cell with an import must hold nothing but imports.')
        failed = [nb for nb in nb_list if not (proc/nb).exists() or (proc/nb).stat().st_mtime < (nbs/nb).stat().st_mtime]
        for nb in failed: (proc/nb).unlink(missing_ok=True)   # so that nbdev's mtime cache retries them next time
        msg += f'\nbuild_docs: nbdev failed on: {", ".join(failed)}'
        if not keep_going: sys.exit(msg + '\n(--keep-going renders the stored outputs of those notebooks instead)')
        print(msg + '\nbuild_docs: WARNING rendering them without re-running show_doc')
        return failed

def load(nb, failed):
    "The processed notebook: from _proc/, or (if nbdev failed on it) processed here without running code."
    if nb not in failed: return nbformat.read(proc/nb, as_version=4)
    from execnb.nbio import nb2str, read_nb
    from nbdev.processors import FilterDefaults, exec_show_docs
    class NoExec(FilterDefaults):
        def base_procs(self): return [p for p in super().base_procs() if p is not exec_show_docs]
    n = read_nb(nbs/nb); NoExec()(n)
    return nbformat.reads(nb2str(n), as_version=4)

_attr_link = re.compile(r'\[([^\]]*)\]\(([^)\s]+)\)\{[^}]*\}')   # Quarto's [text](url){attrs}
_dash_head = re.compile(r'^#+\s.*\s-\s*$')                        # notebook-only heading (STYLE 10)
_directive = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_code = re.compile(r'(```.*?```|~~~.*?~~~|`[^`\n]*`)', re.S)         # code, left alone
_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')

def md(src, attachments=None):
    "Markdown to HTML (math left as `$...$` for MathJax); notebook-only headings and their cell are dropped."
    lines = src.strip().splitlines()
    if lines and _dash_head.match(lines[0]): return ''
    src = '\n'.join(l for l in lines if not _dash_head.match(l))
    src = _attr_link.sub(r'<a class="srclink" href="\2">\1</a>', src)
    # `\$` is a literal dollar: keep the backslash through markdown so MathJax (processEscapes) sees it
    src = ''.join(p if i % 2 else p.replace('\\$', '\\\\$') for i, p in enumerate(_code.split(src)))
    for name, data in (attachments or {}).items():
        mime, b64 = next(iter(data.items()))
        src = src.replace(f'attachment:{name}', f'data:{mime};base64,{"".join(b64.split())}')
    return markdown2html_mistune(src)

def inline(src):
    "Markdown of a title or summary line, without the paragraph around it."
    return re.sub(r'^<p>(.*)</p>\s*$', r'\1', markdown2html_mistune(src).strip(), flags=re.S)

def pre(text, cls='cell-output'):
    return f'<div class="{cls}"><pre>{html.escape(_ansi.sub("", text))}</pre></div>'

def output(o):
    "HTML for one stored output, richest format first."
    if o.output_type == 'stream': return pre(o.text, f'cell-output cell-output-{o.name}')
    if o.output_type == 'error': return pre('\n'.join(o.traceback), 'cell-output cell-output-error')
    d = o.get('data', {})
    for m in ('text/html', 'image/svg+xml'):
        if m in d: return f'<div class="cell-output">{d[m]}</div>'
    for m in ('image/png', 'image/jpeg', 'image/gif'):
        if m in d: return f'<div class="cell-output"><img src="data:{m};base64,{"".join(d[m].split())}" alt="figure"></div>'
    if 'text/markdown' in d: return f'<div class="cell-output cell-output-display">{md(d["text/markdown"])}</div>'
    if 'text/latex' in d: return f'<div class="cell-output">{html.escape(d["text/latex"])}</div>'
    return pre(d['text/plain']) if 'text/plain' in d else ''

def code_cell(c):
    "A code cell honouring the Quarto options nbdev leaves in place (echo, output, include, code-fold)."
    lines, opts = c.source.splitlines(), {}
    while lines and (m := _directive.match(lines[0])): opts[m[1]] = m[2].strip('"\''); lines.pop(0)
    if opts.get('include') == 'false': return ''
    src, parts = '\n'.join(lines).strip(), []
    if src and opts.get('echo') != 'false':
        code = highlight(src, PythonLexer(), HtmlFormatter(cssclass='highlight'))
        if 'code-fold' in opts:
            code = (f'<details{" open" if opts["code-fold"] == "show" else ""}><summary>'
                    f'{html.escape(opts.get("code-summary", "Code"))}</summary>{code}</details>')
        parts.append(f'<div class="cell-input">{code}</div>')
    if opts.get('output') != 'false': parts += [output(o) for o in c.get('outputs', [])]
    return f'<div class="cell">{"".join(parts)}</div>' if any(parts) else ''

def slug(text, used):
    "Heading id the way pandoc (hence Quarto) makes it, made unique within the page."
    s = re.sub(r'\s+', '-', re.sub(r'[^\w\s.-]', '', html.unescape(re.sub(r'<[^>]+>', '', text)).lower()).strip())
    s = re.sub(r'^[^a-z]+', '', s) or 'section'
    base, i = s, 0
    while s in used: i += 1; s = f'{base}-{i}'
    used.add(s); return s

def headings(body):
    "Give headings pandoc-style ids and anchors; return (body, [(level, id, text)])."
    used, toc = set(), []
    def f(m):
        lvl, inner = m[1], re.sub(r'<a class="anchor-link".*?</a>', '', m[2], flags=re.S)
        i = slug(inner, used); toc.append((int(lvl), i, re.sub(r'<[^>]+>', '', inner)))
        return f'<h{lvl} id="{i}" class="anchored">{inner}<a class="anchor-link" href="#{i}">&#182;</a></h{lvl}>'
    return re.sub(r'<h([1-6])(?:\s[^>]*)?>(.*?)</h\1>', f, body, flags=re.S), toc

def fix_links(body, page, pages):
    "Links to notebooks and to the published site become relative links to the preview's pages."
    here = posixpath.dirname(page) or '.'
    def f(m):
        url = html.unescape(m[2]); path, hash_, anchor = url.partition('#')
        if url.startswith(site_url + '/'): target = path[len(site_url) + 1:] or 'index.html'
        elif path.endswith('.ipynb') and not re.match(r'^([a-z][\w+.-]*:|/)', path):
            nb = posixpath.normpath(posixpath.join(here, path))
            if nb not in pages: print(f'build_docs: WARNING {page} links to a missing notebook {path}'); return m[0]
            target = pages[nb]
        else: return m[0]
        return f'{m[1]}="{html.escape(posixpath.relpath(target, here) + hash_ + anchor)}"'
    return re.sub(r'\b(href)="([^"]*)"', f, body)

def render(nb, failed):
    "(title, description, body) of one notebook, as HTML."
    n, fm, parts = load(nb, failed), {}, []
    for c in n.cells:
        if c.cell_type == 'raw' and not fm and (m := re.match(r'^---\n(.*?)\n---', c.source.strip(), re.S)):
            fm = yaml.safe_load(m[1]) or {}
        elif c.cell_type == 'markdown': parts.append(md(c.source, c.get('attachments')))
        elif c.cell_type == 'code': parts.append(code_cell(c))
    title, desc = inline(str(fm.get('title', Path(nb).stem))), inline(str(fm.get('description', '')))
    return title, desc, '\n'.join(p for p in parts if p)

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{text} – {site}</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="{up}assets/preview.css"><link rel="stylesheet" href="{up}styles.css">
<script>window.MathJax = {{tex: {{inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], processEscapes: true,
  packages: {{'[-]': ['noundefined']}}}}}};  // undefined macros are errors, not red text</script>
<script defer src="{up}assets/mathjax/tex-mml-chtml.js"></script></head>
<body><header><a href="{up}index.html">{site}</a></header>
<nav id="sidebar">{nav}</nav>
<main><h1 class="title">{title}</h1>{desc}
{body}
<nav class="page-nav">{prev}{next}</nav></main>
{toc}</body></html>
"""

def mathjax(dest):
    "Copy MathJax (CHTML component, its fonts, autoloaded TeX extensions) from the npm cache, filling it once."
    pkg = npm_dir/'node_modules'/'mathjax'
    if not (pkg/'package.json').exists() or json.loads((pkg/'package.json').read_text())['version'] != MATHJAX:
        if not shutil.which('npm'): sys.exit('build_docs: npm is needed once to fetch MathJax (apt-get install npm)')
        npm_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(['npm', 'install', '--prefix', str(npm_dir), '--no-audit', '--no-fund', '--loglevel=error',
                        f'mathjax@{MATHJAX}'], check=True)
    dest.mkdir(parents=True)
    shutil.copy(pkg/'es5'/'tex-mml-chtml.js', dest)
    for sub in ('output/chtml/fonts/woff-v2', 'input/tex/extensions'): shutil.copytree(pkg/'es5'/sub, dest/sub)

def preview(out, keep_going):
    t0, nb_list = time.time(), notebooks()
    failed = process(nb_list, keep_going)
    pages = {nb: page_of(nb) for nb in nb_list}
    if len(set(pages.values())) < len(pages): sys.exit(f'build_docs: two notebooks map to the same page: {pages}')
    groups = sidebar(nb_list + ([] if 'index.ipynb' in pages else ['index.ipynb']))
    pages.setdefault('index.ipynb', 'index.html')
    info = {}
    for nb in pages:
        if nb in nb_list: title, desc, body = render(nb, failed)
        else: title, desc, body = html.escape(cfg['title']), html.escape(cfg['description']), '<p>(nbs/index.ipynb does not exist yet.)</p>'
        body, toc = headings(fix_links(body, pages[nb], pages))
        info[nb] = dict(page=pages[nb], title=title, text=html.escape(html.unescape(re.sub(r'<[^>]+>', '', title))),
                        desc=desc, body=body, toc=toc)
    if out.exists():
        if out != root/cfg['doc_path'] and any(out.iterdir()) and not (out/'build-info.json').exists():
            sys.exit(f'build_docs: refusing to replace {out}: not empty and not a previous preview')
        shutil.rmtree(out)
    mathjax(out/'assets'/'mathjax')
    (out/'assets'/'preview.css').write_text((root/'.ci'/'docs_preview.css').read_text()
                                           + HtmlFormatter().get_style_defs('.highlight'))
    shutil.copy(nbs/'styles.css', out/'styles.css')
    for p in nbs.rglob('*'):
        rel = p.relative_to(nbs)
        if p.suffix.lower() in IMAGES and not any(s[0] in '_.' for s in rel.parts):
            (out/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy(p, out/rel)
    order = [nb for _, l in groups for nb in l]
    for k, nb in enumerate(order):
        i, here = info[nb], posixpath.dirname(info[nb]['page']) or '.'
        rel = lambda other: posixpath.relpath(info[other]['page'], here)
        link = lambda other: (f'<li><a href="{rel(other)}"{" class=active" if other == nb else ""}>'
                              f'{info[other]["text"]}</a></li>')
        nav = ''.join((f'<div class="section">{html.escape(s)}</div>' if s else '') + f'<ul>{"".join(map(link, l))}</ul>'
                      for s, l in groups)
        prev = f'<a class="prev" href="{rel(order[k-1])}">&larr; {info[order[k-1]]["text"]}</a>' if k else '<span></span>'
        nxt = (f'<a class="next" href="{rel(order[k+1])}">{info[order[k+1]]["text"]} &rarr;</a>'
               if k + 1 < len(order) else '')
        toc = ''.join(f'<li class="l{l}"><a href="#{a}">{t}</a></li>' for l, a, t in i['toc'] if l in (2, 3))
        toc = f'<nav id="toc"><h2>On this page</h2><ul>{toc}</ul></nav>' if toc else ''
        desc = f'<div class="description">{i["desc"]}</div>' if i['desc'] else ''
        up = '../' * i['page'].count('/')
        dest = out/i['page']; dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(PAGE.format(title=i['title'], text=i['text'], site=html.escape(cfg['title']), up=up, nav=nav,
                                    desc=desc, body=i['body'], prev=prev, next=nxt, toc=toc))
    (out/'build-info.json').write_text(json.dumps(
        {'pages': {nb: info[nb]['page'] for nb in order}, 'sections': groups, 'not_processed': failed}, indent=1))
    print(f'build_docs: wrote {len(order)} pages to {out} in {time.time() - t0:.1f}s')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preview', action='store_true', help='build the static preview even if Quarto is installed')
    ap.add_argument('--out', type=Path, help='preview output folder (default: doc_path of settings.ini)')
    ap.add_argument('--keep-going', action='store_true', help='if nbdev cannot process a notebook, render its stored outputs')
    a = ap.parse_args()
    os.chdir(root)
    if shutil.which('quarto') and not (a.preview or a.out):
        r = subprocess.run([str(Path(sys.executable).parent/'nbdev_docs')]).returncode
        # nbdev_docs re-renders README.md with Quarto when index.ipynb is newer: restore ours (check-readme)
        sys.exit(r or subprocess.run([sys.executable, str(root/'.ci'/'readme.py')]).returncode)
    preview((a.out or root/cfg['doc_path']).resolve(), a.keep_going)

if __name__ == '__main__': main()
