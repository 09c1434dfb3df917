"""`rlhf chat` through stdin, the chat-template path, and `rlhf serve`'s Gradio app (never launched)."""

from eval_models import base_model_dir, tiny_lora_run, write_profile
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.config import RolloutConfig
from rlhf.eval.chat import ChatSession
from rlhf.eval.loading import load_model
from rlhf.rewards import Length

runner = CliRunner()
TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")


def test_chat_answers_two_turns_from_stdin(tmp_path_factory):
    run, _ = tiny_lora_run(tmp_path_factory)
    result = runner.invoke(app, ["chat", str(run), "--max-new-tokens", "6"], input="Hello there\n\nHow are you?\n")
    assert result.exit_code == 0, result.output
    replies = [line for line in result.output.splitlines() if line.startswith("model> ")]
    assert len(replies) == 2  # the empty line is not a turn


def test_plain_continuation_keeps_the_conversation_and_reset_clears_it(tmp_path_factory):
    loaded = load_model(base_model_dir(tmp_path_factory), require_profile=False)
    session = ChatSession(loaded.model, loaded.tokenizer, RolloutConfig(max_new_tokens=5), loaded.max_prompt_tokens)
    assert not session.uses_template and session.prompt_for("Hello") == "Hello"
    first = session.reply("Hello")
    assert session.prompt_for("Again") == f"Hello{first}\nAgain"
    session.reset()
    assert session.prompt_for("Again") == "Again"


def test_a_tokenizer_with_a_chat_template_gets_turns(tmp_path_factory):
    loaded = load_model(base_model_dir(tmp_path_factory), require_profile=False)
    loaded.tokenizer.chat_template = TEMPLATE
    session = ChatSession(loaded.model, loaded.tokenizer, RolloutConfig(max_new_tokens=5), loaded.max_prompt_tokens,
                          system_prompt="Be brief.")
    first = session.reply("Hi")
    assert session.prompt_for("Bye") == f"<system>Be brief.\n<user>Hi\n<assistant>{first}\n<user>Bye\n<assistant>"


def test_serve_builds_the_app_and_binds_to_localhost(tmp_path_factory, tmp_path, monkeypatch):
    import gradio  # the ui extra, also in the test extra
    launched = {}
    monkeypatch.setattr(gradio.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs, app=self))
    profile = write_profile(tmp_path, rewards="[{name: length, target: 12}]")
    result = runner.invoke(app, ["serve", str(base_model_dir(tmp_path_factory)), "-p", str(profile)])
    assert result.exit_code == 0, result.output
    assert launched["server_name"] == "127.0.0.1" and isinstance(launched["app"], gradio.Blocks)
    result = runner.invoke(app, ["serve", str(tiny_lora_run(tmp_path_factory)[0]), "--host", "0.0.0.0", "--port", "7999"])
    assert result.exit_code == 0, result.output
    assert (launched["server_name"], launched["server_port"]) == ("0.0.0.0", 7999)


def test_serve_shows_base_and_tuned_with_their_rewards(tmp_path_factory):
    from rlhf.eval.serve import responder
    from rlhf.rewards import load_rewards

    loaded = load_model(tiny_lora_run(tmp_path_factory)[0])
    respond = responder(loaded, None, load_rewards(loaded.profile.rewards))
    base, base_reward, tuned, tuned_reward = respond("The movie was")
    assert base_reward == f"reward {Length(target=12)([''], [base])[0]:+.3f}"
    assert tuned_reward == f"reward {Length(target=12)([''], [tuned])[0]:+.3f}"
    assert respond("The movie was") == (base, base_reward, tuned, tuned_reward)  # seeded
