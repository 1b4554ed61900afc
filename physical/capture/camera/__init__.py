"""``physical simulate-photos``: a virtual phone camera for the printed sheets.

Turns ``printouts/sheets.pdf`` into synthetic phone photos with exact ground
truth, so that ``physical ingest`` can be developed and tested without a
printer, and its robustness measured against known geometry. Each photo goes
through the physical chain of a real one, in this order, one small function
per effect (each documents its parameter ranges):

1. printing (:func:`print_page`): off-white paper, reduced ink gamut and
   contrast, a tone curve, a colour cast, dot gain;
2. the scene: the sheet lying on a textured table (:func:`background`), in
   any in-plane rotation, seen in perspective (:func:`page_homography`),
   not quite flat: curled like a cylinder with a gentle wave on top
   (:func:`curl_profile`, a developable surface: the paper bends but never
   stretches), sometimes with a finger or a pen over a corner code
   (:func:`occluder_layer`), under uneven light (:func:`light_field`), a
   soft shadow of the photographer's hand or phone, the contact shadow of
   the (lifted) sheet on the table and the occluder's shadow
   (:func:`shadow_field`), the curled paper lit by its slope
   (:func:`paper_shading`);
3. the camera: the lens's residual distortion (:func:`distort`, OpenCV's
   radial + tangential model), lens blur (:func:`lens_blur`), vignetting
   (:func:`vignetting_field`), white-balance error (:func:`white_balance`),
   sensor noise (:func:`sensor_noise`), phone sharpening (:func:`sharpen`),
   JPEG at phone quality with an EXIF Orientation tag (:func:`encode_jpeg`),
   in 12-megapixel frames (4032 x 3024 or 3024 x 4032 as displayed).

The page is not mapped by one homography: :class:`PhotoGeometry` is the
exact forward model page mm -> photo px (flat pose, curl and wave lift along
the page normal, pinhole projection, lens distortion), and the renderer
inverts it numerically for every photo pixel (Newton's method on a coarse
grid, upsampled) to sample the printed page. :func:`page_to_photo` maps any
page points of a photo through that model, from its ground-truth entry.

One module per stage: :mod:`.presets` (the constants and :data:`PRESETS`),
:mod:`.params` (:func:`sample_params`: every random parameter, and the
framing), :mod:`.geometry` (the forward model), :mod:`.occluder`,
:mod:`.scene` (printing and the scene), :mod:`.optics` (the phone: blur,
vignetting, white balance, noise, sharpening, JPEG) and :mod:`.pipeline`
(:func:`make_photo`, :func:`photo_truth`, :func:`simulate_photos`). This
package re-exports their public functions and classes, and the constants
:data:`GROUND_TRUTH_NAME`, :data:`DIFFICULTIES`, :data:`PRESETS`, :data:`PHONES` and
:data:`FOCAL_FRACTION`.

Difficulty presets are in :data:`PRESETS` (one dict of parameter ranges per
preset):

* ``easy``: nearly straight, flat, even light, little blur, no distortion;
* ``normal``: what a careful user gets: any rotation, tilt up to 20 degrees,
  a sheet lying not quite flat (edge lift up to 5 mm), the small distortion
  a phone leaves after its own correction, moderate blur, noise and shadow;
  no occluder, the whole page in the frame;
* ``hard``: a careless user: strong tilt, curl (an edge or corner 5-20 mm
  up) and wave, larger distortion, heavy shadow and blur, low JPEG quality,
  pixels often stored rotated with an EXIF Orientation tag (as phones do),
  sometimes shot from farther away (QR modules down to ~3 px), sometimes a
  finger or pen over a corner code, sometimes a page corner cut by the frame;
* ``extreme``: beyond: stronger tilt, curl at both ends plus wave, strong
  distortion, an occluder over a corner code and a cut corner in most
  photos, often QR modules of ~3 px; light, blur and noise as ``hard``.

The phone's own processing is a second choice, :data:`PHONES` (``phone=``,
``--phone``): ``plain`` (the default, the camera above) or ``hdr``, a
current phone in a user's home: auto white balance under daylight,
tungsten or mixed light (residual casts up to 2x apart between red and
blue, and across the frame under mixed light), office, recycled or
bright-white paper, HDR local tone mapping that lifts shadows and tames
highlights region by region, and a wide-angle lens's residual barrel
distortion. Its draws come after every plain draw, from their own seeds: a
plain photo is the same with or without them.

Determinism: the print of page ``p`` is seeded from ``(seed, p)`` (all photos
of a page show the same physical printout); everything else in photo ``k``
of page ``p`` is seeded from ``(seed, p, k)`` (the sheet's shape, the lens
and the occluder from ``(seed, p, k, 1)``). Same seed, same bytes (with the
same OpenCV, Pillow and pdfium builds).

Outputs, all in ``out/`` (default ``photos/``):

* ``<experiment id>_p<page:02d>_<k:02d>.jpg``, ``k`` counting from 1;
* ``ground-truth.json``: one JSON object mapping each photo file name to::

      {
        "experiment_id": "3f9a2c1b",
        "page": 1,                      # page number in the manifest (1-based)
        "index": 1,                     # k, the photo's number for this page
        "difficulty": "normal",
        "phone": "plain",
        "seed": 0,
        "width": 3024, "height": 4032,  # the image as displayed (EXIF applied)
        "exif_orientation": 1,          # EXIF tag 0x0112 written in the JPEG (1, 3, 6 or 8)
        "homography": [[...], [...], [...]],
        "slots": {"0": [[u, v], [u, v], [u, v], [u, v]], ...},
        "markers": {"TL": [[u, v], ...], "TR": ..., "BR": ..., "BL": ...},
        "module_px": {"TL": 9.8, ...},  # each corner code's module size in photo px
        "occluded": ["TL"],             # corner codes the occluder covers, even partly
        "occluded_slots": [],           # slot indices ("0", ...) it covers, even partly
        "cut": ["TL", "0"],             # markers and slots not wholly inside the frame
        "params": {...}                 # every sampled parameter (see sample_params)
      }

  All photo coordinates are pixel coordinates of the photo AS DISPLAYED,
  i.e. after applying its EXIF orientation, with OpenCV's convention that
  ``(0, 0)`` is the centre of the top-left pixel (the image spans -0.5 ..
  width - 0.5). Page coordinates are millimetres, x right, y down from the
  page's top-left corner, as in ``physical/sheets/layout.py``.

  ``slots`` and ``markers`` are exact: the photo positions of the corners
  TL, TR, BR, BL of every slot rect (by slot index) and of every corner QR
  code's rect (by corner), through the full forward model (curl, wave,
  distortion). They may lie outside the frame (see ``cut``). ``module_px``
  is ``sqrt(area of the code's quad) / 25`` (the codes have 25 x 25
  modules). ``homography`` is a 3 x 3 matrix ``H`` (``H[2][2] == 1``)
  mapping page mm ``(x, y, 1)`` to photo
  pixels ``(u, v, 1) ~ H @ (x, y, 1)`` for the flat TABLE plane under the
  sheet (the page's pose before it curls, without lens distortion): it is
  exact for the page only when curl, wave and distortion are all zero (as
  in ``easy``); otherwise use ``slots``/``markers`` or, for any other page
  point, :func:`page_to_photo`::

      from physical.capture.camera import page_to_photo
      uv = page_to_photo(entry, page_size_mm, [[x_mm, y_mm], ...])  # (N, 2)

  Re-running merges into the file: entries of the same photo names are
  replaced, others kept.
"""
from .geometry import (CurlProfile, PhotoGeometry, curl_profile, distort, page_homography, page_to_photo,
                       photo_frame, project, undistort)
