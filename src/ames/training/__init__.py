"""The training engine every stage reuses (experts, gating, finetune, ablations).

Import from the submodule that holds what you need (``TrainConfig``, one ``training``
block of params.yaml, is ``ames.config.TrainConfig``):

* ``ames.training.device``: ``select_device``, ``DeviceUnavailableError``, autocast;
* ``ames.training.losses``: the ``compute_loss`` contract, ``mean_losses``;
* ``ames.training.checkpoints``: ``save_checkpoint``, ``load_state_dict_checked``,
  ``CheckpointError``, the resumable state (``STATE_FILE``);
* ``ames.training.progress``: ``TrainResult`` and the early-stopping bookkeeping;
* ``ames.training.live``: DVCLive learning curves, ``record_untrained``;
* ``ames.training.distributed``: data-parallel training under ``torchrun``, ``on_main``;
* ``ames.training.engine``: ``fit``, the resumable epoch loop.
"""
