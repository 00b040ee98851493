"""Train/validation/test splits and the model-selection policy for datasets without validation.

Random splits permute the sorted ids with ``np.random.default_rng(seed).permutation``:
- "8:1:1": validation = floor(n/10), training = floor(8n/10), test = the rest
  (1000 -> 800/100/100, 612 -> 489/61/62, 1373 -> 1098/137/138, 200 -> 160/20/20, 165 -> 132/16/17);
  the first floor(8n/10) permuted ids train, the next floor(n/10) validate, the rest test.
- "4:1": training = floor(4n/5), test = the rest, no validation (50 -> 40/10).
- "official": the subset each file came from ("train"/"test"), no validation.
- grouped (``--split-by-patient``): the sorted groups are permuted the same way and each group goes
  whole to the first of validation, test, training whose target size (as above) is not yet reached;
  the sizes are therefore only approximately those of the ungrouped rule.
Every id list in a split is sorted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datasets.base import DatasetError

POLICIES = ("carve", "last")


def split_sizes(n: int, rule: str = "8:1:1") -> tuple[int, int, int]:
    """(train, val, test) sizes of a random split of n items."""
    if rule == "8:1:1":
        train, val = 8 * n // 10, n // 10
    elif rule == "4:1":
        train, val = 4 * n // 5, 0
    else:
        raise ValueError(f"no fixed sizes for split rule {rule!r}")
    return train, val, n - train - val


def _result(train: Sequence[str], val: Sequence[str], test: Sequence[str]) -> dict[str, list[str]]:
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def random_split(ids: Sequence[str], seed: int, rule: str = "8:1:1") -> dict[str, list[str]]:
    """Seeded random split of `ids` by `rule` ("8:1:1" or "4:1")."""
    ids = sorted(ids)
    n_train, n_val, _ = split_sizes(len(ids), rule)
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    return _result(order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])


def grouped_split(groups: dict[str, str], seed: int, rule: str = "8:1:1") -> dict[str, list[str]]:
    """Seeded split that keeps every group (patient) within one part; `groups` maps id -> group."""
    members: dict[str, list[str]] = {}
    for i in sorted(groups):
        members.setdefault(groups[i], []).append(i)
    names = sorted(members)
    if len(names) < (3 if rule == "8:1:1" else 2):
        raise DatasetError(f"--split-by-patient needs more groups than {len(names)}")
    n_train, n_val, n_test = split_sizes(len(groups), rule)
    targets = {"val": n_val, "test": n_test, "train": n_train}
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for g in (names[i] for i in np.random.default_rng(seed).permutation(len(names))):
        part = next((p for p in ("val", "test") if len(parts[p]) < targets[p]), "train")
        parts[part] += members[g]
    return _result(parts["train"], parts["val"], parts["test"])


def official_split(subsets: dict[str, str | None]) -> dict[str, list[str]]:
    """Split given by each id's official subset ("train" or "test")."""
    bad = sorted(i for i, s in subsets.items() if s not in ("train", "test"))
    if bad:
        raise DatasetError(f"ids without an official subset: {bad[:5]}")
    return _result([i for i, s in subsets.items() if s == "train"], [], [i for i, s in subsets.items() if s == "test"])


def resolve_selection(split: dict, policy: str, seed: int) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids) for training with model selection.

    A non-empty split["val"] is used as is. Without one, policy "carve" moves floor(n_train/10)
    training ids, chosen by a seeded permutation of the sorted training ids, to validation; policy
    "last" returns (train, []) and the engine keeps the model of the last epoch.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown selection policy {policy!r}; expected one of {POLICIES}")
    train, val = sorted(split["train"]), sorted(split.get("val") or [])
    if val:
        return list(split["train"]), list(split["val"])
    if policy == "last":
        return train, []
    n_val = len(train) // 10
    order = np.random.default_rng(seed).permutation(len(train))
    carved = {train[i] for i in order[:n_val]}
    return [i for i in train if i not in carved], sorted(carved)
