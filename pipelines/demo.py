"""``touchline demo``: sample data -> batch pipeline -> DuckDB warehouse -> summary, in one command."""

from __future__ import annotations

import json
import os
import shutil

from . import batch
from .sample_data import GenerateConfig, generate
from .progress import Progress
from .report import write_report
from .summary import render


def _needs_generation(cfg: GenerateConfig) -> bool:
    manifest = os.path.join(cfg.out_dir, "manifest.json")
    if not os.path.exists(manifest):
        return True
    with open(manifest, encoding="utf-8") as fh:
        config = json.load(fh).get("config", {})
    return (config.get("persons"), config.get("days"), config.get("seed")) != (cfg.persons, cfg.days, cfg.seed)


def run_demo(args, pipeline_args: list[str], progress: Progress | None = None) -> str:
    """Generate (if needed) -> batch pipeline + commit -> summary -> HTML report; returns the text to print."""
    from touchline.transforms.warehouse import open_warehouse

    progress = progress or Progress(4, enabled=False)

    if args.persons <= 0 or args.days <= 0:
        raise ValueError("--persons and --days must be positive integers")
    out = os.path.abspath(args.out)
    data = os.path.join(out, "input")
    warehouse = os.path.join(out, "touchline.duckdb")
    cfg = GenerateConfig(out_dir=data, persons=args.persons, days=args.days, seed=args.seed)
    if args.fresh:
        shutil.rmtree(data, ignore_errors=True)
        for path in (warehouse, warehouse + ".wal"):
            if os.path.exists(path):
                os.remove(path)
    os.makedirs(out, exist_ok=True)
    if _needs_generation(cfg):
        shutil.rmtree(data, ignore_errors=True)
        with progress.phase(f"generating sample data for {cfg.persons} persons over {cfg.days} days into {data}"):
            generate(cfg)
    else:
        with progress.phase(f"reusing the sample data in {data}"):
            pass
    key = "env:TOUCHLINE_HASH_KEY" if os.environ.get("TOUCHLINE_HASH_KEY") else "demo"
    argv = ["--input", data, "--warehouse", warehouse, "--hash_key_source", key, *pipeline_args]
    with progress.phase(f"running the batch pipeline into {warehouse}"):
        result = batch.run(argv, prog="touchline demo")
    wh = open_warehouse(warehouse)
    try:
        with progress.phase("summarizing the run"):
            text = render(result, wh)
        page = os.path.join(out, "report.html")
        with progress.phase(f"writing the HTML report {page}"):
            write_report(wh, page)
    finally:
        wh.close()
    return text + f"\nReport: {page}  (open it in a browser; `touchline report` writes it again)"
