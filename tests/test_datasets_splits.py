"""Split sizes (the paper's Table 1 rule), determinism, grouped splits, model-selection policy."""

from __future__ import annotations

import pytest

from datasets.base import DatasetError
from datasets.splits import grouped_split, official_split, random_split, resolve_selection, split_sizes


@pytest.mark.parametrize(
    "n,sizes",
    [
        (1000, (800, 100, 100)),  # Kvasir-SEG
        (612, (489, 61, 62)),  # CVC-ClinicDB
        (1373, (1098, 137, 138)),  # Brain-MRI slices with tumour
        (200, (160, 20, 20)),  # PH2
        (165, (132, 16, 17)),  # GlaS
    ],
)
def test_811_sizes_of_the_paper(n, sizes):
    assert split_sizes(n) == sizes
    split = random_split([f"x{i}" for i in range(n)], seed=42)
    assert tuple(len(split[k]) for k in ("train", "val", "test")) == sizes


def test_41_without_validation():
    assert split_sizes(50, "4:1") == (40, 0, 10)
    split = random_split([f"{i:02d}" for i in range(50)], 42, "4:1")
    assert (len(split["train"]), split["val"], len(split["test"])) == (40, [], 10)


def test_random_split_is_a_seeded_partition():
    ids = [f"id{i}" for i in range(100)]
    a = random_split(ids, 42)
    assert a == random_split(list(reversed(ids)), 42)  # input order does not matter
    assert a != random_split(ids, 43)
    assert sorted(a["train"] + a["val"] + a["test"]) == sorted(ids)
    assert all(v == sorted(v) for v in a.values())


def test_grouped_split_keeps_patients_together():
    groups = {f"p{p}_{k}": f"p{p}" for p in range(30) for k in range(p % 7 + 3)}
    split = grouped_split(groups, 42)
    seen = {}
    for part, ids in split.items():
        for i in ids:
            assert seen.setdefault(groups[i], part) == part
    assert sorted(sum(split.values(), [])) == sorted(groups)
    n_train, n_val, n_test = split_sizes(len(groups))
    assert len(split["val"]) >= n_val and len(split["test"]) >= n_test and split["train"]
    assert split == grouped_split(groups, 42)
    with pytest.raises(DatasetError):
        grouped_split({"a": "p", "b": "p"}, 42)


def test_official_split():
    s = official_split({"b": "test", "a": "train", "c": "train"})
    assert s == {"train": ["a", "c"], "val": [], "test": ["b"]}
    with pytest.raises(DatasetError):
        official_split({"a": None})


def test_resolve_selection():
    with_val = {"train": ["c", "a"], "val": ["b"], "test": ["d"]}
    assert resolve_selection(with_val, "carve", 1) == (["c", "a"], ["b"])
    assert resolve_selection(with_val, "last", 1) == (["c", "a"], ["b"])
    no_val = {"train": [f"t{i:03d}" for i in range(900)], "val": [], "test": ["x"]}
    assert resolve_selection(no_val, "last", 42) == (no_val["train"], [])
    train, val = resolve_selection(no_val, "carve", 42)
    assert len(val) == 90 and len(train) == 810 and not set(train) & set(val)
    assert sorted(train + val) == no_val["train"]
    assert resolve_selection(no_val, "carve", 42) == (train, val)
    assert resolve_selection(no_val, "carve", 7)[1] != val
    assert len(resolve_selection({"train": [str(i) for i in range(40)], "val": []}, "carve", 42)[1]) == 4
    with pytest.raises(ValueError):
        resolve_selection(no_val, "best", 42)
