"""physical: do adversarial examples survive printing and a phone camera?

Reproduces Kurakin, Goodfellow and Bengio, "Adversarial examples in the
physical world" (2016). The pipeline has three stages, each a module and a
command: ``make_sheets`` (printouts/), ``ingest`` (captures/), ``report``.

Python use::

    from physical import load_model, attacks, make_sheets
    model = load_model("demo")
    x_adv = attacks.basic_iterative(model, x, y, eps=8 / 255)
"""
__version__ = "0.1.0"

from . import attacks  # noqa: E402
from .errors import PhysicalError  # noqa: E402
from .models import Classifier, load_model  # noqa: E402


def make_sheets(*args, **kwargs):
    """See :func:`physical.make_sheets.make_sheets` (imported lazily: it pulls in reportlab)."""
    from .make_sheets import make_sheets as _make_sheets

    return _make_sheets(*args, **kwargs)


__all__ = ["__version__", "attacks", "Classifier", "load_model", "make_sheets", "PhysicalError"]
