"""Datasets for training and validation: Vimeo-90K septuplets, BVI-DVC quintuplets, real footage
(video files, frame folders, the `.npy` cache of scripts/prepare_footage.py) and synthetic motion.

See `datasets` for the sample format and `make_dataset` for the ``--data`` syntax.
"""

from .datasets import (
    BVIDVCQuintuplets,
    FrameDataset,
    SyntheticMotion,
    VideoClips,
    Vimeo90kSeptuplet,
    clip_id,
    heldout_clips,
    make_dataset,
    segment_frames,
)

__all__ = [
    "BVIDVCQuintuplets",
    "FrameDataset",
    "SyntheticMotion",
    "VideoClips",
    "Vimeo90kSeptuplet",
    "clip_id",
    "heldout_clips",
    "make_dataset",
    "segment_frames",
]
