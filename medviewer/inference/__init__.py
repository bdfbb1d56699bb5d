"""AI reads with onnxruntime: Qt-free and torch-free.

- ``model_card``: the card and the installed-model entry (a leaf; docs/model-card.md).
- ``registry``: built-in and user models, ``import_model``, ``resolve_model``; checks a file
  against its card.
- ``runtime``: ``get_session`` / ``warm_up`` (cached, thread-safe; CUDA > CPU with a notice
  when the GPU cannot be used), ``ModelSession.run``: calibrated probabilities, CAM and
  pooled features from one pass.
- ``preprocess``: pixels -> input tensor exactly as the card says, and back (``InputGeometry``).
- ``decision``: the one decision rule (``decide`` -> ``Decision``).
- ``scope``: the intended-use check of an image's header, in sentences.
- ``calibration``: temperature scaling of every read; ``ood``: the out-of-distribution score.
- ``site_points``: operating points a site adopted from its own local validation.
- ``prediction``: ``Prediction``, ``ClassScore`` and the ``prediction_made`` event.
- ``predict``: ``make_prediction``, ``predict_job`` (a job generator: Progress +
  PredictionReady events), ``predict_instance`` for one image.
- ``saliency``: ``explain_instance`` (prediction + CAM in one pass), ``occlusion_job``,
  ``jet_colormap`` / ``blend_overlay``; maps are on the image's own pixel grid.
- ``audit``: the audit log, the one subscriber of ``prediction_made``.
"""
