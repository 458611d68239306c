"""The embedding judge with the real packaged all-MiniLM-L6-v2."""

import numpy as np
import pytest

from rationalerm.inputs.grids import Grid
from rationalerm.inputs.load import Sample
from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig, cosine_to_score
from rationalerm.judges.prefilter import Prefilter, PrefilterConfig


@pytest.fixture(scope="module")
def judge() -> EmbeddingJudge:
    return EmbeddingJudge(EmbeddingJudgeConfig())


def test_identical_items_score_one(judge: EmbeddingJudge) -> None:
    text = "Response 1 correctly factors 221 as 13 x 17."
    assert judge.score_pairs([(text, text)])[0].score == pytest.approx(1.0, abs=1e-5)


def test_paraphrase_beats_unrelated(judge: EmbeddingJudge) -> None:
    human = "Response 2 refuses to forge a medical document."
    para = "Response B declines to create a fraudulent doctor's note."
    other = "Response 1 recommends the chunksize parameter of read_csv."
    p, u = judge.score_pairs([(human, para), (human, other)])
    assert p.detail["cosine"] > u.detail["cosine"] + 0.2
    assert p.score > u.score and u.score == 0.0


def test_each_text_embedded_once(judge: EmbeddingJudge) -> None:
    e = judge.embedder
    before = len(e._memo)
    judge.score_pairs([("alpha beta", "gamma delta"), ("alpha beta", "gamma delta"), ("gamma delta", "alpha beta")])
    assert len(e._memo) == before + 2
    assert np.allclose(np.linalg.norm(judge.embed(["alpha beta"]), axis=1), 1.0, atol=1e-5)


def test_mapping_rule() -> None:
    assert cosine_to_score(0.75, 0.5).tolist() == pytest.approx(0.5)
    assert cosine_to_score(0.4, 0.5).tolist() == 0.0
    assert cosine_to_score([0.49, 0.5], 0.5, "binary").tolist() == [0.0, 1.0]


def test_prefilter_takes_its_own_section() -> None:
    """The prefilter needs only its ``prefilter:`` section (defined beside it, below the config layer) and a
    device; ``rationalerm.config.PrefilterConfig`` is the same class."""
    import rationalerm.config

    assert rationalerm.config.PrefilterConfig is PrefilterConfig
    assert rationalerm.config.RunConfig().prefilter == PrefilterConfig()
    with pytest.raises(ValueError, match="top_k and/or min_cosine"):
        PrefilterConfig(enabled=True, top_k=None)
    pf = Prefilter(PrefilterConfig(enabled=True, top_k=1), device=None)
    human = ["Response 2 refuses to forge a medical document.", "Response 1 explains the O(n) time."]
    items = ["Response 1 recommends the chunksize parameter.", "Response B declines to create a fake doctor's note.",
             "Response 1 runs in linear time."]
    unit = Grid(Sample(id="s", human=human, models={"m": items}), "m")
    pf.prepare([*human, *items])
    mask = pf.mask(unit)
    assert mask.tolist() == [[False, True, False], [False, False, True]]
    pf.tally([unit], [mask])
    assert pf.stats.as_dict()["pairs_kept"] == 2 and pf.stats.judge_calls_saved == 4
