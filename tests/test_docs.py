"""Every documentation reference in the repository resolves.

* every relative markdown link ``[text](path#anchor)`` in a ``.md`` file points at an existing file and, with an
  anchor, at a heading of that markdown file (GitHub's anchor rules);
* every ``docs/<name>.md#anchor`` written anywhere (code comments, docstrings, YAML, shell, markdown), including
  continued anchors such as ``docs/<name>.md#a, #b``, names an existing page and heading;
* no file mentions a ``.md`` document that is not in the repository; the markdown files the code writes as outputs
  (``GENERATED``) are the only exception, and each of them must really be written by the code.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".txt", ".cfg", ".ini"}
SKIPPED_DIRS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "outputs", "checkpoints",
                "build", "dist", ".whl"}  # fmt: skip
# Markdown files the project writes as run outputs (not documents of the repository).
GENERATED = {"summary.md", "reward_quality.md"}

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_DOCS_REF = re.compile(r"(?<![\w/.-])(docs/[\w-]+\.md)(#[\w-]+)?((?:\s*(?:,|and)\s*#[\w-]+)*)")
_CONTINUED = re.compile(r"#([\w-]+)")
_MD_MENTION = re.compile(r"(?<![\w./-])([\w./-]*[\w-]\.md)(?![\w])")
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: link text kept, lower case, punctuation dropped, spaces as hyphens."""
    text = _INLINE_LINK.sub(r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _outside_code_blocks(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        lines.append("" if fenced else line)
    return lines


def anchors(path: Path) -> set[str]:
    """The heading anchors of a markdown file (a repeated heading gets -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _outside_code_blocks(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def repo_files(root: Path) -> list[Path]:
    """The text files of the repository: git's tracked and not-ignored files, or a walk without build outputs."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
        paths = [root / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in root.rglob("*") if not SKIPPED_DIRS.intersection(p.relative_to(root).parts)]
    return sorted(p for p in paths if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.parent.name == ".ci"))


def _check_target(root: Path, source: Path, line_no: int, target: Path, anchor: str | None) -> list[str]:
    where = f"{source.relative_to(root)}:{line_no}"
    if not target.exists():
        return [f"{where}: {target} does not exist"]
    if anchor and (target.suffix != ".md" or anchor not in anchors(target)):
        return [f"{where}: {target.relative_to(root)} has no heading with anchor #{anchor}"]
    return []


def broken_links(root: Path, files: list[Path]) -> list[str]:
    """Relative markdown links of the ``.md`` files whose file or heading anchor does not exist."""
    problems = []
    for path in files:
        if path.suffix != ".md":
            continue
        for line_no, line in enumerate(_outside_code_blocks(path.read_text(encoding="utf-8")), 1):
            for _, url in _MD_LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", url, re.IGNORECASE):  # http:, https:, mailto:
                    continue
                target, _, anchor = url.partition("#")
                resolved = (path.parent / target).resolve() if target else path
                problems += _check_target(root, path, line_no, resolved, anchor or None)
    return problems


def broken_docs_refs(root: Path, files: list[Path]) -> list[str]:
    """``docs/<name>.md[#anchor[, #anchor ...]]`` references whose page or heading does not exist."""
    problems = []
    for path in files:
        for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for page, first, more in _DOCS_REF.findall(line):
                wanted = ([first[1:]] if first else []) + _CONTINUED.findall(more)
                for anchor in wanted or [None]:
                    problems += _check_target(root, path, line_no, root / page, anchor)
    return problems


def missing_md_mentions(root: Path, files: list[Path], generated: set[str]) -> list[str]:
    """Mentions of ``<name>.md`` that are neither a file of the repository (from its root or from the mentioning
    file's folder) nor one of the ``generated`` output names."""
    problems = []
    for path in files:
        for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for name in _MD_MENTION.findall(_URL.sub("", line)):
                if Path(name).name in generated:
                    continue
                if not any(candidate.is_file() for candidate in (root / name, path.parent / name)):
                    problems.append(f"{path.relative_to(root)}:{line_no}: mentions {name}, which is not in the repo")
    return problems


def written_md_names(root: Path, files: list[Path]) -> set[str]:
    """``*.md`` string literals of the project's own (non-test) Python code: the output names it writes."""
    names = set()
    for path in files:
        if path.suffix != ".py" or "tests" in path.relative_to(root).parts:
            continue
        source = path.read_text(encoding="utf-8")
        if ".md" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".md"):
                names.add(node.value)
    return names


@pytest.fixture(scope="module")
def files() -> list[Path]:
    return repo_files(ROOT)


