"""YOLO11 spine lesion detector: Ultralytics trainer with CLAHE, mosaic cutoff and focal loss; AP@0.5 evaluation."""
