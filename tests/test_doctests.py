"""The examples in the docstrings are run: a formula's docstring that shows a number must compute it."""

import doctest
import importlib
import pkgutil

import pytest

import frugalthink

MODULES = sorted(m.name for m in pkgutil.walk_packages(frugalthink.__path__, "frugalthink."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples fail"
