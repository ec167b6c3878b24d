import pytest
import torch
from detectron2.config import get_cfg

from d2_instseg import add_d2_instseg_config


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine's 2 cores are shared: one thread per test avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shapes_cfg():
    cfg = get_cfg()
    add_d2_instseg_config(cfg)
    cfg.merge_from_file("configs/shapes/irnet.yaml")
    return cfg
