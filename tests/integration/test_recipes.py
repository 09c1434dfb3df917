"""Every seed workflow's recipe (examples/*.py) runs to completion in quick mode; the notebook executes."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RECIPES = sorted(EXAMPLES.glob("*.py"))


@pytest.fixture
def quick(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_RECIPE_QUICK", "1")
    monkeypatch.setenv("RLHF_RECIPE_OUT", str(tmp_path / "out"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "out"


def test_there_is_a_recipe_per_seed_document():
    assert [p.stem for p in RECIPES] == ["flirty_dialogue", "grpo_sentiment", "occupations", "pretrain_then_ppo",
                                        "reviews_reward_model"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_in_quick_mode(recipe, quick):
    runpy.run_path(str(recipe), run_name="__main__")
    runs = [p for p in quick.rglob("training_stats.csv")]
    assert runs, "the recipe trained nothing"


def test_the_notebook_executes(quick):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(EXAMPLES / "notebook.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(quick.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert list(quick.rglob("reward_curve.png")), "the reward curve was not plotted"