from .occluder import occluder_coverage, occluder_shape, sample_occluder
from .optics import (apply_gain, blur_kernel, encode_jpeg, lens_blur, local_tone_map, sensor_noise, sharpen,
                     vignetting_field, white_balance)
from .params import sample_params
from .pipeline import make_photo, photo_name, photo_truth, simulate_photos
from .presets import DIFFICULTIES, FOCAL_FRACTION, GROUND_TRUTH_NAME, PHONES, PRESETS
from .scene import background, compose_scene, light_field, occluder_layer, paper_shading, print_page, shadow_field

__all__ = ["CurlProfile", "DIFFICULTIES", "FOCAL_FRACTION", "GROUND_TRUTH_NAME", "PHONES", "PRESETS", "PhotoGeometry",
           "apply_gain", "background", "blur_kernel", "compose_scene", "curl_profile", "distort", "encode_jpeg",
           "lens_blur", "light_field", "local_tone_map", "make_photo", "occluder_coverage", "occluder_layer",
           "occluder_shape", "page_homography", "page_to_photo", "paper_shading", "photo_frame", "photo_name",
           "photo_truth", "print_page", "project", "sample_occluder", "sample_params", "sensor_noise", "shadow_field",
           "sharpen", "simulate_photos", "undistort", "vignetting_field", "white_balance"]
