"""The hybrid RL reward (AP x outcome) for trainers: ``rationalerm.reward_entry`` is the file trainers load."""

from rationalerm.reward.scorer import (
    CONFIG_ENV,
    Parsed,
    ParseFailure,
    Reference,
    RewardDataError,
    RewardResult,
    RewardScorer,
    RewardSettings,
    combine,
    compute_score,
    compute_score_batch,
    get_scorer,
    load_reward_config,
    parse_output,
    reference,
    regex_parser,
    reward_func,
    split_items,
)

__all__ = [
    "CONFIG_ENV", "ParseFailure", "Parsed", "Reference", "RewardDataError", "RewardResult", "RewardScorer",
    "RewardSettings", "combine", "compute_score", "compute_score_batch", "get_scorer", "load_reward_config",
    "parse_output", "reference", "regex_parser", "reward_func", "split_items",
]
