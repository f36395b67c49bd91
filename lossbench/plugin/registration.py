"""What ``register(obj)`` checks for each kind of plugin object, before the object enters a registry.

These are the cheap, structural checks (the right base class or methods, a known family, a ``DataSpec``); the
behavioural ones, which run the object, are the conformance checks of ``lossbench.testing``. The public types are
imported when a check runs, not when this module is imported, so that the table of kinds (``plugin.kinds``)
that names these checks stays importable without torch (``lossbench --help`` lists the kinds).
"""

from __future__ import annotations

from typing import Any


class RegistrationError(ValueError):
    """An object a plugin tried to register is malformed or a duplicate; the message says why."""


def _overrides(obj: object, base: type, method: str) -> bool:
    return callable(getattr(obj, method, None)) and getattr(type(obj), method, None) is not getattr(base, method)


def _methods(obj: object, *methods: str) -> None:
    for method in methods:
        if not callable(getattr(obj, method, None)):
            raise RegistrationError(f"has no {method}() method")


def validate_loss(obj: Any) -> None:
    """An ``AdversarialLoss`` or ``VAELoss`` that implements its abstract methods and carries a ``Recipe``."""
    from lossbench.api import AdversarialLoss, Recipe, VAELoss

    if isinstance(obj, AdversarialLoss):
        missing = [m for m in ("discriminator_loss", "generator_loss") if not _overrides(obj, AdversarialLoss, m)]
    elif isinstance(obj, VAELoss):
        missing = [] if _overrides(obj, VAELoss, "loss") else ["loss"]
    else:
        raise RegistrationError("a loss must be an instance of lossbench.AdversarialLoss or lossbench.VAELoss")
    if missing:
        raise RegistrationError(f"does not implement {', '.join(missing)}")
    if not isinstance(obj.recipe, Recipe):
        raise RegistrationError("recipe must be a lossbench.Recipe")


def validate_model(obj: Any) -> None:
    """A factory of a known family with ``supports`` and ``build``."""
    from lossbench.api import FAMILIES

    if getattr(obj, "family", None) not in FAMILIES:
        raise RegistrationError(f"family must be one of {', '.join(FAMILIES)}, not {getattr(obj, 'family', None)!r}")
    _methods(obj, "supports", "build")


def validate_dataset(obj: Any) -> None:
    """A ``DataSpec`` of points or images, with ``load`` and ``mode_of``."""
    from lossbench.api import DataSpec

    spec = getattr(obj, "spec", None)
    if not isinstance(spec, DataSpec):
        raise RegistrationError("spec must be a lossbench.DataSpec")
    if spec.kind not in ("points", "image"):
        raise RegistrationError(f"spec.kind must be 'points' or 'image', not {spec.kind!r}")
    _methods(obj, "load", "mode_of")


def validate_metric(obj: Any) -> None:
    """Anything with ``compute``."""
    _methods(obj, "compute")


def validate_feature_space(obj: Any) -> None:
    """``build``, ``refuses`` and ``unavailable``; ``inputs`` one of ``FEATURE_INPUTS``; ``width`` a positive int
    or None."""
    from lossbench.api import FEATURE_INPUTS

    _methods(obj, "build", "refuses", "unavailable")
    if getattr(obj, "inputs", None) not in FEATURE_INPUTS:
        raise RegistrationError(
            f"inputs must be one of {', '.join(FEATURE_INPUTS)}, not {getattr(obj, 'inputs', None)!r}"
        )
    width = getattr(obj, "width", None)
    if width is not None and (not isinstance(width, int) or isinstance(width, bool) or width < 1):
        raise RegistrationError(f"width must be a positive int or None, not {width!r}")
