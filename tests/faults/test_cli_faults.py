"""Bad inputs to the CLI: each fails with its exit code, one readable line, no traceback, nothing lost.

Add a row for every new bad input a user can give (see ``faults.harness.Fault``).
"""

from pathlib import Path

import pytest

from faults.harness import Fault, check_fault


def _write(name: str, text: str):
    def setup(tmp: Path) -> None:
        (tmp / name).write_text(text, encoding="utf-8")

    return setup


FAULTS = [
    Fault("unknown-profile", ["run", "-p", "no-such-profile"], ("no-such-profile",)),
    Fault("unknown-key", ["profiles", "show", "tiny-gpt2", "--set", "trainer.stepz=3"], ("trainer.stepz", "steps")),
    Fault("wrong-type", ["profiles", "show", "tiny-gpt2", "--set", "trainer.steps=many"], ("trainer.steps", "many")),
    Fault("extends-missing", ["profiles", "show", "{tmp}/p.yaml"], ("p.yaml", "nowhere"),
          setup=_write("p.yaml", "extends: nowhere\n")),
    Fault("unknown-reward", ["run", "--output-dir", "{tmp}", "--set", "rewards=[{name: lenght}]"], ("lenght", "length")),
    Fault("resume-not-a-run", ["run", "--resume", "{tmp}"], ("--resume", "profile.yaml")),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_fault(fault: Fault, tmp_path: Path) -> None:
    check_fault(fault, tmp_path)
