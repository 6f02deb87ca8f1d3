"""The run report: one self-contained HTML page per run, and a Markdown summary of the same numbers.

The HTML carries its charts as inline SVG and its style inline, under a Content-Security-Policy
that forbids loading anything, so it opens offline, from a CI artifact or an e-mail, exactly
as it was written. The Markdown has the same tables without the charts, for terminals and CI
logs. Both are rendered from one list of sections (``tasks.report.audit_sections``,
``tasks.report.review_section``, ``tasks.report.uncertainty_section``,
``tasks.report.revision_section``, ``tasks.report.training_sections``,
``tasks.report.stress_section``, ``tasks.report.compare_section``), so they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from tasks.core.files import write_atomically
from tasks.report.audit_sections import (
    agreement_section,
    calibration_section,
    coverage_section,
    disagreements_section,
    headline_section,
    labels_section,
    length_section,
    position_section,
    stages_section,
)
from tasks.report.blocks import Block, Figure, Note, Section, SideBySide, Table, format_value
from tasks.report.compare_section import compare_section
from tasks.report.data import ReportData, StageRecord, gather_report_data
from tasks.report.impact_section import impact_section
from tasks.report.review_section import review_section
from tasks.report.revision_section import revision_section
from tasks.report.stress_section import stress_section
from tasks.report.training_sections import policy_section, reward_section, scoreboard_section
from tasks.report.uncertainty_section import evidence_section, uncertainty_section
from tasks.store.store import Store

__all__ = ["ReportPaths", "StageRecord", "render_html", "render_markdown", "write_report"]

# The report's sections, in reading order: the headline, what ran, the audit, what people should
# review next, then training.
SECTIONS: tuple[Callable[[ReportData], Section], ...] = (
    headline_section,
    stages_section,
    labels_section,
    agreement_section,
    position_section,
    length_section,
    coverage_section,
    calibration_section,
    evidence_section,
    uncertainty_section,
    disagreements_section,
    review_section,
    impact_section,
    revision_section,
    reward_section,
    policy_section,
    scoreboard_section,
    stress_section,
    compare_section,
)
HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1d1d1f; margin: 0 auto; max-width: 1000px;
       padding: 1rem 1.5rem; }
h1 { margin-bottom: .2rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
.meta { color: #555; margin-top: 0; }
nav ol { columns: 3; font-size: .9rem; }
table { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .88rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f5f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
figcaption { font-size: .88rem; color: #444; }
.note { padding: .5rem .8rem; border-left: 4px solid #8e8e93; background: #f5f5f7; }
.note.warning { border-color: #d55e00; background: #fff4ec; }
.note.missing { border-color: #0072b2; }
svg .grid { stroke: #e5e5e5; }
svg .axis { stroke: #888; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .axis-label { font-size: 12px; fill: #111; }
svg .diagonal, svg .reference { stroke: #777; stroke-dasharray: 4 3; }
svg .bin { fill-opacity: .75; stroke: #fff; }
.side-by-side { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.2rem;
                align-items: start; }
@media (max-width: 800px) { .side-by-side { grid-template-columns: minmax(0, 1fr); } }
.side-by-side > * { margin-top: 0; }
.side-by-side > table { display: block; overflow-x: auto; }
.side-by-side svg { width: 100%; height: auto; }
"""
# Nothing may load from anywhere: no scripts, no fonts, no images; only the inline stylesheet.
CSP = "default-src 'none'; style-src 'unsafe-inline'"


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path


def write_report(
    store: Store,
    out_dir: Path,
    *,
    title: str,
    stages: Sequence[StageRecord],
    reward_checkpoint: str | Path | None = None,
    policy_checkpoint: str | Path | None = None,
) -> ReportPaths:
    """Write ``report.html`` and ``report.md`` into ``out_dir`` (each replaced atomically)."""
    data = gather_report_data(
        store,
        title=title,
        stages=stages,
        reward_checkpoint=reward_checkpoint,
        policy_checkpoint=policy_checkpoint,
    )
    sections = build_sections(data)
    out_dir = Path(out_dir)
    paths = ReportPaths(out_dir / HTML_FILE, out_dir / MARKDOWN_FILE)
    write_atomically(paths.html, render_html(data, sections))
    write_atomically(paths.markdown, render_markdown(data, sections))
    return paths


