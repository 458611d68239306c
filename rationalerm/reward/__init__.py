"""The hybrid RL reward (AP x outcome) for trainers: ``parse`` reads a policy's output, ``reference`` the ground
truth, ``scorer`` judges and combines, ``entry`` holds the trainers' signatures (``rationalerm/reward_entry.py``
is the file trainers load by path)."""

from rationalerm.reward.entry import (
    CONFIG_ENV,
    compute_score,
    compute_score_batch,
    get_scorer,
    reward_func,
    trl_reward,
    trl_reward_async,
)
from rationalerm.reward.parse import Parsed, ParseFailure, parse_output, regex_parser, split_items
from rationalerm.reward.reference import Reference, RewardDataError, reference
from rationalerm.reward.scorer import RewardResult, RewardScorer, RewardSettings, combine, load_reward_config

__all__ = [
    "CONFIG_ENV", "ParseFailure", "Parsed", "Reference", "RewardDataError", "RewardResult", "RewardScorer",
    "RewardSettings", "combine", "compute_score", "compute_score_batch", "get_scorer", "load_reward_config",
    "parse_output", "reference", "regex_parser", "reward_func", "split_items", "trl_reward", "trl_reward_async",
]
