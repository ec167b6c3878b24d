import pytest
from detectron2.config import get_cfg

from d2_instseg import add_d2_instseg_config


@pytest.fixture(autouse=True)
def single_thread(one_thread):
    """The test machine's 2 cores are shared: every IRNet test runs on one thread."""


@pytest.fixture
def shapes_cfg():
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file("configs/shapes/irnet.yaml")
    return cfg
