"""A simulated print-and-photo channel for batches of image crops (Kornia / PyTorch).

The report stage compares the paper's figures on real photos of the printed
sheets with the same figures under this channel. It works on what the model
sees: batches of registered crops, tensors in [0, 1], NCHW, on the device of
the input (CPU or GPU), every image with its own parameters, and no Python
loop over images (on a CPU, a loop over chunks of a few images).
(:mod:`physical.capture.camera` is the other simulator: it makes whole 12-MP phone
photos of the sheets with OpenCV, for ``ingest``.)

A crop goes through, in this order:

1. **geometry** (:func:`warp`): what is left after ``ingest`` registers and
   crops a photo: its crops are the slot magnified by ``CROP_ZOOM`` about its
   centre (ingest's 2 % inset), and registration error, lens distortion and
   paper curl move each corner by a little (``corner_jitter``). One batched
   homography per image (``kornia.geometry.transform``), replicating the
   border. It comes first because it allocates the output: every later step
   can then run in place on it, and a per-pixel colour map commutes with it
   up to the bilinear interpolation.
2. **print and light** (:func:`print_and_light`): the printer's gamut
   (``saturation``), tone curve (``gamma``), colour cast (``ink_cast``),
   off-white paper and grey black (``paper_white``, ``paper_tint``,
   ``black_level``); then the scene's light and the camera's tone mapping:
   ``contrast`` about mid-grey, ``exposure``, ``white_balance``, a smooth
   gradient of light across the crop (``light_gradient``) and an additive
   ``brightness`` offset (flare, ambient light); then the tone curve that
   the phone's local tone mapping (HDR) applies where the crop lies on the
   page (``local_tone``, :func:`local_tone`; 0 in the presets, fitted per
   crop in a calibrated profile).
3. **blur** (:func:`blur`): Gaussian, of the resampling in ``ingest``
   (``blur_px``, fixed in crop pixels) and of the lens and ink spread
   (``blur_frac``, a fraction of the crop's width: every picture is printed at
   the same size, so the optical blur in crop pixels grows with the pixel
   count); the two combine as ``sqrt(blur_px**2 + (blur_frac * W)**2)``.
4. **noise** (:func:`add_noise`): signal-dependent sensor noise,
   ``std = sqrt(read_noise**2 + shot_noise**2 * I)`` at brightness I, the
   same in the three channels (a phone's denoiser removes chroma noise first).
5. **JPEG** (:func:`real_jpeg`): the real codec, libjpeg-turbo, at a quality
   per image drawn on a grid of ``JPEG_STEP``: on a CPU through OpenCV
   (:func:`cpu_codec`; the same bytes as ``torchvision.io``, faster), on a
   GPU through torchvision's nvJPEG, a call per group of equal quality.

``PRESETS`` holds the parameter ranges of ``mild``, ``typical`` and
``harsh``; :func:`sample_params` draws per-image parameters from one,
:func:`apply_channel` applies them, :func:`simulate` does both. A profile
fitted to a user's printer and phone (``physical calibrate``;
:mod:`.profile`, fitted by :mod:`.fit`) goes wherever a preset name goes:
``simulate(x, load_profile("channel-profile.json"))``.

Gradients (``differentiable=True``): every step but JPEG is differentiable.
JPEG is a straight-through estimator: the forward value is the real codec's
(so the output equals ``differentiable=False`` exactly), the backward pass is
the identity (``jpeg_grad="identity"``, the default) or the gradient of
Kornia's differentiable JPEG (``jpeg_grad="kornia"``). The identity is the
default because Kornia's JPEG is slow on a CPU: for 64 images of 299 x 299
on 2 cores its gradient makes a forward + backward pass take 4.7 s instead
of 0.55 s, and as a forward pass alone (``jpeg="kornia"``) it takes ~0.9 s
where the codec takes ~0.02 s. The noise level follows the image but carries
no gradient (it is noise).

Speed: per-image parameters are tensors, so every step is one batched call.
On a CPU the batch goes through every step, JPEG included, in chunks of a
few images (:func:`chunk_size`) that stay in cache and reuse the same memory,
straight into the output; a 64 x 299 x 299 batch in one piece is 1.5x
slower, paging in fresh memory for each intermediate. Measured speeds, and
an albumentations loop beside them, are in ``docs/benchmarks.md``
(``bench/channel.py``).

Determinism: the same parameters give the same output on the same device.
Each image's noise comes from its own seed (``params["noise_seed"][i]``), so
it does not depend on the rest of the batch; the generators differ between
CPU and GPU. JPEG on a GPU is nvJPEG, which subsamples chroma differently
from the CPU's libjpeg: the two devices give different bytes.

Modules: :mod:`.presets` (parameter ranges and draws), :mod:`.ops` (the
differentiable steps), :mod:`.codec` (JPEG), :mod:`.pipeline` (the steps in
order, chunked; :func:`simulate`), :mod:`.workers` (CPU threads), :mod:`.profile`
(calibrated profiles: format, validation, draws), :mod:`.fit` (fitting the channel
to photographed crops).
"""
from .codec import cpu_codec, jpeg_codec, real_jpeg, to_8bit
from .ops import (BLUR_SIGMAS, LUMA, MIN_SIGMA, add_noise, blur, blur_kernels, blur_radius, blur_sigma, homographies,
                  light_field, local_tone, noise_field, print_and_light, sampling_matrices, warp)
from .pipeline import CHUNK_BYTES, GRAD_CHUNK_BYTES, apply_channel, chunk_size, simulate
from .presets import CROP_ZOOM, JPEG_STEP, NO_JPEG, PARAM_SHAPES, PRESETS, identity_params, sample_params
from .profile import ProfileError, channel_name, draw_params, load_profile, profile_params, resolve_channel

__all__ = ["BLUR_SIGMAS", "CHUNK_BYTES", "CROP_ZOOM", "GRAD_CHUNK_BYTES", "JPEG_STEP", "LUMA", "MIN_SIGMA", "NO_JPEG",
           "PARAM_SHAPES", "PRESETS", "add_noise", "apply_channel", "blur", "blur_kernels", "blur_radius", "blur_sigma",
           "chunk_size", "cpu_codec", "homographies", "identity_params", "jpeg_codec", "light_field", "local_tone",
           "noise_field",
           "print_and_light", "real_jpeg", "sample_params", "ProfileError", "channel_name", "draw_params",
           "load_profile", "profile_params", "resolve_channel", "sampling_matrices", "simulate", "to_8bit", "warp"]
