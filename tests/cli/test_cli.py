"""The ``charter`` console script as users run it (subprocesses, real Prefect, real store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.store.store import Store
from tests.conftest import HH_RLHF_SAMPLE, PROJECT_ROOT, run_charter, stored_files

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled samples ingested once through the CLI, as the README's demo does."""
    store = tmp_path_factory.mktemp("cli") / "store"
    result = run_charter("ingest", "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert "ingest complete" in result.stdout
    return store


def test_hh_rlhf_import_twice_then_count(tmp_path: Path) -> None:
    if not HH_RLHF_SAMPLE.exists():
        pytest.skip(f"shared data not present: {HH_RLHF_SAMPLE}")
    store = str(tmp_path / "S")
    for _ in range(2):
        result = run_charter(
            "import-labels", str(HH_RLHF_SAMPLE), "--format", "hh-rlhf", "--skip-invalid", "--store", store
        )
        assert result.returncode == 0, result.stderr
    counted = run_charter(
        "sql", "select count(*) as n from human_labels", "--store", store, "--format", "csv"
    )
    assert counted.returncode == 0, counted.stderr
    # 3 of the sample's 1,000 rows have an empty chosen reply: refused, the rest imported.
    assert counted.stdout.splitlines() == ["n", "997"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("delete from human_labels", "DELETE statements are refused"),
        ("copy human_labels to 'x.csv'", "COPY statements are refused"),
    ],
)
def test_sql_refuses_changes_with_a_clear_message(
    demo_store: Path, tmp_path: Path, query: str, message: str
) -> None:
    before = stored_files(Store(demo_store))
    result = run_charter("sql", query, "--store", str(demo_store), cwd=tmp_path)
    assert result.returncode == 1
    assert "read-only" in result.stderr and message in result.stderr
    assert "Traceback" not in result.stderr
    assert stored_files(Store(demo_store)) == before
    assert not (tmp_path / "x.csv").exists()


def test_sql_formats(demo_store: Path) -> None:
    query = "select annotator, count(*) as n from human_labels group by 1 order by 1"
    as_json = run_charter("sql", query, "--store", str(demo_store), "--format", "json")
    assert json.loads(as_json.stdout) == [
        {"annotator": "ana", "n": 19},
        {"annotator": "bilal", "n": 18},
        {"annotator": "chen", "n": 23},
    ]
    as_table = run_charter("sql", query, "--store", str(demo_store))
    assert "bilal" in as_table.stdout and "3 row(s)" in as_table.stdout


def test_audit_summarises_every_view(demo_store: Path) -> None:
    result = run_charter("audit", "--store", str(demo_store))
    assert result.returncode == 0, result.stderr
    for title in ("Labels by source and labeller", "Coverage ledger", "Cohen's kappa", "Disagreement bench"):
        assert title in result.stdout
    assert "(all)" in result.stdout  # the pooled agreement row


def test_bad_label_file_fails_fast_and_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "p", "response_a": "x", "response_b": "y", "choice": "maybe", "annotator": "a"}\n'
    )
    store = tmp_path / "store"
    result = run_charter("import-labels", str(bad), "--store", str(store))
    assert result.returncode == 1
    assert f"{bad}:1 [choice]" in result.stderr and "not one of a, b, tie" in result.stderr
    assert not store.exists()


def test_validate_names_file_and_line_of_a_yaml_syntax_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nversion: '1'\nprinciples:\n  - id: a\n    title: [unclosed\n")
    result = run_charter(
        "constitution",
        "validate",
        str(broken),
        *map(str, sorted((PROJECT_ROOT / "constitutions").glob("*.yaml"))),
    )
    assert result.returncode == 1
    assert f"{broken}:6" in result.stderr and "YAML syntax error" in result.stderr
    assert "✓" in result.stdout and "healthcare-scheduling" in result.stdout


def test_anthropic_import_writes_a_file_that_validates(cai_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "X.yaml"
    imported = run_charter(
        "constitution",
        "import",
        str(cai_dir / "CritiqueRevisionInstructions.json"),
        "--format",
        "anthropic",
        "-o",
        str(output),
    )
    assert imported.returncode == 0, imported.stderr
    validated = run_charter("constitution", "validate", str(output))
    assert validated.returncode == 0, validated.stderr
    assert "16 principles" in validated.stdout


@pytest.mark.parametrize(
    ("output", "message"),
    [("", "is a directory: give the YAML file to write"), ("missing/X.yaml", "no such directory")],
    ids=["directory", "missing-parent"],
)
def test_anthropic_import_refuses_an_output_it_cannot_write(
    cai_dir: Path, tmp_path: Path, output: str, message: str
) -> None:
    target = tmp_path / output
    imported = run_charter(
        "constitution", "import", str(cai_dir / "CritiqueRevisionInstructions.json"), "-o", str(target)
    )
    assert imported.returncode == 1
    assert message in imported.stderr and "Traceback" not in imported.stderr
    assert sorted(tmp_path.iterdir()) == []  # nothing written


def test_diff_and_show(tmp_path: Path) -> None:
    original = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
    edited = tmp_path / "edited.yaml"
    edited.write_text(
        original.read_text()
        .replace("Never diagnose", "Do not diagnose", 1)
        .replace("id: respectful-tone", "id: courteous-tone")
    )
    diff = run_charter("constitution", "diff", str(original), str(edited))
    assert diff.returncode == 0, diff.stderr
    assert "+ added courteous-tone" in diff.stdout and "- removed respectful-tone" in diff.stdout
    assert "~ changed no-diagnosis: title" in diff.stdout
    show = run_charter("constitution", "show", str(original))
    assert "urgent-escalation" in show.stdout