def build_sections(data: ReportData) -> list[Section]:
    return [build(data) for build in SECTIONS]


def _meta_line(data: ReportData) -> str:
    return f"Generated {format_value(data.created_at)} from store {data.store_root} by {data.code_version}"


# --- HTML -------------------------------------------------------------------------------------


def render_html(data: ReportData, sections: Sequence[Section]) -> str:
    """The whole page; every text from the store passes through ``html.escape`` here or in the plots."""
    contents = "".join(f'<li><a href="#{s.id}">{escape(s.title)}</a></li>' for s in sections)
    body = "\n".join(_html_section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(data.title)}</title><style>{STYLE}</style></head>\n"
        f"<body><header><h1>{escape(data.title)}</h1>"
        f'<p class="meta">{escape(_meta_line(data))}</p><nav><ol>{contents}</ol></nav></header>\n'
        f"<main>\n{body}\n</main></body></html>\n"
    )


def _html_section(section: Section) -> str:
    blocks = "\n".join(_html_block(block) for block in section.blocks)
    return f'<section id="{section.id}"><h2>{escape(section.title)}</h2>\n{blocks}\n</section>'


def _html_block(block: Block) -> str:
    if isinstance(block, SideBySide):
        return '<div class="side-by-side">' + "".join(_html_block(b) for b in block.blocks) + "</div>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figure):
        return (
            f'<figure id="plot-{block.plot_id}" data-plot="{block.plot_id}">{block.svg}'
            f"<figcaption>{escape(block.caption)}</figcaption></figure>"
        )
    return f'<p class="note {block.kind}" data-note="{block.kind}">{escape(block.text)}</p>'


def _html_table(table: Table) -> str:
    numeric = [_numeric_column([row[i] for row in table.rows]) for i in range(len(table.columns))]
    cell = ('<td class="num">', "<td>")
    rows = "".join(
        "<tr>"
        + "".join(
            f"{cell[0] if num else cell[1]}{escape(format_value(value))}</td>"
            for value, num in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in table.rows
    )
    head = "".join(f"<th>{escape(column)}</th>" for column in table.columns)
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _numeric_column(values: Sequence[object]) -> bool:
    """Right-align a column whose values are all numbers (or missing), so digits line up; a
    key-value table's mixed column stays left-aligned."""
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)


# --- Markdown ---------------------------------------------------------------------------------


def render_markdown(data: ReportData, sections: Sequence[Section]) -> str:
    """Tables and notes of the sections marked ``in_summary``; charts are HTML-only."""
    parts = [f"# {_md_text(data.title)}", "", _md_text(_meta_line(data))]
    for section in sections:
        if section.in_summary:
            parts += ["", f"## {_md_text(section.title)}"]
            parts += [text for block in section.blocks if (text := _md_block(block))]
    return "\n".join(parts) + "\n"


def _md_block(block: Block) -> str:
    if isinstance(block, SideBySide):
        return "\n".join(text for b in block.blocks if (text := _md_block(b)))
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Note):
        prefix = "**Warning:** " if block.kind == "warning" else ""
        return f"\n> {prefix}{_md_text(block.text)}"
    return ""


def _md_table(table: Table) -> str:
    lines = [""]
    if table.caption:
        lines += [f"**{_md_text(table.caption)}**", ""]
    lines.append("| " + " | ".join(_md_text(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    lines += ["| " + " | ".join(_md_text(format_value(v)) for v in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _md_text(text: str) -> str:
    """One line of table-safe text: newlines folded, pipes escaped, and ``&``/``<``/``>`` as
    entities, so model output or an annotator's name cannot become HTML where the Markdown
    is rendered."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(escaped.split()).replace("|", "\\|")
