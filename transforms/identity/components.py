"""Connected components of an edge list in a logarithmic number of shuffle rounds.

Algorithm: randomized min-label **contraction** (the "hook to the smallest neighbour, then contract"
family of Hash-to-Min / Cracker / randomized star contraction), unrolled to a fixed number of rounds
because a Beam graph has no loops, followed by an exact in-memory finish of whatever is left.

One round r on the active edge set E_r (two shuffles, both keyed by node):

1. ``GroupNeighbours``: every node u learns its neighbours and picks
   ``p(u) = argmin over {u} + N(u)`` of ``key_r(x) = (rank(x), H(r, x))``, where H is a hash that is
   fresh in every round; it tells each neighbour v ``(u, p(u))``.
2. ``Contract``: every node v, now knowing p(u) for all its neighbours, computes its own p(v) the same
   way, records the pointer ``v -> p(v)`` when they differ, and replaces each edge (u, v) by
   ``(p(u), p(v))`` (dropped when both ends contract into the same node).

Each node merges into a neighbour (or stays), so components are preserved; components that have
contracted to a single node have no edges left and leave the active set, so a round costs work in
proportion to the part of the graph that is still unresolved. Because the order is re-randomized
every round, a path or tree of n nodes shrinks by a constant factor per round in expectation:
O(log n) rounds whatever the labels (a chain of 2^16 nodes needs about 16, see
docs/identity.md). The optional *rank* (leading characters of the node id, compared before the
hash) makes strong nodes absorb weak ones first: with identity graphs, where an event's identifiers
form a star around its strongest one, whole stars collapse in the first round.

After ``max_rounds`` rounds the remaining edges (normally none) are the *residual*: they are
grouped on one key and finished with an in-memory union-find (counted in
``touchline/identity.cc.residual_edges``; raise the bound if it is ever large). Every node now has
at most one pointer (to the node it contracted into, or to its residual root), and pointers lead to
later rounds, so pointer paths have at most ``max_rounds + 1`` hops; ceil(log2(max_rounds + 1))
pointer-jumping joins flatten them. The output is ``(node, label)`` for every node whose component
label is not the node itself; nodes that never appear in the output (component roots and isolated
nodes) are their own label.

No step holds more than one node's neighbourhood (or the small residual) in memory, never the whole
graph: a worker's memory is bounded by the largest degree of a node still active in a round.
Counters (namespace ``touchline``): ``identity.cc.round_NN_nodes`` (nodes active in round NN: the
rounds actually used are those with a non-zero count), ``identity.cc.residual_edges``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..parse import NAMESPACE

POINTERS = "pointers"
EDGES = "edges"
DEFAULT_MAX_ROUNDS = 8


def order_key(node: str, round_no: int, rank_chars: int) -> tuple[str, bytes, str]:
    """Total order of round ``round_no``: rank prefix, then a per-round hash, then the id itself."""
    digest = hashlib.blake2b(node.encode(), digest_size=8, person=b"touchline-cc%04d" % round_no).digest()
    return (node[:rank_chars], digest, node)


def _pick(nodes: Iterable[str], round_no: int, rank_chars: int) -> str:
    return min(nodes, key=lambda n: order_key(n, round_no, rank_chars))


def canonical(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


class _PickMin(beam.DoFn):
    """u, neighbours -> (v, (u, p(u))) for every neighbour v."""

    def __init__(self, round_no: int, rank_chars: int):
        self._round = round_no
        self._rank = rank_chars

    def setup(self):
        self._nodes = Metrics.counter(NAMESPACE, f"identity.cc.round_{self._round:02d}_nodes")

    def process(self, element):
        node, neighbours = element
        neighbours = set(neighbours)  # contracted edges may repeat; memory is one node's degree
        self._nodes.inc()
        target = _pick([node, *neighbours], self._round, self._rank)
        for other in neighbours:
            yield other, (node, target)


class _Contract(beam.DoFn):
    """v, [(u, p(u))] -> pointer v -> p(v) (tagged) and contracted edges (p(u), p(v))."""

    def __init__(self, round_no: int, rank_chars: int):
        self._round = round_no
        self._rank = rank_chars

    def process(self, element):
        node, told = element
        told = dict(told)
        target = _pick([node, *told], self._round, self._rank)
        if target != node and node not in told.values():
            # Nobody hooked onto this node: it leaves the graph, remembered by its pointer. (When a
            # neighbour did hook onto it, the contracted edge (node, target) keeps it in the next
            # round instead, so every node gets exactly one pointer or is a root.)
            yield beam.pvalue.TaggedOutput(POINTERS, (node, target))
        emitted = set()
        for other, other_target in told.items():
            # each edge is seen at both ends: emit it once, from its larger end (in both directions,
            # as the next round groups by either end)
            if other < node and other_target != target:
                edge = canonical(other_target, target)
                if edge not in emitted:
                    emitted.add(edge)
                    yield edge
                    yield edge[1], edge[0]


class _ContractRound(beam.PTransform):
    def __init__(self, round_no: int, rank_chars: int):
        super().__init__()
        self._round = round_no
        self._rank = rank_chars

    def expand(self, pairs):
        """pairs: every edge in both directions."""
        told = (
            pairs
            | "GroupNeighbours" >> beam.GroupByKey()
            | "PickMin" >> beam.ParDo(_PickMin(self._round, self._rank))
        )
        out = (
            told
            | "GroupTold" >> beam.GroupByKey()
            | "Contract" >> beam.ParDo(_Contract(self._round, self._rank)).with_output_types(Any).with_outputs(POINTERS, main=EDGES)
        )
        return out[EDGES], out[POINTERS]


class _UnionFind(beam.DoFn):
    """The exact finish: every residual edge on one key, solved in memory (roots = smallest id)."""

    def setup(self):
        self._residual = Metrics.counter(NAMESPACE, "identity.cc.residual_edges")

    def process(self, element):
        _key, edges = element
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            root = x
            while parent.get(root, root) != root:
                root = parent[root]
            while parent.get(x, x) != root:  # path compression
                parent[x], x = root, parent[x]
            return root

        count = 0
        for a, b in edges:
            count += 1
            ra, rb = find(a), find(b)
            if ra != rb:
                if rb < ra:
                    ra, rb = rb, ra
                parent[rb] = ra
        self._residual.inc(count)
        for node in list(parent):
            root = find(node)
            if root != node:
                yield node, root


def _both_ways(pointer):
    """A pointer (node, parent) is told to its parent (as a child) and to its node (as its parent)."""
    node, parent = pointer
    yield parent, (True, node)
    yield node, (False, parent)


def _jump(element):
    """x, [(is_child, other)] -> (child, parent of x) for each child of x (x itself when x is a root)."""
    node, told = element
    children, above = [], node
    for is_child, other in told:
        if is_child:
            children.append(other)
        else:
            above = other
    for child in children:
        yield child, above


def doubling_steps(depth: int) -> int:
    """Pointer-jumping steps that flatten any pointer path of ``depth`` hops into one hop."""
    steps = 0
    while (1 << steps) < depth:
        steps += 1
    return steps


class ConnectedComponents(beam.PTransform):
    """Edges ``(a, b)`` (node ids are strings) -> ``(node, label)`` for every node whose component
    label is not itself; absent nodes are their own label.

    ``max_rounds`` contraction rounds are unrolled (stable step labels ``Round01`` ...), then the
    residual is finished exactly. ``rank_chars`` leading characters of a node id are compared before
    the random order (strong nodes absorb weak ones first).
    """

    def __init__(self, max_rounds: int = DEFAULT_MAX_ROUNDS, rank_chars: int = 0):
        super().__init__()
        if max_rounds < 0:
            raise ValueError("max_rounds must be >= 0")
        self._rounds = max_rounds
        self._rank = rank_chars

    def expand(self, edges):
        active = edges | "BothDirections" >> beam.FlatMap(lambda e: [(e[0], e[1]), (e[1], e[0])] if e[0] != e[1] else [])
        levels = []
        for r in range(1, self._rounds + 1):
            active, pointers = active | f"Round{r:02d}" >> _ContractRound(r, self._rank)
            levels.append(pointers)
        residual = (
            active
            | "KeyResidual" >> beam.FlatMap(lambda e: [(None, e)] if e[0] < e[1] else [])
            | "GroupResidual" >> beam.GroupByKey()
            | "FinishResidual" >> beam.ParDo(_UnionFind())
        )
        # Every node has at most one pointer (a node that contracted, or a residual node to its root),
        # and a pointer of round r leads to a node of a later round: paths have at most
        # max_rounds + 1 hops. Pointer jumping halves them per step.
        pointers = [*levels, residual] | "AllPointers" >> beam.Flatten()
        for step in range(1, doubling_steps(self._rounds + 1) + 1):
            pointers = (
                pointers
                | f"TellBothWays{step:02d}" >> beam.FlatMap(_both_ways)
                | f"GroupFamily{step:02d}" >> beam.GroupByKey()
                | f"Jump{step:02d}" >> beam.FlatMap(_jump)
            )
        return pointers
