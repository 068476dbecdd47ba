"""Generated docs stay true: docs/tables.md is what the schemas say today."""

from __future__ import annotations

import os

from touchline import schemas
from touchline.pipelines.docs import EXAMPLES, tables_markdown

from .conftest import repo_root


def test_tables_reference_is_up_to_date():
    path = os.path.join(repo_root(), "docs", "tables.md")
    with open(path, encoding="utf-8") as fh:
        current = fh.read()
    assert current == tables_markdown(), (
        "docs/tables.md is out of date with schemas/: run `make docs` "
        "(python -m touchline.pipelines.docs tables --write) and commit the result")


def test_reference_covers_every_table_and_column():
    text = tables_markdown()
    for name, spec in schemas.table_schemas().items():
        assert f"\n## {name}\n" in text
        for column in spec.columns:
            assert f"| `{column}` |" in text, (name, column)
    assert "_recompute_scope" not in text  # staging-only records are not tables


def test_examples_cover_what_analysts_ask():
    titles = " / ".join(e.title.lower() for e in EXAMPLES)
    for topic in ("score trend per role", "worst journeys", "dead letters by reason"):
        assert topic in titles
