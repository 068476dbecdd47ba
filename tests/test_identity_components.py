"""Connected components: exact on any graph, logarithmic rounds, exact finish of the residual."""

from __future__ import annotations

import collections
import random

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from touchline.pipelines.batch import counters
from touchline.transforms.identity.components import ConnectedComponents, doubling_steps

from .conftest import beam_pipeline


def reference_components(edges):
    parent = {}

    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups = collections.defaultdict(set)
    for x in {x for e in edges for x in e}:
        groups[find(x)].add(x)
    return sorted(sorted(g) for g in groups.values())


def grouped_by_label(nodes):
    def group(labels):
        label = dict(labels)
        assert len(label) == len(labels), "a node got two labels"
        groups = collections.defaultdict(set)
        for node in nodes:
            groups[label.get(node, node)].add(node)
        return sorted(sorted(g) for g in groups.values())
    return group


def batches(edges, size=50):
    """Edges as the pipeline hands them on: lists (any split)."""
    return [edges[i:i + size] for i in range(0, len(edges), size)]


def flat(lists):
    return lists | "Flat" >> beam.FlatMap(lambda pairs: pairs)


def test_doubling_steps():
    assert [doubling_steps(d) for d in (1, 2, 3, 4, 5, 13, 17)] == [0, 1, 2, 2, 3, 4, 5]


def test_random_graphs_match_a_reference_union_find_for_any_round_bound():
    rng = random.Random(5)
    with beam_pipeline() as p:
        for trial, max_rounds in enumerate((0, 2, 6)):
            nodes = [f"n{rng.getrandbits(32):08x}" for _ in range(150)]
            edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(140)]  # small components, self loops
            edges += [(nodes[i], nodes[i + 1]) for i in range(40)]  # and one longer path
            proper = [e for e in edges if e[0] != e[1]]
            groups = (
                p
                | f"Edges{trial}" >> beam.Create(batches(edges))
                | f"CC{trial}" >> ConnectedComponents(max_rounds=max_rounds, buckets=3 + trial)
                | f"Labels{trial}" >> beam.FlatMap(lambda pairs: pairs)
                | f"All{trial}" >> beam.combiners.ToList()
                | f"Group{trial}" >> beam.Map(grouped_by_label(sorted({x for e in proper for x in e})))
            )
            assert_that(groups, equal_to([reference_components(proper)]), label=f"Check{trial}")


def _rounds_used(counts):
    return max((int(name.split("round_")[1][:2]) for name, v in counts.items() if "round_" in name and v > 0), default=0)


def test_chain_of_4096_identifiers_is_one_component_in_logarithmic_rounds():
    rng = random.Random(12)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(2 ** 12)]
    edges = list(zip(ids, ids[1:]))
    rng.shuffle(edges)
    p = beam_pipeline()
    labels = flat(p | beam.Create(batches(edges, 500)) | ConnectedComponents(max_rounds=14, buckets=8))
    components = labels | beam.combiners.ToList() | beam.Map(lambda ls: len({dict(ls).get(x, x) for x in ids}))
    assert_that(components, equal_to([1]))
    result = p.run()
    result.wait_until_finish()
    counts = counters(result)
    assert 8 <= _rounds_used(counts) <= 14, counts  # log2(4096) = 12; the order is re-randomized per round
    assert counts.get("identity.cc.residual_edges", 0) == 0


def test_residual_is_finished_exactly_and_ranked_stars_collapse_in_one_round():
    rng = random.Random(3)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(512)]
    chain = list(zip(ids, ids[1:]))
    stars = []
    for _ in range(50):  # rank '0' (a unique id) before '1'-'5' (weak kinds): person-shaped stars
        center = f"0{rng.getrandbits(64):016x}"
        stars += [(center, f"{rng.randint(1, 5)}{rng.getrandbits(64):016x}") for _ in range(rng.randint(1, 12))]
    p = beam_pipeline()
    short = p | "Chain" >> beam.Create(batches(chain)) | "Short" >> ConnectedComponents(max_rounds=3) | "ShortLabels" >> beam.FlatMap(lambda l: l)
    components = short | "AllChain" >> beam.combiners.ToList() | beam.Map(lambda ls: len({dict(ls).get(x, x) for x in ids}))
    assert_that(components, equal_to([1]), label="OneChain")
    ranked = (p | "Stars" >> beam.Create(batches(stars)) | "Ranked" >> ConnectedComponents(max_rounds=3, rank_chars=1)
              | "RankedLabels" >> beam.FlatMap(lambda l: l))
    assert_that(ranked | beam.combiners.Count.Globally(), equal_to([len(stars)]), label="EveryLeafLabelled")
    result = p.run()
    result.wait_until_finish()
    counts = counters(result)
    # the three-round chain left a residual, finished in memory, about 8 times smaller than the chain
    assert 0 < counts["identity.cc.residual_edges"] < 511 / 4
    # the stars were all contracted in round 1 (round 2 and 3 saw only chain nodes)
    assert counts["identity.cc.round_02_nodes"] < 511 and counts["identity.cc.round_01_nodes"] > 511 + len(stars)