def test_docs_pages_exist_and_have_headings():
    for page in ("rlpr", "rm_r1", "architecture", "data_formats"):
        path = ROOT / "docs" / f"{page}.md"
        assert path.is_file(), path
        assert len(anchors(path)) >= 5, f"{path} has almost no sections"


def test_markdown_links_resolve(files):
    assert any(p.suffix == ".md" for p in files)
    assert broken_links(ROOT, files) == []


def test_docs_references_resolve(files):
    assert broken_docs_refs(ROOT, files) == []


def test_no_mention_of_a_missing_markdown_document(files):
    assert missing_md_mentions(ROOT, files, GENERATED) == []


def test_generated_names_are_really_written_by_the_code(files):
    assert GENERATED <= written_md_names(ROOT, files)


def test_the_checks_catch_broken_references(tmp_path):
    """The checkers themselves, on a small tree with one good and one bad reference of each kind."""
    md = ".md"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / f"page{md}").write_text("# Page\n\n## Std filter\n\n```\n## Not a heading\n```\n")
    (tmp_path / f"README{md}").write_text(
        f"[ok](docs/page{md}#std-filter) [bad anchor](docs/page{md}#not-a-heading) [gone](docs/gone{md})\n"
        "[web](https://example.com/x.md)\n"
    )
    (tmp_path / "code.py").write_text(
        f"# see docs/page{md}#std-filter, #page and docs/page{md}#nope; also notes{md} and summary{md}\n"
    )
    tree = repo_files(tmp_path)
    assert sorted(p.name for p in tree) == sorted(["code.py", f"README{md}", f"page{md}"])
    assert anchors(tmp_path / "docs" / f"page{md}") == {"page", "std-filter"}
    links = broken_links(tmp_path, tree)
    assert len(links) == 2 and "#not-a-heading" in links[0] and f"gone{md}" in links[1]
    refs = broken_docs_refs(tmp_path, tree)  # the README's broken links are docs/ references too
    assert len(refs) == 3 and all(any(bad in r for r in refs) for bad in ("#nope", "#not-a-heading", f"gone{md}"))
    mentions = missing_md_mentions(tmp_path, tree, {f"summary{md}"})
    assert sorted(m.split(": mentions ")[1].split(",")[0] for m in mentions) == [f"docs/gone{md}", f"notes{md}"]


def test_slug_follows_github_rules():
    assert slug("The RLPR step") == "the-rlpr-step"
    assert slug("Inference-time scaling") == "inference-time-scaling"
    assert slug("RM-R1 RL rows") == "rm-r1-rl-rows"
    assert slug("Paper settings ([docs](../x#y))") == "paper-settings-docs"
    assert slug("What `verl` does, §5") == "what-verl-does-5"


_LAYOUT_NAME = re.compile(r"`([\w-]+(?:\.py|\.jsonl|/))`")


def layout_mismatches(root: Path, package: str) -> list[str]:
    """The README layout row of ``package`` against its tree: every module and subpackage (folder of modules) must be
    named, and every ``x.py`` / ``x.jsonl`` / ``x/`` the row names must be in the tree."""
    rows = [line for line in (root / "README.md").read_text().splitlines() if line.startswith(f"| `{package}/` |")]
    if len(rows) != 1:
        return [f"README.md has {len(rows)} layout rows for {package}/, expected 1"]
    named = set(_LAYOUT_NAME.findall(rows[0].split("|")[2]))  # the "what" cell
    tree = [p.relative_to(root / package) for p in (root / package).rglob("*") if p.is_file()]
    tree = [p for p in tree if "__pycache__" not in p.parts]
    modules = {p.name for p in tree if p.suffix == ".py" and p.name != "__init__.py"}
    folders = {f"{p.parent}/" for p in tree if p.suffix == ".py" and len(p.parts) > 1}
    existing = modules | folders | {p.name for p in tree}
    return [f"{package}/ layout row does not name {name}" for name in sorted((modules | folders) - named)] + [
        f"{package}/ layout row names {name}, which is not in {package}/" for name in sorted(named - existing)
    ]


@pytest.mark.parametrize("package", ["harness", "rlpr", "rm_r1"])
def test_readme_layout_row_matches_the_package_tree(package):
    assert layout_mismatches(ROOT, package) == []


def test_layout_check_catches_a_missing_and_a_stale_name(tmp_path):
    for name in ("pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/b.py", "pkg/sub/c.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "README.md").write_text("| folder | what |\n| `pkg/` | `a.py`, `sub/` (`b.py`), `gone.py` |\n")
    assert layout_mismatches(tmp_path, "pkg") == [
        "pkg/ layout row does not name c.py",
        "pkg/ layout row names gone.py, which is not in pkg/",
    ]
