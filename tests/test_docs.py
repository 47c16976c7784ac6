"""The docs stay true to the code: check ids, command-line flags, site-file keys and links (fast, no network).

README.md and docs/*.md are read as text; what they name is looked up in the catalog
(scanner.checks.catalog), the parser (scanner.cli.build_parser, with the lab's plugin command) and
the site file's keys (scanner.site.scan_keys). Each helper is also shown to catch a broken case.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

import pytest

from profiles.errors import UsageError
from scanner import cli, site
from scanner.checks import catalog

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

# Flags of other tools that the docs mention in code; none is an edgeaudit flag.
OTHER_TOOLS = {
    "--mount",  # unshare --mount: how the lab's real daemons get their own /etc (docs/lab.md)
    "--now",  # systemctl enable --now: starting the timer (docs/scheduling.md)
    "--strict",  # mypy --strict: what make test runs (README)
    "--stages",  # python -m lab.peers --stages: one benchmark stage at a time (docs/performance.md)
    "--runs",  # python -m lab.peers --runs
    "--large-fleet",  # python -m lab.peers --large-fleet
    "--sparse-cap",  # python -m lab.peers --sparse-cap
    "--source",  # python -m lab.peers --source: another checkout measured (docs/performance.md)
    "--collector",  # node_exporter --collector.textfile.directory: where the metrics file goes (docs/exports.md)
}
# The keys of a site file that are not scan flags (scanner/site.py reads them itself).
SITE_OWN_KEYS = {"name", "mode", "notify"}

FENCE = re.compile(r"^(```|~~~)")
SPAN = re.compile(r"(`+)((?:(?!\n\s*\n).)+?)\1", re.DOTALL)  # a code span, never across a blank line
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")
ID = re.compile(r"(?<![\w-])(?:CIAJ-\d\.\d-[A-Z][A-Z0-9-]*[A-Z0-9]|EA-[A-Z][A-Z0-9-]*[A-Z0-9])")
LINK = re.compile(r"!?\[(?:[^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def split_code(text: str) -> tuple[str, list[str]]:
    """The prose of a Markdown text (code removed) and its code: fenced blocks and inline spans."""
    prose: list[str] = []
    code: list[str] = []
    block: list[str] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            if fenced:
                code.append("\n".join(block))
                block = []
            fenced = not fenced
        elif fenced:
            block.append(line)
        else:
            prose.append(line)
    outside = "\n".join(prose)
    code += [m[2] for m in SPAN.finditer(outside)]
    return SPAN.sub(" ", outside), code


def flags_in(text: str) -> set[str]:
    """Every --flag a Markdown text writes in code (spans and fenced blocks)."""
    return {flag for chunk in split_code(text)[1] for flag in FLAG.findall(chunk)}


def parser_flags(parser: argparse.ArgumentParser) -> set[str]:
    """The long options of a parser and of every subcommand under it, however deep."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= parser_flags(sub)
    return found


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: markup dropped, lower case, punctuation removed, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown text's headings (a repeated one gets -1, -2, ...)."""
    seen: Counter[str] = Counter()
    out = set()
    for line in text.splitlines():
        if (m := HEADING.match(line)) and not FENCE.match(line):
            base = slug(m[2])
            out.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return out


def broken_links(page: Path, text: str) -> list[str]:
    """Relative links of a page whose file (or heading, for a link into a Markdown file) does not exist."""
    prose = split_code(text)[0]
    bad = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not a file of the repo
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(ROOT) or not file.exists():
            bad.append(f"{page.name}: {target}: no such file in the repository")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text(encoding="utf-8")):
            bad.append(f"{page.name}: {target}: no heading #{fragment} in {file.relative_to(ROOT)}")
    return bad


