"""A hand-made COCO keypoints folder for the ablation tests."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from analysis.ablation.keypoints import NUM_JOINTS


def hand_made_coco(root, layout="images"):
    """Two images: a person, a crowd region (with keypoints), a person without keypoints, a dog."""
    names = ("train2017", "val2017")
    rng = np.random.default_rng(0)
    person = []
    for j in range(NUM_JOINTS):
        person += [40.0 + 3 * j, 30.0 + 4 * j, 2 if j % 5 else 1]
    person[3 * 16 + 2] = 0
    person[3 * 16] = person[3 * 16 + 1] = 0
    for split in names:
        img_dir = root / ("images" if layout == "images" else "") / split
        img_dir.mkdir(parents=True)
        for i in (1, 2):
            Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(img_dir / f"{i:012d}.jpg")
        anns = [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "keypoints": person, "num_keypoints": 16,
             "bbox": [35, 25, 60, 75], "area": 2500.0},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1, "keypoints": person, "num_keypoints": 16,
             "bbox": [0, 0, 100, 100], "area": 5000.0, "segmentation": {"counts": [0, 100], "size": [120, 160]}},
            {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 0, "keypoints": [0] * 51, "num_keypoints": 0,
             "bbox": [10, 10, 30, 50], "area": 900.0},
            {"id": 4, "image_id": 2, "category_id": 18, "iscrowd": 0, "keypoints": person, "num_keypoints": 16,
             "bbox": [10, 10, 30, 50], "area": 900.0},
            {"id": 5, "image_id": 2, "category_id": 1, "iscrowd": 0,
             "keypoints": [v + (20 if k % 3 == 0 and v else 0) for k, v in enumerate(person)], "num_keypoints": 16,
             "bbox": [55, 25, 65, 75], "area": 2600.0},
        ]
        doc = {"images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 160, "height": 120} for i in (1, 2)],
               "annotations": anns,
               "categories": [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(17)], "skeleton": []},
                              {"id": 18, "name": "dog"}]}
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(doc))
    return root
