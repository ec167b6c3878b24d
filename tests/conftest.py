import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root():
    return REPO


def shapes_cfg(config_file: str, *opts):
    """A frozen-free config: get_cfg + our keys + ``config_file`` (relative to the repo) + opts."""
    from detectron2.config import get_cfg

    import d2_instseg

    cfg = get_cfg()
    d2_instseg.add_d2_instseg_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, config_file))
    cfg.merge_from_list(list(opts))
    return cfg
