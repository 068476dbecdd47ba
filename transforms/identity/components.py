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

Edges travel in batches keyed by the bucket of a node (see :mod:`touchline.transforms.batches`): a
step holds one bucket's share of the active edges (or the small residual), never the whole graph.
Counters (namespace ``touchline``): ``identity.cc.round_NN_nodes`` (nodes active in round NN: the
rounds actually used are those with a non-zero count), ``identity.cc.residual_edges``.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from ..packing import GroupBuckets, Shuffle, unpack
from ..parse import NAMESPACE

POINTERS = "pointers"
EDGES = "edges"
DEFAULT_MAX_ROUNDS = 8


def order_key(node: str, round_no: int, rank_chars: int) -> tuple[str, bytes, str]:
    """Total order of round ``round_no``: rank prefix, then a per-round hash, then the id itself."""
    digest = hashlib.blake2b(node.encode(), digest_size=8, person=b"touchline-cc%04d" % round_no).digest()
    return (node[:rank_chars], digest, node)


def canonical(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _picker(round_no: int, rank_chars: int):
    """``pick(nodes)``: the smallest node of round ``round_no``'s order, keys memoized per call site."""
    keys: dict[str, tuple] = {}

    def key(node: str) -> tuple:
        k = keys.get(node)
        if k is None:
            k = keys[node] = order_key(node, round_no, rank_chars)
        return k

    def pick(nodes: Iterable[str]) -> str:
        return min(nodes, key=key)

    return pick


def _directed(edges: Iterable[tuple[str, str]], shuffle: Shuffle):
    """Edges -> both directions ``(src, dst)``, packed per bucket of ``src`` (self-loops dropped)."""
    return shuffle.keyed((x, (x, y)) for a, b in edges if a != b for x, y in ((a, b), (b, a)))


class _BothDirections(beam.DoFn):
    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def process(self, edges):
        yield from _directed(edges, self._shuffle)


class _PickMin(beam.DoFn):
    """(bucket, [directed edges (u, v)]) -> for every node u of the bucket and neighbour v, ``(v, u,
    p(u))`` keyed by the bucket of v."""

    def __init__(self, round_no: int, rank_chars: int, shuffle: Shuffle):
        self._round = round_no
        self._rank = rank_chars
        self._shuffle = shuffle

    def setup(self):
        self._nodes = Metrics.counter(NAMESPACE, f"identity.cc.round_{self._round:02d}_nodes")

    def process(self, element):
        _key, lists = element
        neighbours: dict[str, set] = {}
        for records in lists:
            for u, v in records:
                neighbours.setdefault(u, set()).add(v)  # contracted edges may repeat
        if not neighbours:
            return
        self._nodes.inc(len(neighbours))
        pick = _picker(self._round, self._rank)
        told = []
        for u, others in neighbours.items():
            target = pick([u, *others])
            told.extend((v, (v, u, target)) for v in others)
        yield from self._shuffle.keyed(told)


class _Contract(beam.DoFn):
    """(bucket, [(v, u, p(u))]) -> pointers v -> p(v) (tagged, a list) and contracted edges
    (p(u), p(v)) in both directions, keyed by the bucket of their source."""

    def __init__(self, round_no: int, rank_chars: int, shuffle: Shuffle):
        self._round = round_no
        self._rank = rank_chars
        self._shuffle = shuffle

    def process(self, element):
        _key, lists = element
        told: dict[str, dict[str, str]] = {}
        for records in lists:
            for v, u, target in records:
                told.setdefault(v, {})[u] = target
        pick = _picker(self._round, self._rank)
        pointers, edges = [], []
        for node, targets in told.items():
            target = pick([node, *targets])
            if target != node and node not in set(targets.values()):
                # Nobody hooked onto this node: it leaves the graph, remembered by its pointer. (When a
                # neighbour did hook onto it, the contracted edge (node, target) keeps it in the next
                # round instead, so every node gets exactly one pointer or is a root.)
                pointers.append((node, target))
            emitted = set()
            for other, other_target in targets.items():
                # each edge is seen at both ends: emit it once, from its larger end (in both directions,
                # as the next round groups by either end)
                if other < node and other_target != target:
                    edge = canonical(other_target, target)
                    if edge not in emitted:
                        emitted.add(edge)
                        edges.append(edge)
        if pointers:
            yield beam.pvalue.TaggedOutput(POINTERS, pointers)
        yield from _directed(edges, self._shuffle)


class _ContractRound(beam.PTransform):
    def __init__(self, round_no: int, rank_chars: int, shuffle: Shuffle):
        super().__init__()
        self._round = round_no
        self._rank = rank_chars
        self._shuffle = shuffle

    def expand(self, pairs):
        """pairs: (bucket, packed directed edges): every edge in both directions."""
        told = (
            pairs
            | "GroupNeighbours" >> GroupBuckets()
            | "PickMin" >> beam.ParDo(_PickMin(self._round, self._rank, self._shuffle))
        )
        out = (
            told
            | "GroupTold" >> GroupBuckets()
            | "Contract" >> beam.ParDo(_Contract(self._round, self._rank, self._shuffle)).with_outputs(POINTERS, main=EDGES)
        )
        return out[EDGES], out[POINTERS]


def union_find(edges: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """(pointers (node, root) for every non-root node (roots = smallest id), edges seen)."""
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
    pointers = []
    for node in list(parent):
        root = find(node)
        if root != node:
            pointers.append((node, root))
    return pointers, count


def _residual(element, shuffle: Shuffle):
    """(bucket, packed directed edges) -> the edges (a < b) still active after the last round, all on one key."""
    _key, blob = element
    edges = [e for e in unpack(blob) if e[0] < e[1]]
    if edges:
        yield 0, shuffle.pack(edges)


class _UnionFind(beam.DoFn):
    """The exact finish: every residual edge on one key, solved in memory (roots = smallest id)."""

    def setup(self):
        self._residual = Metrics.counter(NAMESPACE, "identity.cc.residual_edges")

    def process(self, element):
        _key, lists = element
        pointers, count = union_find(e for edges in lists for e in edges)
        self._residual.inc(count)
        if pointers:
            yield pointers


class _TellBothWays(beam.DoFn):
    """Pointers (node, parent) -> each told to its parent (as a child) and to its node (as its
    parent), keyed by the bucket of who is told."""

    def __init__(self, shuffle: Shuffle):
        self._shuffle = shuffle

    def process(self, pointers):
        told = []
        for node, parent in pointers:
            told.append((parent, (parent, True, node)))
            told.append((node, (node, False, parent)))
        yield from self._shuffle.keyed(told)


def _jump(element):
    """(bucket, [(x, is_child, other)]) -> [(child, parent of x)] for each child of each x (x itself
    when x is a root)."""
    _key, lists = element
    family: dict[str, list] = {}
    for records in lists:
        for node, is_child, other in records:
            entry = family.get(node)
            if entry is None:
                entry = family[node] = [[], node]
            if is_child:
                entry[0].append(other)
            else:
                entry[1] = other
    out = [(child, above) for children, above in family.values() for child in children]
    if out:
        yield out


def doubling_steps(depth: int) -> int:
    """Pointer-jumping steps that flatten any pointer path of ``depth`` hops into one hop."""
    steps = 0
    while (1 << steps) < depth:
        steps += 1
    return steps


class ConnectedComponents(beam.PTransform):
    """Lists of edges ``(a, b)`` (node ids are strings) -> lists of ``(node, label)`` for every node
    whose component label is not itself; absent nodes are their own label.

    ``max_rounds`` contraction rounds are unrolled (stable step labels ``Round01`` ...), then the
    residual is finished exactly. ``rank_chars`` leading characters of a node id are compared before
    the random order (strong nodes absorb weak ones first). Every round's shuffles move edge
    batches keyed by the bucket of a node (``buckets`` of them; spilled to files under ``spill_dir``).
    """

    def __init__(self, max_rounds: int = DEFAULT_MAX_ROUNDS, rank_chars: int = 0, buckets: int = 32,
                 spill_dir: str | None = None):
        super().__init__()
        if max_rounds < 0:
            raise ValueError("max_rounds must be >= 0")
        self._rounds = max_rounds
        self._rank = rank_chars
        self._shuffle = Shuffle(buckets, spill_dir)

    def expand(self, edges):
        active = edges | "BothDirections" >> beam.ParDo(_BothDirections(self._shuffle))
        levels = []
        for r in range(1, self._rounds + 1):
            active, pointers = active | f"Round{r:02d}" >> _ContractRound(r, self._rank, self._shuffle)
            levels.append(pointers)
        residual = (
            active
            | "KeyResidual" >> beam.FlatMap(_residual, self._shuffle)
            | "GroupResidual" >> GroupBuckets()
            | "FinishResidual" >> beam.ParDo(_UnionFind())
        )
        # Every node has at most one pointer (a node that contracted, or a residual node to its root),
        # and a pointer of round r leads to a node of a later round: paths have at most
        # max_rounds + 1 hops. Pointer jumping halves them per step.
        pointers = [*levels, residual] | "AllPointers" >> beam.Flatten()
        for step in range(1, doubling_steps(self._rounds + 1) + 1):
            pointers = (
                pointers
                | f"TellBothWays{step:02d}" >> beam.ParDo(_TellBothWays(self._shuffle))
                | f"GroupFamily{step:02d}" >> GroupBuckets()
                | f"Jump{step:02d}" >> beam.FlatMap(_jump)
            )
        return pointers
