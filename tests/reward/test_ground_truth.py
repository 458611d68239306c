"""Ground-truth errors (issue 23): one rule for single and batch calls. A malformed ground truth is the trainer's
data bug: a ``RewardDataError`` naming the row and the field, raised before anything is judged; batch arguments
of different lengths are a clear error; a dataset whose rows use different column spellings works."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from rationalerm.errors import RewardDataAbort
from rationalerm.reward.entry import compute_score, compute_score_batch, get_scorer, reward_func
from rationalerm.reward.reference import RewardDataError, reference

HUMAN = ["Response 1 keeps the order.", "Response 2 loses the order.", "Response 1 is linear."]
GOOD = {"checklist": HUMAN, "label": 1}
SOLUTION = "<checklist>\n" + "\n".join(f"- {x}" for x in HUMAN) + "\n</checklist>\n<label>Response 1</label>"


@pytest.fixture
def config(tmp_path: Path) -> str:
    """A reward YAML of its own, so the test's scorer (and its ``judged`` count) is fresh."""
    path = tmp_path / "reward.yaml"
    path.write_text(yaml.safe_dump({"scoring": {"max_model_items": 5}, "reward": {"combine": "product"}}))
    return str(path)


ROW2 = r"row 2 \(position in this call\): "


@pytest.mark.parametrize(("gt", "extra", "message"), [
    ({"checklist": HUMAN, "label": "C"}, None,
     ROW2 + r"human label 'C' in ground_truth\['label'\] is not response 1"),
    ({"label": 1}, {"index": 42},
     r"row 42 \(extra_info\['index'\]\): no human checklist \(a non-empty list of strings under 'checklist'"),
    ({"checklist": [1, 2], "label": 1}, None, ROW2 + r"ground_truth\['checklist'\] item 0 is int, not text"),
    ({"human-checklist": "one string", "label": 1}, None,
     ROW2 + r"ground_truth\['human-checklist'\] is a str, not a list of strings"),
    ('{"checklist": [', None, ROW2 + r"ground_truth is not valid JSON"),
    ({"checklist": HUMAN}, None, ROW2 + r"no human label \('label' in ground_truth or extra_info\)"),
])
def test_a_bad_ground_truth_names_its_row_and_field_before_any_judging(config: str, gt: object, extra: object,
                                                                        message: str) -> None:
    with pytest.raises(RewardDataError, match=message):
        compute_score_batch(["d"] * 3, [SOLUTION] * 3, [GOOD, GOOD, gt], [None, None, extra], config=config)
    assert get_scorer(config).judged == 0  # the good rows before it were not judged either


def test_single_calls_follow_the_same_rule(config: str) -> None:
    with pytest.raises(RewardDataError, match=r"row 17 \(extra_info\['index'\]\): human label 'C' in ground_truth"):
        compute_score("d", SOLUTION, {"checklist": HUMAN, "label": "C"}, {"index": 17}, config=config)
    with pytest.raises(RewardDataError, match=r"row 0 \(position in this call\): ground_truth is not valid JSON"):
        compute_score("d", SOLUTION, '{"checklist": [', None, config=config)
    prompt = "<|im_start|>user\nCompare.<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(RewardDataAbort, match=r"row 1 \(position in this call\): no human label") as aborted:
        reward_func([prompt + SOLUTION] * 2, [prompt] * 2, [json.dumps(GOOD), json.dumps({"checklist": HUMAN})],
                    config=config)
    assert isinstance(aborted.value.__cause__, RewardDataError)
    with pytest.raises(RewardDataError, match=r"row 0 \(position in this call\): no human checklist"):
        reference({"label": 1})
    assert get_scorer(config).judged == 0


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: compute_score_batch(["d"] * 3, [SOLUTION] * 3, [GOOD] * 2, config=c),
     r"compute_score_batch: arguments of different lengths \(data_sources 3, solution_strs 3, ground_truths 2\)"),
    (lambda c: compute_score_batch(["d"] * 3, [SOLUTION] * 3, [GOOD] * 3, [None] * 2, config=c),
     r"\(data_sources 3, solution_strs 3, ground_truths 3, extra_infos 2\)"),
    (lambda c: reward_func(["q"] * 2, ["q"], [json.dumps(GOOD)] * 2, config=c),
     r"reward_func: arguments of different lengths \(queries 2, prompts 1, labels 2\)"),
])
def test_batch_arguments_of_different_lengths_are_a_clear_error(config: str, call, message: str) -> None:
    # reward_func raises RewardDataAbort (its cause the RewardDataError), past OpenRLHF's catch-all
    with pytest.raises((RewardDataError, RewardDataAbort), match=message):
        call(config)


def test_a_dataset_mixing_checklist_columns_scores_its_good_rows(config: str, tmp_path: Path) -> None:
    """Rows spelling the columns differently, as a Parquet file unifies them: absent keys come back as None."""
    rows = [
        {"ground_truth": {"checklist": HUMAN, "label": 1}, "extra_info": {"index": 0}},
        {"ground_truth": {"human-checklist": HUMAN, "human-label": 1}, "extra_info": {"index": 1}},
        {"ground_truth": {"label": 1}, "extra_info": {"index": 2, "human-checklist": HUMAN}},
        {"ground_truth": {"label": 1}, "extra_info": {"index": 3, "checklist": HUMAN}},
    ]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    back = pq.read_table(path).to_pylist()
    assert back[0]["ground_truth"]["human-checklist"] is None and back[2]["extra_info"]["checklist"] is None
    gts, extras = [r["ground_truth"] for r in back], [r["extra_info"] for r in back]
    batch = compute_score_batch(["d"] * 4, [SOLUTION] * 4, gts, extras, config=config)
    single = [compute_score("d", SOLUTION, g, e, config=config) for g, e in zip(gts, extras)]
    assert batch == single and [r["score"] for r in batch] == pytest.approx([1.0] * 4)
    assert reference({"checklist": None, "human-checklist": HUMAN, "label": float("nan"), "human-label": 2}).label == 2


def test_a_query_not_starting_with_its_prompt_never_scores_the_prompts_own_example(config: str) -> None:
    """The prompt shows the answer format (a perfect answer, as an example); decoding changed the prompt's end, so
    neither the prompt nor its end is found in the query: the response starts after the assistant-turn marker, and
    a response with no answer scores 0 instead of the example's 1."""
    prompt = f"<|im_start|>user\nAnswer like this:\n{SOLUTION}<|im_end|>\n<|im_start|>assistant\n"
    decoded = prompt.replace("<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>\n <|im_start|>assistant \n")
    out = reward_func([decoded + "I do not know.<|im_end|>", decoded + SOLUTION + "<|im_end|>"], [prompt] * 2,
                      [json.dumps(GOOD)] * 2, config=config)
    assert out["rewards"].tolist() == pytest.approx([0.0, 1.0])
