"""Human-readable summary of a run, read from its counters and the warehouse."""

from __future__ import annotations

from collections import defaultdict

from touchline.transforms.warehouse import Warehouse


def channel_counts(counters: dict[str, int]) -> dict[str, dict[str, int]]:
    """{channel: {read, parsed, duplicates, dead_letters, erased, touchpoints}} from ``<channel>.<name>``
    counters (channels are the prefixes that count reads; ``identity.*`` and other stages are not)."""
    channels = {name.partition(".")[0] for name in counters if name.endswith(".read")}
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, value in counters.items():
        channel, _, metric = name.partition(".")
        if channel not in channels:
            continue
        if metric.startswith("dead_letter."):
            per[channel]["dead_letters"] += value
            if metric == "dead_letter.conflicting_duplicate":
                per[channel]["conflicts"] += value
        else:
            per[channel][metric] += value
    for counts in per.values():
        # erased: events of erased persons dropped before stitching, and their dead letters
        counts["dead_letters"] -= counts["erased_dead_letters"]
        counts["touchpoints"] = counts["parsed"] - counts["duplicates"] - counts["conflicts"] - counts["erased"]
        counts["erased"] += counts["erased_dead_letters"]
    return {c: dict(v) for c, v in sorted(per.items())}


def identity_counts(counters: dict[str, int]) -> list[list]:
    """Rows of the identity section: persons, merges, quarantined identifiers, (un)attributed touchpoints."""
    rows = [["persons stitched", counters.get("identity.persons", 0)],
            ["persons merged into another", counters.get("identity.merged_persons", 0)],
            ["earlier touchpoints re-attributed", counters.get("identity.reattributed", 0)]]
    for name, value in sorted(counters.items()):
        if name.startswith("identity.quarantined."):
            rows.append([f"identifiers quarantined: {name.rsplit('.', 1)[1]}", value])
    unattributed = sum(v for k, v in counters.items() if k.endswith(".unattributed"))
    rows.append(["touchpoints without a person", unattributed])
    return rows


def dead_letter_reasons(counters: dict[str, int]) -> dict[str, int]:
    reasons: dict[str, int] = defaultdict(int)
    for name, value in counters.items():
        _, _, metric = name.partition(".")
        if metric.startswith("dead_letter."):
            reasons[metric.removeprefix("dead_letter.")] += value
    return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def _table(rows: list[list[str]], header: list[str]) -> str:
    rows = [["-" if v is None else v for v in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def render(result, warehouse: Warehouse | None = None) -> str:
    """The text printed at the end of ``touchline batch`` / ``touchline demo``."""
    out = [f"Run {result.run_id} finished in {result.seconds:.1f} s"]
    per = channel_counts(result.counters)
    erased = any(v.get("erased", 0) for v in per.values())
    rows = [[c, v.get("read", 0), v.get("touchpoints", 0), v.get("duplicates", 0), v.get("dead_letters", 0),
             *([v.get("erased", 0)] if erased else [])] for c, v in per.items()]
    width = 6 if erased else 5
    totals = [sum(r[i] for r in rows) for i in range(1, width)]
    rows.append(["total", *totals])
    header = ["channel", "read", "touchpoints", "duplicates", "dead letters", *(["erased"] if erased else [])]
    out += ["", "Events read per channel (read = touchpoints + duplicates + dead letters"
            + (" + erased" if erased else "") + "):", _table(rows, header)]
    reasons = dead_letter_reasons(result.counters)
    if reasons:
        out += ["", "Dead letters by reason:", _table([[r, n] for r, n in reasons.items()], ["reason", "count"])]
    if any(k.startswith("identity.") for k in result.counters):
        out += ["", "Identity stitching:", _table(identity_counts(result.counters), ["", "count"])]
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
