import logging

import pytest

from rlhf.quiet import KNOWN_CHATTER, silence_known_chatter


@pytest.fixture
def records():
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    logging.getLogger().addHandler(handler)
    yield seen
    logging.getLogger().removeHandler(handler)
    silence_known_chatter(False)


@pytest.mark.parametrize("logger, prefix", [(name, prefix) for name, prefix, _ in KNOWN_CHATTER])
def test_known_chatter_is_dropped_unless_verbose(records, logger, prefix):
    silence_known_chatter(False)
    logging.getLogger(logger).warning(prefix + " %s", "detail")
    logging.getLogger(logger).warning("something else went wrong")
    assert records == ["something else went wrong"]
    silence_known_chatter(True)
    logging.getLogger(logger).warning(prefix + " %s", "detail")
    assert records[-1] == f"{prefix} detail"


def test_the_silenced_messages_are_the_ones_the_libraries_log():
    import inspect

    import bitsandbytes.autograd._functions as functions
    import bitsandbytes.backends.cpu.ops as ops

    sources = {"bitsandbytes.backends.cpu.ops": inspect.getsource(ops),
               "bitsandbytes.autograd._functions": inspect.getsource(functions)}
    for logger, prefix, _ in KNOWN_CHATTER:
        assert prefix in sources[logger], (logger, prefix)
