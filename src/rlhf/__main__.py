from rlhf.cli import app

app(prog_name="rlhf")
