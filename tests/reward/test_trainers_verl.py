"""verl 0.9 runs our reward through its own code: the trainer config composed from verl's own YAML (Hydra, as
``main_ppo`` does), ``get_custom_reward_fn`` loading ``rationalerm/reward_entry.py`` by path, the reward loop's
``NaiveRewardManager`` / ``RewardLoopWorker`` calling it once per sample from executor threads, and
``RewardLoopManager`` spreading a batch over 2 ``RewardLoopWorker`` Ray actors on a local cluster (127.0.0.1).
The rewards equal a direct call's; a bad ground truth stops the step with an error naming it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import verl
from omegaconf import DictConfig
from verl import DataProto
from verl.experimental.reward_loop.reward_loop import RewardLoopManager, RewardLoopWorker
from verl.trainer.ppo.reward import get_custom_reward_fn

from rationalerm.errors import RewardDataError
from rationalerm.reward.entry import compute_score
from tests.helpers.paths import ROOT
from tests.helpers.trainers import ANSWERS, BAD_GROUND_TRUTH, EXPECTED, GROUND_TRUTH, PROMPT

ENTRY = ROOT / "rationalerm" / "reward_entry.py"
NAMES = list(ANSWERS)


def verl_config(*overrides: str) -> DictConfig:
    """verl's PPO trainer config, composed from its own YAML files with command-line overrides."""
    from hydra import compose, initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose("ppo_trainer", overrides=list(overrides))


@pytest.fixture(scope="module")
def reward_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("verl") / "reward.yaml"
    path.write_text("judge:\n  type: embedding\nreward:\n  combine: product\n")
    return path


@pytest.fixture(scope="module")
def config(reward_yaml: Path, tiny_qwen: Path) -> DictConfig:
    """The README's launch line for verl, as overrides."""
    return verl_config(f"reward.custom_reward_function.path={ENTRY}",
                       "reward.custom_reward_function.name=compute_score",
                       f"+reward.custom_reward_function.reward_kwargs.config={reward_yaml}",
                       "reward.num_workers=2", f"actor_rollout_ref.model.path={tiny_qwen}")


def rollout_batch(tokenizer: Any, answers: list[str], ground_truths: list[Any]) -> DataProto:
    """A rollout batch as verl's trainer hands it to the reward: left-padded prompts, right-padded responses that
    end with the EOS token, and the dataset's ``data_source`` / ``reward_model.ground_truth`` / ``extra_info``."""
    import torch

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], tokenize=False,
                                           add_generation_prompt=True)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r_ids = [tokenizer(a, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for a in answers]
    width = max(map(len, r_ids)) + 3
    pad = tokenizer.pad_token_id
    prompts = torch.tensor([p_ids] * len(answers))
    responses = torch.tensor([r + [pad] * (width - len(r)) for r in r_ids])
    mask = torch.tensor([[1] * len(p_ids) + [1] * len(r) + [0] * (width - len(r)) for r in r_ids])
    rows = len(answers)
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask,
                 "input_ids": torch.cat([prompts, responses], dim=1)},
        non_tensors={"data_source": np.array(["rationale"] * rows, dtype=object),
                     "reward_model": np.array([{"ground_truth": g, "style": "rule"} for g in ground_truths]),
                     "extra_info": np.array([{"index": k} for k in range(rows)])})


def direct(name: str) -> dict[str, Any]:
    return compute_score("rationale", ANSWERS[name], GROUND_TRUTH)


def test_verl_loads_the_entry_through_its_own_loader(config: DictConfig, reward_yaml: Path) -> None:
    fn = get_custom_reward_fn(config)
    assert fn is not None
    for name in NAMES:
        got = fn(data_source="rationale", solution_str=ANSWERS[name], ground_truth=GROUND_TRUTH, extra_info={})
        assert got == direct(name)
        assert (got["score"], got["ap"]) == pytest.approx(EXPECTED[name], abs=1e-5)


def test_the_pre_0_8_spelling_is_ignored_by_verl_0_9(tiny_qwen: Path) -> None:
    """Why the README changed: the top-level keys still compose, but verl 0.9 reads ``reward.*`` only."""
    legacy = verl_config(f"custom_reward_function.path={ENTRY}", "custom_reward_function.name=compute_score",
                         f"actor_rollout_ref.model.path={tiny_qwen}")
    assert get_custom_reward_fn(legacy) is None


def test_reward_loop_worker_calls_it_per_sample_in_threads(config: DictConfig) -> None:
    worker = RewardLoopWorker(config)
    assert type(worker.reward_manager).__name__ == "NaiveRewardManager"
    batch = rollout_batch(worker.input_tokenizer, [ANSWERS[n] for n in NAMES] * 2,
                          [GROUND_TRUTH, *[dict(GROUND_TRUTH)] * (2 * len(NAMES) - 1)])
    out = worker.loop.run_until_complete(worker.compute_score_batch(batch))
    for name, got in zip(NAMES * 2, out):
        assert got["reward_score"] == pytest.approx(direct(name)["score"], abs=1e-6)
        assert got["reward_extra_info"]["ap"] == pytest.approx(EXPECTED[name][1], abs=1e-5)

    bad = rollout_batch(worker.input_tokenizer, [ANSWERS["perfect"]] * 2, [GROUND_TRUTH, BAD_GROUND_TRUTH])
    with pytest.raises(RewardDataError, match="no human checklist"):
        worker.loop.run_until_complete(worker.compute_score_batch(bad))


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local 2-CPU Ray cluster on 127.0.0.1; its workers import this checkout's rationalerm."""
    import ray

    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    try:
        yield
    finally:
        ray.shutdown()


def test_reward_loop_manager_on_two_ray_actors(ray_cluster: None, config: DictConfig, tiny_qwen: Path) -> None:
    import ray
    from transformers import AutoTokenizer

    @ray.remote
    def imported_from() -> str:
        import rationalerm

        return rationalerm.__file__

    assert Path(ray.get(imported_from.remote())).is_relative_to(ROOT)  # the workers score with this checkout
    manager = RewardLoopManager(config)
    assert len(manager.reward_loop_workers) == 2
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen)
    answers = [ANSWERS[n] for n in NAMES] * 2
    batch = rollout_batch(tokenizer, answers, [GROUND_TRUTH] * len(answers))
    out = manager.compute_rm_score(batch)
    rm = out.batch["rm_scores"]
    last = batch.batch["attention_mask"][:, batch.batch["prompts"].shape[1]:].sum(dim=1) - 1
    for k, name in enumerate(NAMES * 2):  # the reward sits on each response's last token, nowhere else
        assert rm[k, last[k]].item() == pytest.approx(direct(name)["score"], abs=1e-6)
        assert rm[k].abs().sum().item() == pytest.approx(abs(direct(name)["score"]), abs=1e-6)
    assert list(out.non_tensor_batch["ap"]) == pytest.approx([EXPECTED[n][1] for n in NAMES * 2], abs=1e-5)
    assert set(out.meta_info["reward_extra_keys"]) >= {"score", "ap", "correct", "parsed", "reason"}

    bad = rollout_batch(tokenizer, [ANSWERS["perfect"]] * 2, [GROUND_TRUTH, BAD_GROUND_TRUTH])
    with pytest.raises(Exception, match="no human checklist") as err:  # a RayTaskError wrapping RewardDataError
        manager.compute_rm_score(bad)
    assert isinstance(err.value, RewardDataError)
