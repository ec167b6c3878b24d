import pytest


@pytest.fixture(autouse=True)
def single_thread(one_thread):
    """The test machine's 2 cores are shared: every IRNet test runs on one thread."""
