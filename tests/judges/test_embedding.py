"""The embedding judge with the real packaged all-MiniLM-L6-v2."""

import numpy as np
import pytest

from rationalerm.judges.embedding import EmbeddingJudge, EmbeddingJudgeConfig, cosine_to_score


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
