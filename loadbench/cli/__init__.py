"""The ``loadbench`` command. Each subcommand lives in its own module and is imported lazily,
so ``loadbench mock`` never imports Locust (which monkey-patches the process with gevent)."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from loadbench import __version__
from loadbench.errors import ExitCode, LoadbenchError

# name -> "module:attribute" of a click.Command. Add one line per subcommand.
_COMMANDS: dict[str, str] = {
    "mock": "loadbench.cli.mock_cmd:mock",
    "run": "loadbench.cli.run_cmd:run",
    "gateway": "loadbench.cli.gateway_cmd:gateway",
    "report": "loadbench.cli.report_cmd:report",
    "compare": "loadbench.cli.compare_cmd:compare",
    "sweep": "loadbench.cli.sweep_cmd:sweep",
    "replay": "loadbench.cli.replay_cmd:replay",
    "summarize": "loadbench.cli.summarize_cmd:summarize",
    "worker": "loadbench.cli.worker_cmd:worker",
    "eval": "loadbench.cli.eval_cmd:eval_",
    "dataset": "loadbench.cli.dataset_cmd:dataset",
    "log": "loadbench.cli.log_cmd:log_group",
    "ab": "loadbench.cli.ab_cmd:ab",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in _COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


def _available(name: str) -> bool:
    module_name = _COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module_name) is not None


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="loadbench")
def cli() -> None:
    """Load-test and latency-benchmark OpenAI-compatible LLM endpoints."""


def main() -> None:
    try:
        result = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.BAD_INPUT)
    except LoadbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except Exception:
        # Not a LoadbenchError: a bug. Exit 70, never 1 (which means "a gate failed").
        import traceback

        traceback.print_exc()
        click.echo("error: internal error in loadbench (a bug): please report the traceback above", err=True)
        sys.exit(ExitCode.INTERNAL)
    # Commands may return an ExitCode (e.g. a gate verdict) instead of raising.
    sys.exit(int(result) if isinstance(result, int) else ExitCode.OK)
