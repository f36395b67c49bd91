"""The one rule for what a metric's ``compute`` may return, applied by the engine and by ``check_metric`` alike.

``compute`` returns a dict whose keys are ``<name>`` or ``<name>_<part>``. A value is either a number -- a Python
``int`` or ``float`` or a numpy integer or floating scalar (anything ``numbers.Real`` except ``bool``), stored as a
float, NaN and infinities included -- or a ``str``, stored as a text fact about the numbers (e.g. the feature
space). Everything else is rejected with a message naming the key, so that the engine records the metric as failed
(with its plugin) and ``check_metric`` fails the author's test with the same words:

* ``bool`` (and ``numpy.bool_``): a flag is not a measurement; ``float(flag)`` says the author means a rate.
* tensors and arrays, even with one element: ``.item()`` makes the device sync and the dropped graph explicit,
  and a tensor that silently carried a batch of values would otherwise be caught only sometimes.

The engine never converts: what the conformance check accepts is exactly what a grid stores.
"""

from __future__ import annotations

import numbers


class MetricValueError(ValueError):
    """A metric returned something the store cannot hold; the message names the key and what to return."""


def _hint(value: object) -> str:
    if type(value).__name__ in ("bool", "bool_"):  # Python's and numpy's, without importing numpy
        return " (write float(flag) for a rate, or return a str fact)"
    if hasattr(value, "item") and hasattr(value, "shape"):
        return " (return value.item() for one element)"
    return ""


def check_key(name: str, key: object) -> None:
    """``key`` is ``name`` or ``name_<part>``."""
    if not isinstance(key, str) or not (key == name or key.startswith(name + "_")):
        raise MetricValueError(f"returned key {key!r}; keys must be {name!r} or start with {name + '_'!r}")


def split_values(name: str, returned: object, where: str = "") -> tuple[dict[str, float], dict[str, str]]:
    """The numbers and the text facts of what metric ``name``'s ``compute`` returned (``where`` says on what, for
    the message: " on dataset 'ring8'"); raises ``MetricValueError`` on the first key or value that breaks the rule."""
    if not isinstance(returned, dict):
        raise MetricValueError(f"compute() returned {type(returned).__name__}{where}; expected a dict")
    numbers_: dict[str, float] = {}
    texts: dict[str, str] = {}
    for key, value in returned.items():
        check_key(name, key)
        if isinstance(value, str):
            texts[key] = value
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            numbers_[key] = float(value)
        else:
            raise MetricValueError(
                f"value of {key!r} is {type(value).__name__}; expected a float (or a str fact){_hint(value)}"
            )
    return numbers_, texts
