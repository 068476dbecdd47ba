"""Ready for a distributed runner (Dataflow, Flink, Spark), checked on the production graphs built
without running them (touchline.pipelines.graphs):

* every DoFn / CombineFn pickles with Beam's pickler and unpickles in a fresh interpreter that never
  imported the launching module -- so nothing relies on ``save_main_session``;
* every key that reaches a GroupByKey or a stateful DoFn has a deterministic coder (the coders Beam
  hands to the runner);
* step labels are unique and equal the checked-in lists (Dataflow's ``--update`` maps steps by label);
* worker code keeps no mutable process-global state.

That the graphs give identical tables on two worker processes is tests/test_batch_e2e.py
(``test_multi_processing_runner_gives_identical_tables``)."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import pickle
import pkgutil
import re
import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners import pipeline_context

import touchline.pipelines
import touchline.transforms
from touchline.pipelines import deploy, graphs

from .conftest import repo_root


@pytest.fixture(scope="module")
def built():
    return {name: graphs.built(name) for name in graphs.GRAPHS}


def _fns(p: beam.Pipeline) -> list[tuple[str, object]]:
    out = []
    for node in graphs.applied_transforms(p):
        fn = getattr(node.transform, "fn", None)
        if isinstance(fn, (beam.DoFn, beam.CombineFn)):
            out.append((node.full_label, fn))
    return out


def _touchline_fn_classes() -> set[type]:
    classes = set()
    for package in (touchline.transforms, touchline.pipelines):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for obj in vars(module).values():
                if (inspect.isclass(obj) and obj.__module__ == module.__name__
                        and issubclass(obj, (beam.DoFn, beam.CombineFn))):
                    classes.add(obj)
    return classes


def _extra_instances() -> dict[str, object]:
    """DoFns of optional paths the two graphs do not contain, built with plausible arguments."""
    import datetime as dt

    from touchline.transforms.bigquery_connect import BigQueryConnection
    from touchline.transforms.bigquery_source import ReadStreamFn, TableInput
    from touchline.transforms.journeys import _JourneysOfPerson
    from touchline.transforms.scoring.calibration import _AnswersOfPerson
    from touchline.transforms.scoring.model import load_model
    from touchline.transforms.sources import _SplitFiles
    from touchline.transforms.batches import BatchDoFn
    from touchline.transforms.warehouse.staging import _ReadTables, _WriteParquet, _WriteStaged

    model = load_model(None)
    table = TableInput("web", "p.d.web_events", ("event_id",), date_column="event_date", date_type="DATE",
                       from_date=dt.date(2026, 10, 1), to_date=dt.date(2026, 10, 31))
    return {
        "ReadStreamFn (--<channel>_table reads)": ReadStreamFn(table, BigQueryConnection("p")),
        "_ReadTables (snapshots of stored state)": _ReadTables("touchpoints"),
        "_WriteParquet (DuckDB's Parquet staging)": _WriteParquet("touchpoints", "/tmp/staging", ".parquet"),
        "_WriteStaged (the staging writers' base)": _WriteStaged("touchpoints", "/tmp/staging", ".x"),
        "BatchDoFn (the batch steps' base)": BatchDoFn(),
        "_SplitFiles (ReadChannelFiles: the per-element reader of the floor benchmark)": _SplitFiles(64 << 20),
        "_JourneysOfPerson (BuildJourneys)": _JourneysOfPerson(model, 12 * 3600 * 10**6),
        "_AnswersOfPerson (touchline calibrate)": _AnswersOfPerson(model, 12 * 3600 * 10**6, 0, 10**15),
    }


def test_every_touchline_dofn_and_combinefn_is_checked(built):
    covered = {type(fn) for p in built.values() for _, fn in _fns(p)} | {type(fn) for fn in _extra_instances().values()}
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in _touchline_fn_classes() - covered)
    assert not missing, (
        f"DoFn/CombineFn classes in no checked graph: {missing}; add an instance to _extra_instances() "
        f"(or use them in touchline.pipelines.graphs)")


def test_a_fresh_interpreter_loads_the_pipelines_and_every_fn_without_the_main_session(built, tmp_path):
    """What a worker does: read the pipeline proto and unpickle every transform's payload, in an
    interpreter that never imported the launching module (no save_main_session); plus every fn alone."""
    payloads = [(label, pickler.dumps(fn)) for p in built.values() for label, fn in _fns(p)]
    payloads += [(label, pickler.dumps(fn)) for label, fn in _extra_instances().items()]
    assert len(payloads) > 100
    (tmp_path / "fns.pickle").write_bytes(pickle.dumps(payloads))
    for name, p in built.items():
        (tmp_path / f"{name}.pb").write_bytes(p.to_runner_api().SerializeToString())
    script = (
        "import pickle, sys\n"
        "from apache_beam.internal import pickler\n"
        "from apache_beam.pipeline import Pipeline\n"
        "from apache_beam.portability.api import beam_runner_api_pb2\n"
        "from apache_beam.options.pipeline_options import PipelineOptions\n"
        "assert not any(m.startswith('touchline') for m in sys.modules), 'fresh interpreter'\n"
        "for label, data in pickle.load(open('fns.pickle', 'rb')):\n"
        "    try:\n"
        "        fn = pickler.loads(data)\n"
        "    except Exception as exc:\n"
        "        sys.exit(f'{label}: {type(exc).__name__}: {exc}')\n"
        "    if type(fn).__module__ == '__main__':\n"
        "        sys.exit(f'{label}: defined in __main__ (needs save_main_session)')\n"
        f"for name in {sorted(built)!r}:\n"
        "    proto = beam_runner_api_pb2.Pipeline.FromString(open(name + '.pb', 'rb').read())\n"
        "    Pipeline.from_runner_api(proto, 'DirectRunner', PipelineOptions([]))\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:] or proc.stdout
    assert proc.stdout.strip() == "ok"


def _keyed_inputs(proto: beam_runner_api_pb2.Pipeline) -> list[tuple[str, str]]:
    """(transform label, input PCollection id) of every GroupByKey and stateful/timer DoFn."""
    out = []
    for transform in proto.components.transforms.values():
        urn = transform.spec.urn
        if urn == common_urns.primitives.GROUP_BY_KEY.urn:
            out.append((transform.unique_name, next(iter(transform.inputs.values()))))
        elif urn == common_urns.primitives.PAR_DO.urn:
            payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
            if payload.state_specs or payload.timer_family_specs:
                main = [pc for tag, pc in transform.inputs.items() if tag not in payload.side_inputs]
                out.append((transform.unique_name, main[0]))
    return out


@pytest.mark.parametrize("name", sorted(graphs.GRAPHS))
def test_key_coders_are_deterministic(built, name):
    proto = built[name].to_runner_api()
    context = pipeline_context.PipelineContext(proto.components)
    keyed = _keyed_inputs(proto)
    assert keyed, "the graph groups by key somewhere"
    bad = []
    for label, pcoll_id in keyed:
        coder = context.coders.get_by_id(proto.components.pcollections[pcoll_id].coder_id)
        key_coder = coder.key_coder()
        if not key_coder.is_deterministic():
            bad.append(f"{label}: {key_coder}")
    assert not bad, ("keys with a non-deterministic coder (equal keys may encode differently on two workers and "
                     "never meet): " + "; ".join(bad))
    if name == "stream":  # stateful steps: typed keys (str/int), not the pickling fallback
        labels = {label for label, _ in keyed}
        assert any("Deduplicate" in lbl for lbl in labels) and any("AllowedLateness" in lbl for lbl in labels)


@pytest.mark.parametrize("template", deploy.TEMPLATES, ids=lambda t: t.name)
def test_step_labels_are_unique_and_equal_the_checked_in_list(built, template):
    labels = graphs.step_labels(built[template.name])
    assert len(labels) == len(set(labels)), "duplicate step labels"
    own_lines = [lbl for lbl in labels if re.search(r"\.py:\d+", lbl) and not re.search(r"<lambda at core\.py:\d+>", lbl)]
    assert not own_lines, f"labels generated from a source line change whenever the file does: {own_lines[:5]}"
    path = os.path.join(repo_root(), deploy.labels_path(template))
    with open(path, encoding="utf-8") as fh:
        checked_in = [line.rstrip("\n") for line in fh if not line.startswith("#")]
    now = deploy.step_labels_text(template).splitlines()[4:]
    removed = [lbl for lbl in checked_in if lbl not in set(now)]
    added = [lbl for lbl in now if lbl not in set(checked_in)]
    assert checked_in == now, (
        f"{template.name} step labels changed (removed: {removed[:10]}, added: {added[:10]}). A running streaming "
        f"job's --update maps steps by label: keep the old labels or plan a --transform_name_mapping "
        f"(docs/deploy.md), then run `make deploy-files` and commit {deploy.labels_path(template)}")


# -- no process-global mutable state in worker code ----------------------------------------------
#: module-level state that is mutated on purpose, and why it is safe
ALLOWED_GLOBAL_STATE = {
    ("transforms/warehouse/stream_writer.py", "_SHARED"): "one DuckDB handle per process and file, under a lock "
                                                          "(local streaming only; docs/streaming.md)",
}
_MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem", "clear", "remove",
             "discard", "__setitem__"}


def _module_state_mutations(path: str) -> set[tuple[str, str]]:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    module_names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        module_names.update(t.id for t in targets if isinstance(t, ast.Name))
    found = set()
    for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(func):
            if isinstance(node, ast.Global):
                found.update(node.names)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS
                  and isinstance(node.func.value, ast.Name) and node.func.value.id in module_names):
                found.add(node.func.value.id)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in module_names:
                        found.add(t.value.id)
    return {(os.path.relpath(path, repo_root()), name) for name in found}


def test_worker_code_keeps_no_process_global_mutable_state():
    root = repo_root()
    found = set()
    for folder in ("transforms", "schemas"):
        for dirpath, _dirs, files in os.walk(os.path.join(root, folder)):
            for name in files:
                if name.endswith(".py"):
                    found |= _module_state_mutations(os.path.join(dirpath, name))
    unexpected = sorted(found - set(ALLOWED_GLOBAL_STATE))
    assert not unexpected, (
        f"module-level state mutated at run time: {unexpected}. Workers run many bundles (and DoFn instances) per "
        f"process: keep state in the DoFn (setup/start_bundle) or in Beam state, or document it in ALLOWED_GLOBAL_STATE")
