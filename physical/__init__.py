"""physical: do adversarial examples survive printing and a phone camera?

Reproduces Kurakin, Goodfellow and Bengio, "Adversarial examples in the
physical world" (2016). The pipeline has three stages, each a package and a
command, passing data through folders on disk: :mod:`physical.sheets`
(``make-sheets`` -> printouts/), :mod:`physical.capture` (``ingest`` ->
captures/; also the virtual camera, ``simulate-photos``) and
:mod:`physical.report` (``report``); :mod:`physical.calibrate` (``calibrate``) fits
the simulated channel to the photos between the last two. Beneath them: :mod:`physical.models`,
:mod:`physical.attacks` and :mod:`physical.channel`. ``docs/architecture.md``
says which may import which.

Python use mirrors the commands::

    from physical import load_model, attacks, make_sheets
    model = load_model("demo")
    x_adv = attacks.basic_iterative(model, x, y, eps=8 / 255)
    make_sheets("printouts")            # physical make-sheets
    simulate_photos("printouts", "photos")  # physical simulate-photos
    ingest("photos")                    # physical ingest photos/
    calibrate("captures")               # physical calibrate
    make_report("captures")             # physical report
"""
from . import attacks
from .errors import PhysicalError
from .models import Classifier, load_model
from .version import __version__


# The stage functions are imported on first use (PEP 562): they pull in reportlab, OpenCV and
# matplotlib, which `import physical` alone should not pay for.
_STAGES = {
    "make_sheets": "physical.sheets.run",          # physical make-sheets
    "simulate_photos": "physical.capture.camera",  # physical simulate-photos
    "ingest": "physical.capture.run",              # physical ingest
    "calibrate": "physical.calibrate.run",         # physical calibrate
    "make_report": "physical.report.run",          # physical report
    "run_demo": "physical.demo",                   # physical demo
}


def __getattr__(name: str):
    if name in _STAGES:
        from importlib import import_module

        return getattr(import_module(_STAGES[name]), name)
    raise AttributeError(f"module 'physical' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_STAGES))


__all__ = ["__version__", "attacks", "calibrate", "Classifier", "ingest", "load_model", "make_report", "make_sheets",
           "PhysicalError", "run_demo", "simulate_photos"]
