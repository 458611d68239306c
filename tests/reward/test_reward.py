"""The hybrid reward (rationalerm.reward) with the real packaged embedding judge: combine rules, parsing, verl's
and OpenRLHF's signatures, batch = one by one, and the pair cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationalerm.config import RunConfig
from rationalerm.errors import ConfigError, RationaleRMError
from rationalerm.judges.cache import JudgeCache
from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig
from rationalerm.reward.entry import compute_score, compute_score_batch, reward_func
from rationalerm.reward.parse import ParseFailure, parse_output
from rationalerm.reward.reference import Reference, RewardDataError, reference
from rationalerm.reward.scorer import RewardScorer, RewardSettings, Weights, combine, load_reward_config
from tests.helpers.judges import ScriptedJudge
from tests.helpers.paths import ROOT

HUMAN = [
    "Response 1 preserves the original order using a seen set.",
    "Response 2 uses set(), which loses the original order the user asked for.",
    "Response 1 explains the O(n) time complexity.",
]
UNRELATED = ["The weather in Paris is mild in spring.", "Bananas are rich in potassium."]
REF = Reference(tuple(HUMAN), 1)


def output(items: list[str], label: str) -> str:
    lines = "\n".join(f"{k}. {item}" for k, item in enumerate(items, 1))
    return f"<think>draft reasoning</think>\n<checklist>\n{lines}\n</checklist>\n<label>{label}</label>"


@pytest.fixture(scope="module")
def judge() -> EmbeddingJudge:
    return EmbeddingJudge(EmbeddingJudgeConfig())


def scorer(judge: EmbeddingJudge, **settings: object) -> RewardScorer:
    return RewardScorer(settings=RewardSettings(**settings), judge=judge)


@pytest.mark.parametrize(("how", "right_high", "right_low", "wrong_high"), [
    ("product", 1.0, 0.0, 0.0),
    ("sum", 1.0, 0.5, 0.5),
    ("outcome_gated", 1.0, 0.5, 0.0),
])
def test_combine_rules_on_constructed_cases(judge: EmbeddingJudge, how: str, right_high: float, right_low: float,
                                            wrong_high: float) -> None:
    s = scorer(judge, combine=how)
    high, low, wrong = s.score([output(HUMAN, "Response 1"), output(UNRELATED, "A"), output(HUMAN, "[[B]]")],
                               [REF] * 3)
    assert high.ap == pytest.approx(1.0, abs=1e-5) and high.correct and high.parsed and not high.reason
    assert low.ap == 0.0 and low.correct
    assert wrong.ap == pytest.approx(1.0, abs=1e-5) and not wrong.correct
    assert (high.score, low.score, wrong.score) == pytest.approx((right_high, right_low, wrong_high), abs=1e-5)


def test_combine_arithmetic() -> None:
    assert combine(0.6, True) == pytest.approx(0.6) and combine(0.6, False) == 0.0
    assert combine(0.6, False, "sum", Weights(ap=0.3, outcome=0.7)) == pytest.approx(0.18)
    assert combine(0.0, True, "outcome_gated", gate_base=0.2) == pytest.approx(0.2)
    assert combine(0.5, True, "outcome_gated", gate_base=0.2) == pytest.approx(0.6)


def test_ap_rewards_putting_matching_reasons_first(judge: EmbeddingJudge) -> None:
    s = scorer(judge)
    first, last = s.score([output(HUMAN + UNRELATED, "1"), output(UNRELATED + HUMAN, "1")], [REF, REF])
    assert first.ap == pytest.approx(1.0, abs=1e-5)
    assert last.ap < 0.7 and last.score == pytest.approx(last.ap)  # P@k is diluted by the two misses in front


@pytest.mark.parametrize(("text", "reason"), [
    ("Response 1 is better.", "no <checklist> block"),
    ("<checklist>\n- a point\n</checklist>", "no <label> block"),
    ("<checklist>\n- a point\n<label>1</label>", "<checklist> block is not closed"),
    ("<checklist>x</checklist><label>1</label><label>2</label>", "more than one <label> block"),
    ("<checklist>x</checklist><label>Response C</label>", "label 'Response C' is not response 1"),
    ("<checklist>x</checklist><label> </label>", "no label"),
    ('{"checklist": "one string", "label": 1}', "'checklist' must be a list of strings"),
    ('{"checklist": ["a"], "label": 1', "invalid JSON object"),
    ("", "no <checklist> block"),
])
def test_unparseable_outputs_score_zero_with_a_reason(judge: EmbeddingJudge, text: str, reason: str) -> None:
    (r,) = scorer(judge).score([text], [REF])
    assert r.score == 0.0 and not r.parsed and r.reason.startswith(reason)


def test_default_format_variants() -> None:
    p = parse_output("<think>maybe <label>2</label></think><checklist>\n\n1) first\n* second\n\u2022 third\n  \n"
                     "</checklist>\n<label>**Response B**</label>")
    assert p.checklist == ("first", "second", "third") and p.label == "**Response B**"
    j = parse_output('```json\n{"checklist": [" a ", "", "b"], "label": "tie"}\n```')
    assert j.checklist == ("a", "b") and j.label == "tie"
    empty = parse_output("<checklist></checklist><label>A</label>")
    assert empty.checklist == ()


def test_user_regex_and_function_parsers(judge: EmbeddingJudge) -> None:
    rx = RewardScorer(settings=RewardSettings(parser_regex=r"Reasons:\n(?P<checklist>.*?)\nVerdict: (?P<label>\S+)"),
                      judge=judge)
    (r,) = rx.score(["Reasons:\n- " + "\n- ".join(HUMAN) + "\nVerdict: A"], [REF])
    assert r.parsed and r.correct and r.ap == pytest.approx(1.0, abs=1e-5)

    def fn(text: str) -> tuple[list[str], str]:
        head, label = text.rsplit("||", 1)
        return head.split("|"), label

    f = RewardScorer(parser=fn, judge=judge)
    good, bad = f.score(["|".join(HUMAN) + "||1", "no separator"], [REF, REF])
    assert good.score == pytest.approx(1.0, abs=1e-5)
    assert bad.score == 0.0 and bad.reason.startswith("parser raised ValueError")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(list("<>/{}[]\"\n -1ABtie:,") + ["<checklist>", "</checklist>", "<label>",
                                                                     "</label>", "<think>", "</think>", "x", "é"]),
                max_size=30).map("".join))
def test_any_text_gives_a_reward_never_an_exception(judge: EmbeddingJudge, text: str) -> None:
    (r,) = scorer(judge).score([text], [REF])
    assert 0.0 <= r.score <= 1.0
    assert r.parsed == (r.reason == "") or r.reason.startswith("judge")
    try:
        parse_output(text)
    except ParseFailure:
        pass


_ITEM = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40).filter(
    lambda s: s.strip() and "<" not in s and s.lstrip()[:1] not in "-*\u2022" and not s.lstrip()[:1].isdigit())


@settings(max_examples=100, deadline=None)
@given(st.lists(_ITEM, max_size=6), st.sampled_from(["1", "B", "Response 2", "[[A]]", "tie"]))
def test_default_format_round_trips(items: list[str], label: str) -> None:
    p = parse_output(output(items, label))
    assert p.checklist == tuple(x.strip() for x in items) and p.label == label


def test_verl_signature_with_realistic_ground_truth(tmp_path: Path) -> None:
    cfg = tmp_path / "reward.yaml"
    cfg.write_text(yaml.safe_dump({"judge": {"type": "embedding", "threshold": 0.5},
                                   "scoring": {"max_model_items": 5},
                                   "reward": {"combine": "product", "cache": str(tmp_path / "pairs.sqlite")}}))
    # As a verl parquet row holds it: reward_model.ground_truth and extra_info (lists may come back as arrays).
    gt_dict = {"checklist": np.array(HUMAN, dtype=object), "label": 1}
    gt_json = json.dumps({"human-checklist": HUMAN, "label": "Response 1"})
    solution = output(HUMAN[:2] + UNRELATED[:1], "Response A")
    a = compute_score("rationalerm/helpsteer", solution, gt_dict, {"index": 3}, config=str(cfg))
    b = compute_score("rationalerm/helpsteer", solution, gt_json, None, config=str(cfg))
    c = compute_score("rationalerm/helpsteer", solution, "A", {"human-checklist": HUMAN}, config=str(cfg))
    assert a == b == c
    assert set(a) == {"score", "ap", "correct", "parsed", "n_items", "reason"} and isinstance(a["score"], float)
    assert a["correct"] == 1.0 and a["n_items"] == 3 and 0.6 < a["score"] < 0.7  # (1/1 + 2/2) / 3 = 0.667
    batch = compute_score_batch(["d"] * 3, [solution, "garbage", output(HUMAN, "2")], [gt_dict, gt_json, gt_json],
                                [None, None, None], config=str(cfg))
    assert batch[0] == a and batch[1]["score"] == 0.0 and batch[1]["reason"] and batch[2]["score"] == 0.0
    with pytest.raises(RewardDataError, match="no human checklist"):
        compute_score("d", solution, {"label": 1}, None, config=str(cfg))
    with pytest.raises(RewardDataError, match="human label 'C'"):
        reference({"checklist": HUMAN, "label": "C"})


def test_openrlhf_reward_func(tmp_path: Path) -> None:
    cfg = tmp_path / "reward.yaml"
    cfg.write_text(yaml.safe_dump({"reward": {"combine": "sum"}}))
    prompt = "<|im_start|>user\nCompare the two responses.<|im_end|>\n<|im_start|>assistant\n"
    label = json.dumps({"checklist": HUMAN, "label": 1})
    out = reward_func([prompt + output(HUMAN, "1"), prompt + "no format"], [prompt, prompt], [label, label],
                      config=str(cfg))
    assert out["rewards"].tolist() == pytest.approx([1.0, 0.0], abs=1e-5)
    assert out["extra_logs"]["parsed"].tolist() == [1.0, 0.0]


def test_batch_equals_one_by_one(judge: EmbeddingJudge) -> None:
    rng = np.random.default_rng(0)
    pool = HUMAN + UNRELATED + ["Response 2 keeps order too.", "Response 1 is O(n^2).", "Response 1 has a docstring."]
    outs = [output(list(rng.choice(pool, size=int(rng.integers(0, 6)), replace=False)), str(rng.choice(["1", "2"])))
            for _ in range(24)] + ["unparseable"]
    refs = [REF if k % 2 else Reference(tuple(HUMAN[:2]), 2) for k in range(len(outs))]
    batch = RewardScorer(judge=EmbeddingJudge(EmbeddingJudgeConfig())).score(outs, refs)
    single = RewardScorer(judge=EmbeddingJudge(EmbeddingJudgeConfig()))
    one = [single.score([o], [r])[0] for o, r in zip(outs, refs)]
    for x, y in zip(batch, one):
        assert (x.parsed, x.correct, x.reason, x.checklist) == (y.parsed, y.correct, y.reason, y.checklist)
        assert x.score == pytest.approx(y.score, abs=1e-6) and x.ap == pytest.approx(y.ap, abs=1e-6)


def test_pairs_are_judged_once_across_calls_and_processes(judge: EmbeddingJudge, tmp_path: Path) -> None:
    cache = str(tmp_path / "pairs.sqlite")
    s = RewardScorer(settings=RewardSettings(cache=cache), judge=judge)
    first = s.score([output(HUMAN[:2], "1"), output(HUMAN[:2] + UNRELATED, "1")], [REF, REF])
    assert s.judged == 3 * 4  # distinct (human, policy) pairs: 3 human items x 4 distinct policy items
    again = s.score([output(UNRELATED + HUMAN[:2], "2")], [REF])
    assert s.judged == 12 and again[0].score == 0.0
    fresh = RewardScorer(settings=RewardSettings(cache=cache), judge=judge)  # e.g. another trainer worker
    assert fresh.score([output(HUMAN[:2], "1")], [REF]) == first[:1] and fresh.judged == 0


def test_memo_is_bounded_for_long_runs() -> None:
    judge = EmbeddingJudge(EmbeddingJudgeConfig())
    s = RewardScorer(settings=RewardSettings(memo_pairs=10), judge=judge)
    first = s.score([output(HUMAN[:2], "1")], [REF])  # 6 pairs: kept
    assert len(s.memo) == 6 and judge.embedder._memo
    second = s.score([output(UNRELATED, "1")], [REF])  # 12 > 10: memo and embeddings dropped
    assert not s.memo and not judge.embedder._memo and second[0].score == 0.0
    assert s.score([output(HUMAN[:2], "1")], [REF]) == first and s.judged == 18  # judged again, same reward


def test_shipped_reward_config_loads() -> None:
    cfg, settings = load_reward_config(ROOT / "examples" / "reward.yaml")
    assert cfg.judge.type == "embedding" and cfg.scoring.max_model_items == 5 and settings.combine == "product"


def test_trainers_can_load_the_entry_file_by_path(tmp_path: Path) -> None:
    """As verl and OpenRLHF do: execute the file under another module name, not registered in sys.modules."""
    import importlib.util

    import rationalerm.reward_entry

    spec = importlib.util.spec_from_file_location("custom_module", rationalerm.reward_entry.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gt = json.dumps({"checklist": HUMAN, "label": 1})
    assert module.compute_score("d", output(HUMAN, "1"), gt)["score"] == pytest.approx(1.0, abs=1e-5)
    assert module.compute_score_batch(["d"], [output(HUMAN, "2")], [gt])[0]["correct"] == 0.0
    rewards = module.reward_func(["P" + output(HUMAN, "1")], ["P"], [gt])["rewards"]
    assert rewards.tolist() == pytest.approx([1.0], abs=1e-5)


def test_failed_pairs_earn_zero_are_never_cached_and_are_asked_again(tmp_path: Path) -> None:
    """The reward judges through the judge stage's loop: a pair without an answer fails its output (reward 0 and
    the reason), is not cached nor memoised, and the next call asks exactly it again."""
    cache = str(tmp_path / "pairs.sqlite")
    judge = ScriptedJudge(fail={(HUMAN[0], HUMAN[0])})
    s = RewardScorer(settings=RewardSettings(cache=cache), judge=judge)
    bad, unaffected = s.score([output(HUMAN, "1"), output(HUMAN[1:], "1")], [REF, REF])
    assert (bad.score, bad.parsed, bad.reason) == (0.0, True, "judge failed (server error)")
    assert unaffected.score > 0 and not unaffected.reason
    assert s.judged == 9 and (HUMAN[0], HUMAN[0]) not in s.memo and len(s.memo) == 8
    assert JudgeCache(cache, judge.fingerprint()).count() == 8
    judge.fail.clear()
    fresh = RewardScorer(settings=RewardSettings(cache=cache), judge=judge)
    (good,) = fresh.score([output(HUMAN, "1")], [REF])
    assert fresh.judged == 1 and judge.calls[-1] == [(HUMAN[0], HUMAN[0])] and good.score == pytest.approx(1.0)


def test_the_reward_judges_in_the_run_configs_chunks() -> None:
    judge = ScriptedJudge()
    s = RewardScorer(RunConfig(chunk_size=4), judge=judge)
    (r,) = s.score([output(HUMAN, "1")], [REF])
    assert [len(c) for c in judge.calls] == [4, 4, 1] and r.score == pytest.approx(1.0)
    assert judge.prepared == [list(dict.fromkeys(HUMAN))]  # the batch's texts at once, as a run does


def test_a_listwise_judge_is_refused() -> None:
    class Lists:
        kind = "listwise"

    with pytest.raises(ConfigError, match="pairwise judge"):
        RewardScorer(judge=Lists())  # type: ignore[arg-type]


def test_reward_errors_are_rationalerm_errors_that_stay_value_errors() -> None:
    for cls in (RewardDataError, ParseFailure):
        assert issubclass(cls, RationaleRMError) and issubclass(cls, ValueError)
    with pytest.raises(RationaleRMError, match="ground_truth is not valid JSON"):
        reference('{"checklist": [')
    with pytest.raises(ValueError, match="no human label"):
        reference({"checklist": HUMAN})


def test_the_reward_package_keeps_its_names() -> None:
    import rationalerm
    import rationalerm.reward
    import rationalerm.reward_entry

    assert rationalerm.reward.__all__ == [
        "CONFIG_ENV", "ParseFailure", "Parsed", "Reference", "RewardDataError", "RewardResult", "RewardScorer",
        "RewardSettings", "combine", "compute_score", "compute_score_batch", "get_scorer", "load_reward_config",
        "parse_output", "reference", "regex_parser", "reward_func", "split_items", "trl_reward", "trl_reward_async",
    ]
    assert all(hasattr(rationalerm.reward, name) for name in rationalerm.reward.__all__)
    for name in ("compute_score", "compute_score_batch", "reward_func"):
        entry = getattr(rationalerm.reward_entry, name)
        assert entry is getattr(rationalerm, name) is getattr(rationalerm.reward, name)
    for name in ("trl_reward", "trl_reward_async"):
        assert getattr(rationalerm.reward_entry, name) is getattr(rationalerm.reward, name)
    assert rationalerm.RewardScorer is RewardScorer and rationalerm.reward.CONFIG_ENV == "RATIONALERM_REWARD_CONFIG"


@pytest.mark.parametrize(("text", "message"), [
    (None, "no such config file"),
    ("scoring: {}\njudge: [unclosed\n", ":3: not valid YAML"),
    ("- a list\n", "top level must be a mapping"),
    ("reward:\n  combin: sum\n", "(reward): invalid config"),
    ("judje: {}\n", "invalid config"),
])
def test_reward_config_errors_name_the_file(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "reward.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}")) as err:
        load_reward_config(path)
    assert message in str(err.value)


def test_a_wrong_reward_cache_is_refused_before_the_judge_is_built(tmp_path: Path) -> None:
    """``reward.cache`` naming a file that is not a cache is an ``OutputError`` before the judge is built: here an
    LLM judge whose model folder holds no model would fail to load, and the cache's error comes first."""
    from rationalerm.config import load_config
    from rationalerm.errors import OutputError

    data = tmp_path / "data.jsonl"
    data.write_text('{"a": 1}\n')
    (tmp_path / "model").mkdir()
    cfg = load_config(None, {"judge.type": "llm", "judge.model": str(tmp_path / "model"),
                             "judge.backend": {"type": "transformers", "device": "cpu"}})
    with pytest.raises(OutputError, match="not a cache"):
        RewardScorer(cfg, RewardSettings(cache=str(data)))
    assert data.read_text() == '{"a": 1}\n'
