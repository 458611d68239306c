"""The file RL trainers load by path (verl ``reward.custom_reward_function.path``, OpenRLHF ``--reward.remote_url``);
TRL takes ``trl_reward`` / ``trl_reward_async`` from here as callables.

Trainers execute a reward file under a module name of their own, often without registering it in
``sys.modules``; classes defined in such a module cannot resolve their annotations. This file therefore only
re-exports ``rationalerm.reward.entry``'s entry points, which live in the normally imported module (so the scorer
and its pair memo are shared with any other import in the process).
"""

from __future__ import annotations

from rationalerm.reward.entry import compute_score, compute_score_batch, reward_func, trl_reward, trl_reward_async

__all__ = ["compute_score", "compute_score_batch", "reward_func", "trl_reward", "trl_reward_async"]
