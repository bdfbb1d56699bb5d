"""AI reads with onnxruntime: Qt-free and torch-free.

- ``registry``: model cards (docs/model-card.md), built-in and user models, ``import_model``,
  ``resolve_model``.
- ``runtime``: ``get_session`` / ``warm_up`` (cached, thread-safe; CUDA > CPU with a notice
  when the GPU cannot be used), ``ModelSession.provider`` and ``.notice``.
- ``preprocess``: pixels -> input tensor exactly as the card says, and back (``InputGeometry``).
- ``predict``: ``predict_job`` (a job generator: Progress + PredictionReady events),
  ``predict_instance`` for one image.
- ``saliency``: ``explain_instance`` (prediction + CAM in one pass), ``occlusion_job``,
  ``jet_colormap`` / ``blend_overlay``; maps are on the image's own pixel grid.
- ``audit``: every prediction appended to the SQLite audit log.
"""
