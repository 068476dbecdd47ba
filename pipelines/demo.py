"""``touchline demo``: sample data -> batch pipeline -> DuckDB warehouse -> summary, in one command."""

from __future__ import annotations

import json
import os
import shutil

from . import batch
from .sample_data import GenerateConfig, generate
from .summary import render


def _needs_generation(cfg: GenerateConfig) -> bool:
    manifest = os.path.join(cfg.out_dir, "manifest.json")
    if not os.path.exists(manifest):
        return True
    with open(manifest, encoding="utf-8") as fh:
        config = json.load(fh).get("config", {})
    return (config.get("persons"), config.get("days"), config.get("seed")) != (cfg.persons, cfg.days, cfg.seed)


def run_demo(args, pipeline_args: list[str]) -> str:
    from touchline.transforms.warehouse import open_warehouse

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
        print(f"generating sample data for {cfg.persons} persons over {cfg.days} days into {data} ...", flush=True)
        generate(cfg)
    key = "env:TOUCHLINE_HASH_KEY" if os.environ.get("TOUCHLINE_HASH_KEY") else "demo"
    argv = ["--input", data, "--warehouse", warehouse, "--hash_key_source", key, *pipeline_args]
    print(f"running the batch pipeline into {warehouse} ...", flush=True)
    result = batch.run(argv, prog="touchline demo")
    wh = open_warehouse(warehouse)
    try:
        return render(result, wh)
    finally:
        wh.close()
