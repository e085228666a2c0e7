"""The printed table and the PARTIAL note."""

from __future__ import annotations

from rm_r1.evaluation.report import category_table, markdown_table, partial_note


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


def test_rewardbench_without_a_section_says_whether_and_what_it_averaged():
    lacking = {"missing_sections": ["Safety"], "missing_subsets": [], "score": None, "averaged_sections": []}
    assert partial_note("rewardbench", lacking).endswith(
        "no overall score (pass --allow-partial to average the sections present)."
    )
    table = markdown_table("rewardbench", {"greedy": {"scores": {"Chat": 1.0, **lacking}, "accuracy": 1.0}})
    assert table.splitlines()[2] == "| greedy | 100.0 | n/a | n/a | n/a | n/a | 100.0 |"
    averaged = {**lacking, "score": 0.8, "averaged_sections": ["Chat", "Chat Hard", "Reasoning"]}
    note = partial_note("rewardbench", averaged)
    assert "--allow-partial: the score averages only Chat, Chat Hard, Reasoning" in note


def test_rmb_category_table():
    categories = {
        "BoN_set/Harmlessness/S2": {"accuracy": 0.5, "count": 2},
        "Pairwise_set/Harmlessness/S1": {"accuracy": 1.0, "count": 3},
    }
    results = {"greedy": {"scores": {"categories": categories}, "accuracy": 0.8}}
    assert category_table(results).splitlines() == [
        "| category | greedy | count |",
        "|---|---|---|",
        "| BoN_set/Harmlessness/S2 | 50.0 | 2 |",
        "| Pairwise_set/Harmlessness/S1 | 100.0 | 3 |",
    ]
    assert category_table({"greedy": {"scores": {"score": 0.5}, "accuracy": 0.5}}) is None
