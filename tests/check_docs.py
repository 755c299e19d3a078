#!/usr/bin/env python3
"""Checks the documentation: every relative link in README.md and docs/*.md resolves, and the
README stays short.

Why: the README was cut to a page and its manual moved into docs/ (issue 23). Links between
them are the only thing that keeps that manual reachable, and a README that grows back into the
manual is the failure this split fixed. So this fails (exit 1, one line per problem) when:
- a relative link ([text](path), [text](path#anchor), [text](#anchor)) names a file or folder
  that does not exist, or an #anchor that no heading of the target Markdown file produces
  (GitHub's slugs: lower-case, punctuation dropped, spaces to hyphens, -1/-2 for repeats);
- README.md has more than MAX_README_LINES lines.
Links with a scheme (https:, mailto:) and <autolinks> are not checked: CI runs offline.
Code (fenced blocks, `inline code`) is skipped: a `# comment` there is no heading and a
[x](y) there is no link.

Usage: check_docs.py [SOURCE_ROOT]   (default: the folder above this script's)
       check_docs.py --self-test     (the checker against small trees it builds: a broken link,
                                      a missing anchor, a long README must fail; good ones pass)
"""

import re
import sys
import tempfile
import urllib.parse
from pathlib import Path

MAX_README_LINES = 260

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) or [text](target "title"); text may hold one level of brackets. Images too.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# [label]: target, a reference-style link's definition.
DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text):
    """(line number, line) for every line outside fenced code, inline code blanked out."""
    in_fence = None
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            if in_fence is None:
                in_fence = fence.group(1)
            elif fence.group(1) == in_fence:
                in_fence = None
            continue
        if in_fence is None:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading: its text
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


_ANCHORS = {}


def anchors(path):
    cache = _ANCHORS
    if path not in cache:
        seen = {}
        found = set()
        for _, line in prose_lines(path.read_text(encoding="utf-8")):
            match = HEADING.match(line)
            if not match:
                continue
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        cache[path] = found
    return cache[path]


def check_links(root, doc):
    problems = []
    for number, line in prose_lines(doc.read_text(encoding="utf-8")):
        prose = INLINE_CODE.sub("", line)
        targets = [m.group(1) for m in LINK.finditer(prose)]
        definition = DEFINITION.match(prose)
        if definition:
            targets.append(definition.group(1))
        for target in targets:
            if SCHEME.match(target) or target.startswith("//"):
                continue
            path_part, _, anchor = target.partition("#")
            path_part = urllib.parse.unquote(path_part)
            where = f"{doc.relative_to(root)}:{number}: link {target!r}"
            dest = (doc.parent / path_part).resolve() if path_part else doc
            if path_part and not dest.exists():
                problems.append(f"{where}: no such file {path_part!r}")
                continue
            if anchor:
                if dest.is_dir() or dest.suffix.lower() != ".md":
                    problems.append(f"{where}: #{anchor} points into a file that is not Markdown")
                elif anchor.lower() not in anchors(dest):
                    problems.append(f"{where}: no heading makes #{anchor} in {dest.name}")
    return problems


def check(root):
    """Every problem found under root, one line each."""
    _ANCHORS.clear()
    readme = root / "README.md"
    docs = [readme] + sorted((root / "docs").glob("*.md"))
    if (root / "CHANGELOG.md").exists():
        docs.append(root / "CHANGELOG.md")
    problems = []
    for doc in docs:
        if doc.exists():
            problems += check_links(root, doc)
        else:
            problems.append(f"{doc.relative_to(root)}: missing")
    if readme.exists():
        lines = len(readme.read_text(encoding="utf-8").splitlines())
        if lines > MAX_README_LINES:
            problems.append(
                f"README.md: {lines} lines, more than {MAX_README_LINES}: move the detail into "
                "docs/ (the README says what it is, how to run and test it, and where to read on)")
    return docs, problems


def self_test():
    """The checker must refuse what it exists to refuse, and pass what is fine."""
    good_readme = "# R\n\n## Try it\n\n[api](docs/api.md#client-shapes) [here](#try-it)\n"
    good_api = ("# API\n\n## Client shapes\n\n## Client shapes\n\n"
                "[up](../README.md#try-it) [2nd](#client-shapes-1) [ref]\n\n"
                "```sh\n# not a heading\n[x](gone.md)\n```\n`[y](gone.md)` <https://x.example/>\n"
                "[ref]: ../README.md\n")
    cases = [  # (name, README text, docs/api.md text, expected problem count)
        ("good tree", good_readme, good_api, 0),
        ("missing file", good_readme + "[x](docs/nope.md)\n", good_api, 1),
        ("missing anchor", good_readme + "[x](docs/api.md#nope)\n", good_api, 1),
        ("anchor in the same file", good_readme + "[x](#nope)\n", good_api, 1),
        ("heading only in code", good_readme, good_api + "[x](#not-a-heading)\n", 1),
        ("reference definition", good_readme, good_api + "[z]: missing.md\n", 1),
        ("long README", good_readme + "line\n" * MAX_README_LINES, good_api, 1),
    ]
    failures = 0
    for name, readme, api, expected in cases:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "docs").mkdir()
            (root / "README.md").write_text(readme, encoding="utf-8")
            (root / "docs" / "api.md").write_text(api, encoding="utf-8")
            _, problems = check(root)
        ok = len(problems) == expected
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {len(problems)} problem(s), expected {expected}"
              + "".join(f"\n     {p}" for p in problems))
    return 1 if failures else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    docs, problems = check(root.resolve())
    for problem in problems:
        print(problem)
    print(f"checked {len(docs)} files: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
