"""``loadbench dataset expand``: bootstrap a test set from a few seed cases (see loadbench.eval.expand)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("dataset")
def dataset() -> None:
    """Work with evaluation datasets (JSONL cases with ground truth)."""


@dataset.command("expand")
@click.argument("seed_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The expanded JSONL (originals first, then their variations).")
@click.option("--variants", default="typo,case,whitespace,pad,format", show_default=True,
              help="Comma-separated variations to make.")
@click.option("--pad-to", default="200", show_default=True, metavar="WORDS,...",
              help="Pad with irrelevant context up to these lengths in words.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of every variation.")
@click.option("--no-originals", is_flag=True, default=False, help="Write only the variations.")
def expand_cmd(seed_file: Path, out_file: Path, variants: str, pad_to: str, seed: int, no_originals: bool) -> int:
    """Write deterministic variations of each case, keeping labels and marking each origin."""
    import orjson

    from loadbench.errors import ConfigError, ExitCode
    from loadbench.eval.dataset import load_dataset
    from loadbench.eval.expand import VARIANTS, expand

    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    for v in chosen:
        if v not in VARIANTS:
            raise ConfigError("--variants", v, "unknown variation", "one of " + ", ".join(VARIANTS))
    try:
        lengths = [int(x) for x in pad_to.split(",") if x.strip()]
    except ValueError:
        raise ConfigError("--pad-to", pad_to, "is not a list of word counts", "e.g. --pad-to 200,1000") from None
    if any(n < 1 for n in lengths):
        raise ConfigError("--pad-to", pad_to, "word counts must be >= 1", "e.g. --pad-to 200,1000")
    cases = expand(load_dataset(seed_file).cases, chosen, lengths, seed, keep_originals=not no_originals)
    out_file.write_bytes(b"".join(orjson.dumps(c.to_json()) + b"\n" for c in cases))
    click.echo(f"wrote {len(cases)} cases to {out_file}", err=True)
    return ExitCode.OK


def _register_from_log() -> None:
    from loadbench.cli.harvest_cmd import from_log  # the request log's harvest (docs/ab.md)

    dataset.add_command(from_log)


_register_from_log()