def section(text: str, heading: str) -> str:
    """The text under one heading, up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines)) if (m := HEADING.match(lines[i])) and len(m[1]) <= level), len(lines)
    )
    return "\n".join(lines[start:end])


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of the Markdown tables in a text whose first cell is one backticked name: name -> the other cells."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if m := re.match(r"^\|\s*`([^`]+)`\s*\|(.*)\|\s*$", line):
            assert m[1] not in rows, f"{m[1]} has two rows"
            rows[m[1]] = [c.strip() for c in re.split(r"(?<!\\)\|", m[2])]
    return rows


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _scan_keys() -> set[str]:
    return set(site.scan_keys(site.subparser(cli.build_parser(), "scan")))


# --- (1) every check of the catalog is in docs/checks.md -------------------------------------------------------


def test_every_check_id_has_its_row_and_its_description_in_checks_md() -> None:
    text = _read(DOCS / "checks.md")
    rows = table_rows(section(text, "## Every check"))
    described = section(text, "## What each check looks at, and what passes")
    problems = []
    for check_id, entry in catalog().items():
        row = rows.get(check_id)
        if row is None:
            problems.append(f"{check_id}: no row in the table of ## Every check")
        elif row[:3] != [entry.clause, str(entry.severity), entry.title["en"]]:
            problems.append(f"{check_id}: the row says {row[:3]}, the catalog {entry.clause}, {entry.severity}, ...")
        if f"`{check_id}`" not in described:
            problems.append(f"{check_id}: not described under ## What each check looks at")
    problems += [f"{check_id}: in the table, not in the catalog" for check_id in set(rows) - set(catalog())]
    assert not problems, "\n".join(problems)


def test_every_check_id_the_docs_name_exists() -> None:
    named = {(page.name, found) for page in PAGES for found in ID.findall(_read(page))}
    unknown = sorted(f"{page}: {check_id}" for page, check_id in named if check_id not in catalog())
    assert not unknown, "ids that are not in scanner/checks/catalog.yaml:\n" + "\n".join(unknown)


def test_the_id_pattern_finds_ids_and_not_clauses() -> None:
    assert ID.findall("`CIAJ-3.4-CONFIG-DRIFT`. EA-HOST-BUDGET, tag CIAJ-1.2, the 1.2 DEFAULT-CREDENTIAL row") == [
        "CIAJ-3.4-CONFIG-DRIFT",
        "EA-HOST-BUDGET",
    ]


# --- (2) every --flag the docs write is one of edgeaudit's ------------------------------------------------------


def test_the_parser_walk_reaches_every_subcommand_and_the_lab_plugin() -> None:
    flags = parser_flags(cli.build_parser())
    assert {"--version", "--site", "--presence-only", "--same", "--format", "--join"} <= flags  # top level, subcommands
    assert {"--limit", "--profiles"} <= flags  # history; profiles list, one level further down
    assert {"--fleet", "--run-dir"} <= flags, "the lab's plugin commands are missing: install lab/ (make setup)"


def test_every_flag_in_the_docs_is_an_edgeaudit_option() -> None:
    known = parser_flags(cli.build_parser())
    unknown = sorted(f"{page.name}: {flag}" for page in PAGES for flag in flags_in(_read(page)) - known - OTHER_TOOLS)
    assert not unknown, "flags no edgeaudit parser has (a tool's own? add it to OTHER_TOOLS):\n" + "\n".join(unknown)


def test_the_other_tools_flags_are_used_and_are_not_edgeaudit_flags() -> None:
    used = set().union(*(flags_in(_read(page)) for page in PAGES))
    assert used >= OTHER_TOOLS, f"no page mentions {sorted(OTHER_TOOLS - used)} any more: drop them"
    assert not OTHER_TOOLS & parser_flags(cli.build_parser())


def test_flags_are_read_from_code_spans_and_blocks_only() -> None:
    text = "Prose --not-code.\n\n`scan --safe` and ``--two-ticks``\n\n```sh\nedgeaudit scan --out x\n```\n"
    assert flags_in(text) == {"--safe", "--two-ticks", "--out"}
    assert flags_in("`--no-such-flag`") - parser_flags(cli.build_parser()) == {"--no-such-flag"}


# --- (3) the site file's key table is complete --------------------------------------------------------------------


def _key_table() -> dict[str, list[str]]:
    return table_rows(section(_read(DOCS / "site-file.md"), "## Every key"))


def test_the_site_file_key_table_lists_every_key_and_no_other() -> None:
    listed, keys = set(_key_table()), _scan_keys()
    assert not keys - listed, f"keys missing from docs/site-file.md's table: {sorted(keys - listed)}"
    invented = sorted(listed - keys - SITE_OWN_KEYS)
    assert not invented, f"the table lists keys that do not exist: {invented}"
    assert listed >= SITE_OWN_KEYS


@pytest.mark.parametrize(
    "text",
    ['name = "branch"\n', 'mode = "safe"\n', '[[notify]]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'],
)
def test_the_site_files_own_keys_are_accepted(tmp_path: Path, text: str) -> None:
    (tmp_path / "s.toml").write_text('targets = ["127.0.0.1"]\n' + text)
    site.load(tmp_path / "s.toml", site.subparser(cli.build_parser(), "scan"))  # parsed only: nothing is sent


def test_a_key_the_table_would_invent_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text('targets = ["127.0.0.1"]\ncolour = "blue"\n')
    with pytest.raises(UsageError, match=r"s\.toml:2: colour: unknown key"):
        site.load(tmp_path / "s.toml", site.subparser(cli.build_parser(), "scan"))


def test_table_rows_reads_backticked_first_cells() -> None:
    rows = table_rows("| key | value |\n|---|---|\n| `out` | path \\| dir |\n| plain | x |\n")
    assert rows == {"out": ["path \\| dir"]}


# --- (4) relative links point to files of the repository ----------------------------------------------------------


def test_every_relative_link_points_to_an_existing_file_and_heading() -> None:
    bad = [problem for page in PAGES for problem in broken_links(page, _read(page))]
    assert not bad, "\n".join(bad)


def test_broken_links_are_found() -> None:
    page = DOCS / "example.md"  # not read: the text is given
    text = (
        "[ok](checks.md) [ok](../README.md#two-commands) [web](https://example.org/x) `[code](nowhere.md)`\n"
        "[gone](no-such-page.md) [outside](../../etc/passwd) [anchor](checks.md#no-such-heading)\n"
    )
    assert broken_links(page, text) == [
        "example.md: no-such-page.md: no such file in the repository",
        "example.md: ../../etc/passwd: no such file in the repository",
        "example.md: checks.md#no-such-heading: no heading #no-such-heading in docs/checks.md",
    ]


def test_anchors_follow_githubs_slugs() -> None:
    text = "# Two commands\n## Firmware versions, time and logs (1.3, 1.4)\n### `CIAJ-1.2-X`: what\n## Two commands\n"
    assert anchors(text) == {
        "two-commands",
        "firmware-versions-time-and-logs-13-14",
        "ciaj-12-x-what",
        "two-commands-1",
    }


def test_the_readme_links_every_page_of_docs() -> None:
    readme = _read(ROOT / "README.md")
    unlinked = [p.name for p in DOCS.glob("*.md") if f"(docs/{p.name})" not in readme]
    assert not unlinked, f"README.md links no docs/ page named {unlinked}"
