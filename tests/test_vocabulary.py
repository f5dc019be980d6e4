"""One vocabulary (llbench.vocabulary): the config schema, the registry and the tables agree with it."""

from __future__ import annotations

import pytest
import yaml

import methods
from llbench import vocabulary
from llbench.workflow import SCHEMA


def _dataset_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())["properties"]["datasets"]["additionalProperties"]["properties"]


def test_schema_kinds_are_the_vocabulary():
    assert _dataset_schema()["kind"]["enum"] == list(vocabulary.KINDS)


def test_schema_tiny_names_are_the_generators():
    from llbench.data.tiny import GENERATORS

    assert _dataset_schema()["tiny"]["enum"] == list(GENERATORS)


def test_every_kind_has_a_task_and_every_task_a_kind():
    assert {k.task for k in vocabulary.KINDS.values()} == set(vocabulary.TASKS)
    for task in vocabulary.TASKS:
        assert vocabulary.task_kinds(task)
    assert set().union(*vocabulary.TRAIN_DATA.values()) <= set(vocabulary.KINDS)


@pytest.mark.parametrize("name", methods.names())
def test_methods_speak_the_vocabulary(name):
    m = methods.get(name)
    assert m.task in vocabulary.TASKS and m.train_data in vocabulary.TRAIN_DATA
    assert set(m.dataset_kinds) <= set(vocabulary.KINDS)
    for key, column in m.extra_columns.items():
        assert column.key == key and key not in vocabulary.METRICS
        assert vocabulary.metric(key) is column  # the report finds the method's own label and decimals


def test_primary_metrics_come_first_and_unknown_columns_are_an_error():
    assert vocabulary.PRIMARY == ("psnr", "ssim", "niqe")
    assert vocabulary.order_columns(["ssim_gtmean", "niqe", "psnr_skimage", "psnr"]) == [
        "psnr",
        "niqe",
        "psnr_skimage",
        "ssim_gtmean",
    ]
    with pytest.raises(KeyError, match="psnr_typo"):
        vocabulary.metric("psnr_typo")
