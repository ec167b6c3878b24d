"""walk_back on a hand-made chain: output <- relu <- view <- conv <- input."""

from d2_instseg.utils.graph import walk_back

# each node names its first input's producer
CHAIN = {"relu": "view", "view": "conv", "conv": "input", "input": None}


def previous(name):
    return CHAIN[name]


def test_finds_the_first_layer_back_from_the_output():
    assert walk_back("relu", lambda n: n in {"conv", "input"}, previous) == "conv"
    assert walk_back("conv", lambda n: n == "conv", previous) == "conv"  # the start itself


def test_stops_at_the_end_of_the_graph_or_after_the_given_number_of_nodes():
    assert walk_back("relu", lambda n: n == "missing", previous) is None
    assert walk_back(None, lambda n: True, previous) is None
    # relu, view, conv are 3 nodes: 2 looked at do not reach conv
    assert walk_back("relu", lambda n: n == "conv", previous, steps=2) is None
    assert walk_back("relu", lambda n: n == "conv", previous, steps=3) == "conv"
