"""Write a trained model as a released-layout checkpoint directory.

`save_pretrained(model, directory)` = `model.checkpoint.save_openvla` on a copy cast to the
save dtype (bf16, as the released checkpoints), plus what a loadable directory needs besides the
weights: `preprocessor_config.json` and the tokenizer (copied from the checkpoint the model was
fine-tuned from, or a tiny Llama tokenizer whose merges cover the dataset's instructions).
`dataset_statistics.json` comes from `model.norm_stats`.
"""

import copy
import json
import pathlib
import shutil
from typing import Optional, Sequence

import torch

from openvla_ros.model.checkpoint import AUXILIARY_FILENAMES, save_openvla
from openvla_ros.model.modeling import OpenVLAForActionPrediction
from openvla_ros.model.testing.tokenizer import write_tiny_llama_tokenizer
from openvla_ros.processing import default_preprocessor_config, PREPROCESSOR_CONFIG_FILENAME

READY_FILENAME = 'READY'


def save_pretrained(model: OpenVLAForActionPrediction, directory, step: int = 0,
                    dtype: Optional[torch.dtype] = torch.bfloat16, copy_from=None,
                    instructions: Sequence[str] = ()) -> pathlib.Path:
    """Write `model` (unchanged itself) in the hub layout `OpenVLAPolicy.from_pretrained` loads.

    Args:
        step: training step, part of the component file names (`action_head--<step>_...`).
        dtype: tensor dtype on disk (None: the model's).
        copy_from: checkpoint directory whose tokenizer / preprocessor files are copied.
        instructions: without `copy_from`, extra tokenizer corpus for the tiny tokenizer.
    """
    if not model.norm_stats:
        raise ValueError('model.norm_stats: expected the training dataset statistics, got none')
    directory = pathlib.Path(directory)
    if directory.exists():
        shutil.rmtree(directory)  # stale component files would make loading ambiguous
    saved = model
    if dtype is not None and dtype != model.dtype:
        saved = copy.deepcopy(model).to(dtype)
    save_openvla(saved, directory, step=step, copy_from=copy_from)
    if copy_from is None or not any((pathlib.Path(copy_from) / name).is_file()
                                    for name in AUXILIARY_FILENAMES):
        write_tiny_llama_tokenizer(directory, extra_instructions=instructions)
    if not (directory / PREPROCESSOR_CONFIG_FILENAME).is_file():
        config = default_preprocessor_config(model.config.image_size,
                                             model.config.use_fused_vision_backbone)
        text = json.dumps(config, indent=2) + '\n'
        (directory / PREPROCESSOR_CONFIG_FILENAME).write_text(text)
    return directory


def publish(source, target) -> pathlib.Path:
    """Copy a checkpoint directory to `target`, writing `READY` last (readers poll for it)."""
    source, target = pathlib.Path(source), pathlib.Path(target)
    staging = target.with_name(target.name + '.tmp')
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(source, staging)
    (staging / READY_FILENAME).unlink(missing_ok=True)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    (target / READY_FILENAME).touch()
    return target
