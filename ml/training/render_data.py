"""Render the whole instrument data set: ``make data``.

    python -m ml.training.render_data --out data/instruments

The seven soundfonts through FluidSynth (``render_instruments``), then the other sources
(``render_sources``: STK, sonic-pi, this project's synthesis, the ``unknown`` class), two
jobs at a time, with a progress bar; writes the clips and ``<out>/index.csv``. A module of
its own so that the two renderers need not import each other.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ml.training import render_sources
from ml.training.render_instruments import (
    ALL_SOUNDFONTS,
    INSTRUMENTS,
    SOUNDFONTS,
    UNKNOWN,
    VELOCITIES,
    ClipRecord,
    Instrument,
    Soundfont,
    ensure_packages,
    render_drums,
    render_instrument,
    write_index,
)


def render_all(
    out_dir: Path,
    soundfonts: Sequence[Soundfont] = ALL_SOUNDFONTS,
    instruments: Sequence[Instrument] = INSTRUMENTS,
    velocities: Sequence[int] = VELOCITIES,
    note_step: int = 1,
    show_progress: bool = False,
    drums: bool = False,
    others: Sequence[str] = (),
) -> list[ClipRecord]:
    """Render every (soundfont, instrument) pair, two FluidSynth processes at a time; with
    ``drums``, each soundfont's percussion kit too; then the ``others`` sources of
    ``render_sources`` (``stk``, ``sonic-pi``, ``synth``, ``unknown``)."""
    ensure_packages(soundfonts, render_sources.binaries(others))
    jobs: list[tuple[str, Any]] = []
    for sf in soundfonts:
        for instrument in instruments:
            jobs.append(
                (
                    f"{sf.key}/{instrument.label}",
                    lambda sf=sf, instrument=instrument: render_instrument(
                        sf, instrument, out_dir, velocities, note_step
                    ),
                )
            )
        if drums:
            jobs.append((f"{sf.key}/drums", lambda sf=sf: render_drums(sf, out_dir)))
    for name in others:
        jobs.extend(render_sources.jobs(name, out_dir, instruments, note_step))
    records: list[ClipRecord] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(job) for _, job in jobs]
        for future in _progress(futures, show_progress, [name for name, _ in jobs]):
            records.extend(future.result())
    write_index(out_dir, records)
    return records


def _progress(futures: list, show_progress: bool, names: Sequence[str] = ()) -> Iterator:
    if not show_progress:
        yield from futures
        return
    from tqdm import tqdm

    bar = tqdm(futures, desc="rendering", unit="job")
    for index, future in enumerate(bar):
        if index < len(names):
            bar.set_postfix_str(names[index])
        yield future


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/instruments"))
    parser.add_argument(
        "--note-step", type=int, default=1, help="render every n-th semitone (1: all of them)"
    )
    parser.add_argument(
        "--soundfonts",
        default=",".join(SOUNDFONTS),
        help="comma-separated soundfont keys (default: all of them; empty: none)",
    )
    parser.add_argument(
        "--sources",
        default=",".join(render_sources.OTHER_SOURCES),
        help=f"comma-separated other sources (default: {','.join(render_sources.OTHER_SOURCES)})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    soundfonts = [SOUNDFONTS[key] for key in args.soundfonts.split(",") if key]
    others = [name for name in args.sources.split(",") if name]
    records = render_all(
        args.out,
        soundfonts,
        note_step=args.note_step,
        show_progress=True,
        drums=True,
        others=others,
    )
    for source in sorted({record.soundfont for record in records}):
        mine = [record for record in records if record.soundfont == source]
        unknown = sum(record.label == UNKNOWN for record in mine)
        print(f"{source} ({mine[0].source_family}): {len(mine)} clips, {unknown} unknown")
    print(f"{len(records)} clips; index: {args.out / 'index.csv'}")


if __name__ == "__main__":
    main()
