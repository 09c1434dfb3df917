"""Models: tokenizer (``tokenizer``), the policy with value head and reference (``policy``), and the factory
that builds them from a profile's ``model`` section (``factory``: random init, 4/8-bit, LoRA, checkpointing).

Import the submodules directly; this package imports nothing so that ``rlhf.models.tokenizer`` stays light.
"""
