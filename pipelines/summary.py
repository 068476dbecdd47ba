"""Human-readable summary of a run, read from its counters and the warehouse."""

from __future__ import annotations

from collections import defaultdict

from touchline.transforms.warehouse import Warehouse


def channel_counts(counters: dict[str, int]) -> dict[str, dict[str, int]]:
    """{channel: {read, parsed, duplicates, dead_letters, touchpoints}} from ``<channel>.<name>`` counters."""
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, value in counters.items():
        channel, _, metric = name.partition(".")
        if metric.startswith("dead_letter."):
            per[channel]["dead_letters"] += value
            if metric == "dead_letter.conflicting_duplicate":
                per[channel]["conflicts"] += value
        else:
            per[channel][metric] += value
    for counts in per.values():
        counts["touchpoints"] = counts["parsed"] - counts["duplicates"] - counts["conflicts"]
    return {c: dict(v) for c, v in sorted(per.items())}


def dead_letter_reasons(counters: dict[str, int]) -> dict[str, int]:
    reasons: dict[str, int] = defaultdict(int)
    for name, value in counters.items():
        _, _, metric = name.partition(".")
        if metric.startswith("dead_letter."):
            reasons[metric.removeprefix("dead_letter.")] += value
    return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def render(result, warehouse: Warehouse | None = None) -> str:
    """The text printed at the end of ``touchline batch`` / ``touchline demo``."""
    out = [f"Run {result.run_id} finished in {result.seconds:.1f} s"]
    per = channel_counts(result.counters)
    rows = [[c, v.get("read", 0), v.get("touchpoints", 0), v.get("duplicates", 0), v.get("dead_letters", 0)] for c, v in per.items()]
    totals = [sum(r[i] for r in rows) for i in range(1, 5)]
    rows.append(["total", *totals])
    out += ["", "Events read per channel (read = touchpoints + duplicates + dead letters):",
            _table(rows, ["channel", "read", "touchpoints", "duplicates", "dead letters"])]
    reasons = dead_letter_reasons(result.counters)
    if reasons:
        out += ["", "Dead letters by reason:", _table([[r, n] for r, n in reasons.items()], ["reason", "count"])]
    out += ["", "Rows written this run:", _table([[t, n] for t, n in result.rows_written.items()], ["table", "rows"])]
    if warehouse is not None:
        extra = result.extra.get("summary_sections") or []
        for title, sql, header in extra:
            out += ["", title, _table([list(r) for r in warehouse.query(sql)], header)]
    out += ["", f"Warehouse: {result.warehouse}"]
    path = getattr(warehouse, "path", None)
    if path:
        out.append(f"  explore it: python -c \"import duckdb; print(duckdb.connect('{path}', read_only=True).sql('SHOW TABLES'))\"")
    return "\n".join(out)
