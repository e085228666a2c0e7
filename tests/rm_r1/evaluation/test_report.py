"""The printed table and the PARTIAL note."""

from __future__ import annotations

from rm_r1.evaluation.report import markdown_table, partial_note


def test_markdown_table_rmbench_domains_and_missing():
    scores = {"chat": {"total": 0.5}, "math": {"total": 0.25}, "easy": 0.9, "normal": 0.5, "hard": 0.1, "total": 0.5}
    table = markdown_table("rmbench", {"greedy": {"scores": scores, "accuracy": 0.625}})
    header = "| run | chat | math | code | safety | easy | normal | hard | total | pair accuracy |"
    assert table.splitlines()[0] == header
    assert table.splitlines()[2] == "| greedy | 50.0 | 25.0 | n/a | n/a | 90.0 | 50.0 | 10.0 | 50.0 | 62.5 |"


def test_partial_benchmarks_get_a_note_naming_what_is_missing():
    rmbench = {"missing_domains": ["code", "safety"]}
    assert partial_note("rmbench", rmbench).startswith("PARTIAL rmbench: the data lacks 2 domains (code, safety);")
    assert partial_note("rmbench", {"missing_domains": []}) is None
    rb = {"missing_sections": ["Safety"], "missing_subsets": ["donotanswer"]}
    assert "lacks 1 sections (Safety); 1 subsets (donotanswer)" in partial_note("rewardbench", rb)
    assert "2 parts (bon_helpfulness, bon_harmlessness)" in partial_note(
        "rmb", {"missing_parts": ["bon_helpfulness", "bon_harmlessness"]}
    )
