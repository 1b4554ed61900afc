"""The calibrate stage: fit the simulated channel to the user's own photos (``physical calibrate``)."""
