"""A corpus of bad tenant files: each is rejected with its own message, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from tests.conftest import CANARY_PASSWORD, Invoke, objects_in, tenant_yaml

CORPUS = Path(__file__).parent / "corpus" / "bad"


def _cases() -> list[tuple[str, str]]:
    lines = (CORPUS / "expected.tsv").read_text(encoding="utf-8").splitlines()
    cases = [tuple(line.split("\t", 1)) for line in lines if line and not line.startswith("#")]
    return [(name, expected) for name, expected in cases]


CASES = _cases()


def _reported(stderr: str, path: str, expected: str) -> bool:
    """One line names the file, then the field (when there is one) and the rule."""
    return any(
        line.strip().startswith(f"{path}: ") and expected in line for line in stderr.splitlines()
    )


def test_corpus_is_complete() -> None:
    files = sorted(p.name for p in CORPUS.glob("*.yaml"))
    assert files == sorted(name for name, _ in CASES)
    assert len(files) >= 40


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_add_rejects_bad_file_and_writes_nothing(
    s3: S3Client, run: Invoke, name: str, expected: str
) -> None:
    assert run("tenant", "add", "existing", "-f", "-", input=tenant_yaml("existing")).exit_code == 0
    before = objects_in(s3)
    path = str(CORPUS / name)

    result = run("tenant", "add", "corpus", "-f", path)

    assert result.exit_code == 2, result.output
    assert _reported(result.stderr, path, expected)
    assert "nothing was written" in result.stderr
    assert CANARY_PASSWORD not in result.output
    assert objects_in(s3) == before


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_validate_reports_the_same_problem_offline(run: Invoke, name: str, expected: str) -> None:
    path = str(CORPUS / name)
    result = run("tenant", "validate", path, bucket=None)
    assert result.exit_code == 2
    assert _reported(result.stderr, path, expected)
    assert CANARY_PASSWORD not in result.output


def test_validate_json_lists_every_problem_of_the_corpus(run: Invoke) -> None:
    result = run("--output", "json", "tenant", "validate", str(CORPUS), bucket=None)
    assert result.exit_code == 2
    data = result.json()
    assert data["valid"] is False
    sources = {Path(p["source"]).name for p in data["problems"]}
    assert sources == {name for name, _ in CASES}
    assert CANARY_PASSWORD not in result.stdout
